"""``SCORERS``: per-sample scores over a :class:`DynamicsLog`, each with its direction stated once."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from curate._core import schema as S
from curate._core.registry import Registry

Scorer = Callable[..., pl.DataFrame]
SCORERS: Registry[Scorer] = Registry("scorer")


def score_frame(frame: pl.DataFrame, expr: pl.Expr) -> pl.DataFrame:
    """``[sample_id, score]`` (Float64) from a per-sample aggregation ``expr``, sorted by id."""
    return frame.group_by(S.SAMPLE_ID).agg(expr.cast(pl.Float64).alias(S.SCORE)).sort(S.SAMPLE_ID)


def mean_over_runs(per_run: pl.DataFrame) -> pl.DataFrame:
    """Average a ``[run, sample_id, score]`` frame over runs → ``[sample_id, score]``."""
    return per_run.group_by(S.SAMPLE_ID).agg(pl.col(S.SCORE).mean()).sort(S.SAMPLE_ID)
