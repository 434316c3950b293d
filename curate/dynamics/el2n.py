"""EL2N (Paul et al., NeurIPS 2021, "Deep Learning on a Data Diet").

``‖softmax(f(x)) − onehot(y)‖₂`` at an early epoch, averaged over independent runs. Default epoch:
10% into training, as in the paper (epoch 20 of 200). Higher = harder to learn.
"""

from __future__ import annotations

import polars as pl

from curate._core import schema as S
from curate.dynamics._registry import SCORERS, mean_over_runs
from curate.dynamics.log import EL2N, RUN, DynamicsLog


@SCORERS.register("el2n", needs="dynamics", higher="harder to learn")
def el2n(log: DynamicsLog, *, epoch: int | None = None) -> pl.DataFrame:
    """EL2N per sample at ``epoch`` (default :meth:`DynamicsLog.early_epoch`), mean over runs.

    Returns:
        ``[sample_id, score]``; higher = harder to learn.
    """
    e = log.early_epoch() if epoch is None else epoch
    rows = log.at_epoch(e)
    return mean_over_runs(rows.select(RUN, S.SAMPLE_ID, pl.col(EL2N).cast(pl.Float64).alias(S.SCORE)))
