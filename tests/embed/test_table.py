from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.embed import EmbeddingTable
from curate.errors import IdMismatchError, InputDataError


def table(n: int = 4) -> EmbeddingTable:
    return EmbeddingTable(
        pl.Series("sample_id", [f"s{i}" for i in range(n)]), np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    )


def test_roundtrip_and_mmap(tmp_path: Path) -> None:
    t = table()
    t.save(tmp_path / "e")
    back = EmbeddingTable.load(tmp_path / "e", mmap=True)
    np.testing.assert_array_equal(np.asarray(back.matrix), t.matrix)
    assert back.ids.to_list() == t.ids.to_list()
    t.save(tmp_path / "h", float16=True)
    assert np.load(tmp_path / "h" / "embeddings.npy").dtype == np.float16
    assert EmbeddingTable.load(tmp_path / "h").matrix.dtype == np.float32


def test_select_by_id_and_mismatch() -> None:
    t = table()
    np.testing.assert_array_equal(t.select(["s2", "s0"]).matrix, t.matrix[[2, 0]])
    with pytest.raises(IdMismatchError, match="1 ids in 'train split' not in 'embeddings', first: 'zz'"):
        t.select(["s1", "zz"], what="train split")


def test_nan_rows_are_named() -> None:
    t = table()
    t.matrix[2, 1] = np.nan
    with pytest.raises(InputDataError, match=r"row 3 \(sample_id 's2'\): 1 rows hold NaN"):
        t.check_finite()


def test_shape_mismatch() -> None:
    with pytest.raises(InputDataError, match="shape"):
        EmbeddingTable(pl.Series(["a"]), np.zeros((2, 3), dtype=np.float32))


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="run `curate embed` first"):
        EmbeddingTable.load(tmp_path)
