"""Resumable embedding: the table is embedded in fixed shards of rows, each written atomically.

``embed_sharded`` skips shards already on disk, so after ``kill -9`` a rerun only embeds the
missing ones; shard boundaries are fixed by ``shard_size``, so every batch sees the same rows as
in an uninterrupted run and the result is identical. The shards are then streamed into one
``embeddings.npy`` (never the whole matrix in memory twice) and removed. ``engine="ray"`` embeds
each shard with Ray Data actors (:mod:`curate.embed.distributed`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.engine import check_engine
from curate._core.io import atomic_path, write_json_atomic
from curate.data.table import SampleTable
from curate.embed._base import Encoder
from curate.embed.run import DEFAULT_BATCH_SIZE, embed_table
from curate.embed.table import IDS_FILE, MATRIX_FILE, META_FILE, EmbeddingTable
from curate.errors import ConfigError, InputDataError

SHARD_SIZE = 8192
SHARDS = "shards"


def shard_name(k: int) -> str:
    """File name of shard ``k``."""
    return f"shard={k:06d}.npy"


def embed_sharded(
    table: SampleTable,
    encoder: Encoder,
    folder: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = 0,
    shard_size: int = SHARD_SIZE,
    float16: bool = False,
    engine: str = "local",
    meta: dict[str, Any] | None = None,
) -> EmbeddingTable:
    """Embed ``table`` into ``folder`` shard by shard (resuming from shards on disk) and assemble it.

    Returns:
        The table loaded back from ``folder`` (memory-mapped).
    """
    if shard_size < 1:
        raise ConfigError.bad_param("embed()", "shard_size", "an integer >= 1", shard_size)
    check_engine(engine, "embed()")
    n = len(table)
    if n == 0:
        raise InputDataError("nothing to embed: the table is empty", file=table.where)
    folder = Path(folder)
    shards = folder / SHARDS
    shards.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, n, shard_size))
    for k, start in enumerate(starts):
        path = shards / shard_name(k)
        if path.exists():
            continue
        part = table.with_frame(table.frame.slice(start, shard_size))
        if engine == "ray":
            from curate.embed.distributed import embed_table_ray

            encoder.check_modality(part.modality)
            emb = embed_table_ray(part, encoder.spec, device=device, batch_size=batch_size)
        else:
            emb = embed_table(part, encoder, device=device, batch_size=batch_size, num_workers=num_workers)
        emb.check_finite(f"{encoder.spec} embeddings, rows {start + 1}-{start + len(part)}")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, emb.matrix.astype(np.float32, copy=False))
    first = np.load(shards / shard_name(0), mmap_mode="r")
    dtype = np.float16 if float16 else np.float32
    with atomic_path(folder / MATRIX_FILE) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(n, first.shape[1]))
        for k, start in enumerate(starts):
            block = np.load(shards / shard_name(k), mmap_mode="r")
            out[start : start + len(block)] = block
        out.flush()
        del out
    with atomic_path(folder / IDS_FILE) as tmp:
        pl.DataFrame({S.SAMPLE_ID: table.frame[S.SAMPLE_ID].cast(pl.String)}).write_parquet(tmp)
    names = {} if table.label_names is None else {"label_names": list(table.label_names)}  # class names travel along
    write_json_atomic(
        folder / META_FILE,
        {
            "encoder": encoder.spec,
            "config": encoder.describe(),
            **names,
            **(meta or {}),
            "shape": [n, int(first.shape[1])],
        },
    )
    shutil.rmtree(shards)
    return EmbeddingTable.load(folder, mmap=True)
