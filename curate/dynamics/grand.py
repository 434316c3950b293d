"""GraNd (Paul et al., NeurIPS 2021), last-layer form.

The gradient of the cross entropy with respect to a linear last layer ``(W, b)`` is
``(p − e_y) [h; 1]ᵀ``, so its norm is ``‖p − e_y‖₂ · sqrt(‖h‖₂² + 1)``: EL2N times the norm of the
layer's input plus bias. Computed at the same early epoch as EL2N by default (the paper also scores
at initialisation: pass ``epoch=0``). Higher = larger gradient = harder / more important.
"""

from __future__ import annotations

import polars as pl

from curate._core import schema as S
from curate.dynamics._registry import SCORERS, mean_over_runs
from curate.dynamics.log import EL2N, FEAT_NORM, RUN, DynamicsLog
from curate.errors import InputDataError


@SCORERS.register("grand", needs="dynamics", higher="larger last-layer gradient (harder)")
def grand(log: DynamicsLog, *, epoch: int | None = None) -> pl.DataFrame:
    """Last-layer GraNd per sample at ``epoch`` (default: the early epoch), mean over runs.

    Raises:
        InputDataError: the log has no feature norms (record with a model that returns features).
    """
    e = log.early_epoch() if epoch is None else epoch
    rows = log.at_epoch(e)
    if rows[FEAT_NORM].null_count():
        raise InputDataError(
            "GraNd needs the norm of the last layer's input, which this log lacks",
            file="dynamics log",
            column=FEAT_NORM,
            fix="record with a method whose step returns 'features'",
        )
    score = pl.col(EL2N).cast(pl.Float64) * (pl.col(FEAT_NORM).cast(pl.Float64) ** 2 + 1).sqrt()
    return mean_over_runs(rows.select(RUN, S.SAMPLE_ID, score.alias(S.SCORE)))
