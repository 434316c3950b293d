"""Column names and dtypes: the only place they are spelled.

Every table in curate is keyed by ``sample_id`` (a string); joins go by id, never by row order.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from curate.errors import IdMismatchError, InputDataError

SAMPLE_ID = "sample_id"
LABEL = "label"
SPLIT = "split"
GROUP = "group"
PATH = "path"
TEXT = "text"
ATTR = "a"  # the spurious attribute of the built-in benchmarks (SubpopBench's ``a``)
SCORE = "score"
KEEP = "keep"
WEIGHT = "weight"
PSEUDO_GROUP = "pseudo_group"
SOURCE = "source"

SPLITS: tuple[str, ...] = ("train", "val", "test")
SOURCE_COLUMNS: tuple[str, ...] = (PATH, TEXT)


def source_column(frame: Any) -> str:
    """``path`` when the frame has file paths, else ``text``."""
    return PATH if PATH in frame.columns else TEXT


DTYPES: dict[str, pl.DataType] = {
    SAMPLE_ID: pl.String(),
    LABEL: pl.Int64(),
    SPLIT: pl.String(),
    GROUP: pl.Int64(),
    ATTR: pl.Int64(),
    PATH: pl.String(),
    TEXT: pl.String(),
    SCORE: pl.Float64(),
    KEEP: pl.Boolean(),
    WEIGHT: pl.Float64(),
    PSEUDO_GROUP: pl.Int64(),
    SOURCE: pl.String(),
}


def validate_frame(df: pl.DataFrame, *, required: Iterable[str], where: str) -> pl.DataFrame:
    """Check that ``df`` has the ``required`` columns with their schema dtypes and unique ids.

    Args:
        df: the frame to check.
        required: column names that must be present.
        where: what the frame is, for the message (``"el2n output"``).

    Returns:
        ``df`` unchanged, so the call can be chained.

    Raises:
        InputDataError: a column is missing, has the wrong dtype, or ``sample_id`` repeats.
    """
    for col in required:
        if col not in df.columns:
            raise InputDataError(
                f"missing column {col!r} (has {', '.join(df.columns) or 'no columns'})",
                file=where,
                fix=f"add a {col!r} column",
            )
        want = DTYPES.get(col)
        if want is not None and df.schema[col] != want:
            raise InputDataError(
                f"column {col!r} has dtype {df.schema[col]}, expected {want}",
                file=where,
                column=col,
                fix=f"cast it with pl.col({col!r}).cast(pl.{want})",
            )
    if SAMPLE_ID in df.columns:
        dup = df.filter(pl.col(SAMPLE_ID).is_duplicated())
        if dup.height:
            first = dup[SAMPLE_ID][0]
            raise InputDataError(
                f"{dup[SAMPLE_ID].n_unique()} sample_ids repeat, first: {first!r}",
                file=where,
                sample_id=first,
                column=SAMPLE_ID,
                fix="make sample_id unique",
            )
    return df


def check_same_ids(ids: pl.Series, reference: pl.Series, *, what: str, other: str) -> None:
    """Raise :class:`IdMismatchError` unless ``ids`` and ``reference`` hold the same set of ids."""
    a = set(ids.to_list())
    b = set(reference.to_list())
    if a != b:
        missing = sorted(a - b) or sorted(b - a)
        if not (a - b):
            what, other = other, what
        raise IdMismatchError.from_ids(what, other, missing)


def max_int(series: pl.Series, default: int = -1) -> int:
    """Largest value of an integer series, or ``default`` when it has none."""
    v = series.drop_nulls().max()
    return default if v is None else int(v)  # type: ignore[arg-type]


def score_column(name: str) -> str:
    """Name under which scorer ``name``'s ``score`` is stored when frames are combined."""
    return f"{name.replace('-', '_')}_score"
