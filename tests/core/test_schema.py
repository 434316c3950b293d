from __future__ import annotations

import polars as pl
import pytest

from curate._core import schema as S
from curate.errors import IdMismatchError, InputDataError


def frame(**cols: list) -> pl.DataFrame:
    return pl.DataFrame(cols)


def test_validate_ok_and_chains() -> None:
    df = frame(sample_id=["a", "b"], label=[0, 1])
    assert S.validate_frame(df, required=(S.SAMPLE_ID, S.LABEL), where="t") is df


def test_missing_column_names_it() -> None:
    with pytest.raises(InputDataError, match="missing column 'label'"):
        S.validate_frame(frame(sample_id=["a"]), required=(S.SAMPLE_ID, S.LABEL), where="el2n output")


def test_wrong_dtype_names_fix() -> None:
    with pytest.raises(InputDataError, match=r"dtype String, expected Int64.*cast"):
        S.validate_frame(frame(sample_id=["a"], label=["0"]), required=(S.LABEL,), where="t")


def test_duplicate_ids() -> None:
    with pytest.raises(InputDataError, match="sample_ids repeat, first: 'a'"):
        S.validate_frame(frame(sample_id=["a", "a", "b"]), required=(S.SAMPLE_ID,), where="t")


def test_check_same_ids_names_first_missing() -> None:
    S.check_same_ids(pl.Series(["b", "a"]), pl.Series(["a", "b"]), what="el2n", other="dataset")
    with pytest.raises(IdMismatchError, match="1 ids in 'el2n' not in 'dataset', first: 'img_0932'"):
        S.check_same_ids(pl.Series(["a", "img_0932"]), pl.Series(["a", "b"]), what="el2n", other="dataset")
    with pytest.raises(IdMismatchError, match="ids in 'dataset' not in 'el2n', first: 'b'"):
        S.check_same_ids(pl.Series(["a"]), pl.Series(["a", "b"]), what="el2n", other="dataset")


def test_score_column() -> None:
    assert S.score_column("knn-density") == "knn_density_score"
