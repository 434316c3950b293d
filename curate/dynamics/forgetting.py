"""Forgetting events and first-learned epoch (Toneva et al., ICLR 2019).

A forgetting event is a transition from correct at one epoch to incorrect at the next. Samples
never classified correctly count as maximally forgotten: ``n_epochs`` events, more than any
learned sample can have. First-learned epoch = the first epoch the sample is correct (``n_epochs``
when never). Both are averaged over runs; higher = harder.
"""

from __future__ import annotations

import polars as pl

from curate._core import schema as S
from curate.dynamics._registry import SCORERS, mean_over_runs
from curate.dynamics.log import CORRECT, EPOCH, RUN, DynamicsLog


def _per_run(log: DynamicsLog, expr: pl.Expr) -> pl.DataFrame:
    per_run = (
        log.frame.sort(RUN, S.SAMPLE_ID, EPOCH)
        .group_by(RUN, S.SAMPLE_ID, maintain_order=True)
        .agg(expr.cast(pl.Float64).alias(S.SCORE))
    )
    return mean_over_runs(per_run)


@SCORERS.register("forgetting", needs="dynamics", higher="forgotten more often (harder)")
def forgetting(log: DynamicsLog) -> pl.DataFrame:
    """Number of forgetting events per sample (``n_epochs`` when never learned), mean over runs."""
    c = pl.col(CORRECT).cast(pl.Int8)
    events = ((c.shift(1) == 1) & (c == 0)).sum()
    return _per_run(log, pl.when(pl.col(CORRECT).any()).then(events).otherwise(log.n_epochs))


@SCORERS.register("first-learned", needs="dynamics", higher="learned later (harder)")
def first_learned(log: DynamicsLog) -> pl.DataFrame:
    """First epoch at which the sample is classified correctly (``n_epochs`` when never), mean over runs."""
    first = pl.col(EPOCH).filter(pl.col(CORRECT)).min()
    return _per_run(log, pl.when(pl.col(CORRECT).any()).then(first).otherwise(log.n_epochs))
