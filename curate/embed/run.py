"""Batched embedding of a :class:`SampleTable` with an :class:`Encoder` (pure compute, no caching).

Text is embedded in length-sorted batches; images are decoded and transformed in DataLoader
workers. Everything runs under ``torch.inference_mode`` and, on CUDA, float16 autocast; results
come back as a float32 CPU matrix in the table's row order.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.progress import progress
from curate.data.table import SampleTable
from curate.embed._base import Encoder
from curate.embed.table import EmbeddingTable
from curate.errors import ConfigError, InputDataError

DEFAULT_BATCH_SIZE = 64


def _autocast(device: str) -> Any:
    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _one_thread(_: int) -> None:
    """DataLoader workers decode and resize with one torch thread each (no oversubscription)."""
    import torch

    torch.set_num_threads(1)


class _ImageFiles:
    """Map-style dataset of (index, transformed image); a bad file names its row and sample id."""

    def __init__(self, table: SampleTable, transform: Any) -> None:
        self.paths = [str(table.resolve(p)) for p in table.frame[S.PATH]]
        self.ids = table.frame[S.SAMPLE_ID].to_list()
        self.source = table.where
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        from PIL import Image

        try:
            with Image.open(self.paths[i]) as im:
                img = im.convert("RGB")
        except (OSError, ValueError) as e:
            raise InputDataError(
                f"cannot read image {self.paths[i]} ({e})",
                file=self.source,
                row=i + 1,
                sample_id=self.ids[i],
                column=S.PATH,
                fix="fix the file, or drop the row (curate datasets check --skip-bad)",
            ) from e
        return i, self.transform(img)


def embed_table(
    table: SampleTable,
    encoder: Encoder,
    *,
    device: str = "cpu",
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_workers: int = 0,
) -> EmbeddingTable:
    """Embed every row of ``table`` with ``encoder`` on a resolved ``device``.

    Args:
        table: the samples (``text`` or ``path`` column).
        encoder: built by :func:`curate.embed.create_encoder`.
        device: a resolved torch device string (``cpu``, ``cuda``, ``cuda:1``).
        batch_size: samples per forward pass.
        num_workers: DataLoader workers decoding images (0 = in this process).

    Returns:
        An :class:`EmbeddingTable` with the table's ids in the table's order.

    Raises:
        ConfigError: the encoder does not handle the table's modality, or a bad batch size.
        InputDataError: an image cannot be read (names its row and sample id).
    """
    import torch

    if batch_size < 1:
        raise ConfigError.bad_param("embed()", "batch_size", "an integer >= 1", batch_size)
    encoder.check_modality(table.modality)
    encoder.load(device)
    n = len(table)
    out: np.ndarray | None = None
    with (
        torch.inference_mode(),
        _autocast(device),
        progress(n, f"embedding ({encoder.spec})", unit=f"{table.modality}s") as bar,
    ):
        if table.modality == "text":
            texts = table.frame[S.TEXT].to_list()
            order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first: peak memory early
            for start in range(0, n, batch_size):
                rows = order[start : start + batch_size]
                emb = encoder.encode_text([texts[i] for i in rows]).float().cpu().numpy()
                if out is None:
                    out = np.empty((n, emb.shape[1]), dtype=np.float32)
                out[rows] = emb
                bar.advance(len(rows))
        else:
            from torch.utils.data import DataLoader

            loader: Any = DataLoader(
                _ImageFiles(table, encoder.image_transform()),  # type: ignore[arg-type]
                batch_size=batch_size,
                num_workers=num_workers,
                pin_memory=device.startswith("cuda"),
                persistent_workers=False,
                worker_init_fn=_one_thread if num_workers > 0 else None,
            )
            for idx, pixels in loader:
                emb = encoder.encode_images(pixels.to(device, non_blocking=True)).float().cpu().numpy()
                if out is None:
                    out = np.empty((n, emb.shape[1]), dtype=np.float32)
                out[idx.numpy()] = emb
                bar.advance(len(idx))
    if out is None:
        raise InputDataError("nothing to embed: the table is empty", file=table.where)
    ids = pl.Series(S.SAMPLE_ID, table.frame[S.SAMPLE_ID].to_list(), dtype=pl.String)
    return EmbeddingTable(ids, out, {"encoder": encoder.spec, "config": encoder.describe()}).check_finite(
        f"{encoder.spec} embeddings"
    )
