"""Stage 2, embed: every sample through a registered encoder, in resumable shards, cached by content."""

from __future__ import annotations

import logging
from pathlib import Path

from curate._core.cache import resumable_stage
from curate._core.device import resolve_device
from curate._core.engine import check_engine
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.embed import EmbeddingTable, create_encoder, default_encoder
from curate.embed.shards import SHARD_SIZE, embed_sharded
from curate.errors import ConfigError, InputDataError
from curate.pipeline._common import stage_root

logger = logging.getLogger(__name__)

EMBED_VERSION = 1


def embed(
    table: SampleTable,
    encoder: str | None = None,
    *,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int = 0,
    cache: bool = True,
    workspace: str | Path | Workspace | None = None,
    float16: bool = False,
    engine: str = "local",
    shard_size: int = SHARD_SIZE,
    mmap: bool = False,
) -> EmbeddingTable:
    """Embed every sample of ``table`` with a registered encoder, cached by content.

    The cache key is (dataset fingerprint, encoder identity and preprocessing, precision); a second
    call with the same inputs loads the stored matrix. With ``workspace`` the entry lives in that
    folder (``WS/embed/<key>/``), otherwise under ``$CURATE_CACHE_DIR``. Rows are embedded in
    shards of ``shard_size`` written as they finish: an interrupted call (even ``kill -9``) resumes
    from the finished shards with an identical result.

    Args:
        table: the dataset.
        encoder: an encoder spec (``minilm``, ``efficientnet-lite0``, ``hf-text:PATH``, ...); ``None``: the
            default for the table's modality (``efficientnet-lite0`` for images, ``minilm`` for text).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: samples per forward pass.
        num_workers: DataLoader workers for image decoding.
        cache: reuse a stored result (``False`` recomputes and overwrites it).
        workspace: a workspace folder to store the result in (and record it under the encoder spec).
        float16: store the matrix as float16 on disk (loaded back as float32 unless ``mmap``).
        engine: ``local`` or ``ray`` (Ray Data actors; GPU actors where GPUs exist; extra ``dist``).
        shard_size: rows per resumable shard.
        mmap: return the matrix memory-mapped from the cache (for data larger than memory).

    Returns:
        An :class:`EmbeddingTable` aligned to the table's ids.

    Raises:
        UnknownNameError: unknown encoder. ConfigError: the encoder cannot embed this modality.
        DeviceUnavailableError: CUDA asked for but absent. InputDataError: an unreadable sample.
    """
    check_engine(engine, "embed()")
    dev = resolve_device(device)
    encoder = encoder or default_encoder(table.modality)
    enc = create_encoder(encoder)
    enc.check_modality(table.modality)
    for name, value, least in (
        ("batch_size", batch_size, 1),
        ("num_workers", num_workers, 0),
        ("shard_size", shard_size, 1),
    ):
        if not isinstance(value, int) or value < least:
            raise ConfigError.bad_param("embed()", name, f"an integer >= {least}", value)
    precision = "fp16-autocast" if dev.startswith("cuda") else "fp32"
    root, ws = stage_root(workspace, table)
    parts = (table.fingerprint(), enc.describe(), precision, float16)

    def compute(folder: Path) -> None:
        embed_sharded(
            table,
            enc,
            folder,
            device=dev,
            batch_size=batch_size,
            num_workers=num_workers,
            shard_size=shard_size,
            float16=float16,
            engine=engine,
            meta={"dataset": table.fingerprint(), "precision": precision},
        )

    folder = resumable_stage("embed", EMBED_VERSION, parts, compute, enabled=cache, root=root)
    try:
        result = EmbeddingTable.load(folder, mmap=mmap)
    except InputDataError as e:  # an entry sealed before entries were verified, damaged since
        logger.warning("cached embeddings at %s cannot be read (%s): recomputing them", folder, e)
        folder = resumable_stage("embed", EMBED_VERSION, parts, compute, enabled=False, root=root)
        result = EmbeddingTable.load(folder, mmap=mmap)
    if ws is not None:
        ws.record("embed", encoder, folder)  # binds the workspace to the table: only once embedded
    return result
