"""``EmbeddingTable``: an ``(N, d)`` float32 matrix whose rows are keyed by ``sample_id``.

On disk: ``embeddings.npy`` (float32, or float16 when asked), ``ids.parquet`` and ``meta.json``,
written atomically; loading can memory-map the matrix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path, write_json_atomic
from curate.errors import IdMismatchError, InputDataError

MATRIX_FILE = "embeddings.npy"
IDS_FILE = "ids.parquet"
META_FILE = "meta.json"


@dataclass(frozen=True)
class EmbeddingTable:
    """Rows of ``matrix`` belong to ``ids`` in order; ``meta`` records the encoder and preprocessing."""

    ids: pl.Series
    matrix: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.ids):
            raise InputDataError(
                f"embedding matrix has shape {self.matrix.shape} for {len(self.ids)} ids",
                file=self.meta.get("source"),
                fix="recompute the embeddings",
            )

    @property
    def dim(self) -> int:
        """Embedding width ``d``."""
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def check_finite(self, where: str = "embeddings") -> EmbeddingTable:
        """Raise :class:`InputDataError` naming the first row with a NaN or infinite value."""
        step = 65_536  # in chunks: a memory-mapped matrix is never read whole
        bad = np.concatenate(
            [~np.isfinite(self.matrix[s : s + step].sum(axis=1, dtype=np.float64)) for s in range(0, len(self), step)]
            or [np.zeros(0, dtype=bool)]
        )  # a row sum is finite iff every entry is (inf - inf = nan)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputDataError(
                f"{int(bad.sum())} rows hold NaN or inf values",
                file=where,
                row=i + 1,
                sample_id=str(self.ids[i]),
                fix="recompute the embeddings or drop these samples",
            )
        return self

    def rows_for(self, ids: pl.Series | list[str], *, what: str = "dataset") -> np.ndarray:
        """Row indices of ``ids`` in this table (raise :class:`IdMismatchError` naming missing ids)."""
        index = pl.DataFrame({S.SAMPLE_ID: self.ids, "_i": np.arange(len(self.ids))})
        want = pl.DataFrame({S.SAMPLE_ID: pl.Series(list(ids), dtype=pl.String)})
        joined = want.join(index, on=S.SAMPLE_ID, how="left", maintain_order="left")
        missing = joined.filter(pl.col("_i").is_null())[S.SAMPLE_ID]
        if missing.len():
            raise IdMismatchError.from_ids(what, "embeddings", missing.to_list())
        return joined["_i"].to_numpy()

    def select(self, ids: pl.Series | list[str], *, what: str = "dataset") -> EmbeddingTable:
        """The rows of ``ids``, in that order."""
        rows = self.rows_for(ids, what=what)
        if len(rows) == len(self) and np.array_equal(rows, np.arange(len(self))):
            return self  # already these rows in this order: no copy (keeps a memory map mapped)
        return EmbeddingTable(
            pl.Series(S.SAMPLE_ID, list(ids), dtype=pl.String), np.asarray(self.matrix[rows]), self.meta
        )

    def save(self, folder: str | Path, *, float16: bool = False) -> Path:
        """Write the table into ``folder`` (each file atomically) and return the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / MATRIX_FILE) as tmp, open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(self.matrix, dtype=np.float16 if float16 else np.float32))
        with atomic_path(folder / IDS_FILE) as tmp:
            pl.DataFrame({S.SAMPLE_ID: self.ids}).write_parquet(tmp)
        write_json_atomic(folder / META_FILE, {**self.meta, "shape": list(self.matrix.shape)})
        return folder

    @classmethod
    def load(cls, folder: str | Path, *, mmap: bool = False) -> EmbeddingTable:
        """Read a table written by :meth:`save` (float16 on disk is returned as float32 unless ``mmap``).

        Raises:
            InputDataError: a file is missing, truncated or unreadable, or the matrix's shape is not
                the one recorded in ``meta.json`` (names the file; the fix is to recompute).
        """
        folder = Path(folder)
        fix = "recompute the embeddings (`curate embed ... --no-cache`)"
        for name in (MATRIX_FILE, IDS_FILE):
            if not (folder / name).exists():
                raise InputDataError(f"missing {name}", file=folder, fix="run `curate embed` first")
        try:
            matrix = np.load(folder / MATRIX_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputDataError(f"cannot read the embedding matrix ({e})", file=folder / MATRIX_FILE, fix=fix) from e
        if not mmap and matrix.dtype != np.float32:
            matrix = matrix.astype(np.float32)
        try:
            ids = pl.read_parquet(folder / IDS_FILE)[S.SAMPLE_ID]
            meta = json.loads((folder / META_FILE).read_text()) if (folder / META_FILE).exists() else {}
        except (OSError, ValueError, pl.exceptions.PolarsError) as e:
            raise InputDataError(f"cannot read the embedding ids or meta ({e})", file=folder, fix=fix) from e
        shape = meta.get("shape")
        if shape is not None and list(matrix.shape) != list(shape):
            raise InputDataError(
                f"the embedding matrix has shape {list(matrix.shape)}, {list(shape)} when written",
                file=folder / MATRIX_FILE,
                fix=fix,
            )
        return cls(ids, matrix, {**meta, "source": str(folder)})
