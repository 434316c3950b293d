"""Loss-based scores: the mean loss over all epochs, and the mean early loss.

Early = epochs ``0 .. early_epoch`` (10% of training, as for EL2N); a high early loss marks
samples the model cannot fit early, the signal JTT and the data-pruning method build on.
"""

from __future__ import annotations

import polars as pl

from curate.dynamics._registry import SCORERS, score_frame
from curate.dynamics.log import EPOCH, LOSS, DynamicsLog


@SCORERS.register("loss", needs="dynamics", higher="harder (higher mean loss)")
def mean_loss(log: DynamicsLog) -> pl.DataFrame:
    """Mean cross-entropy loss across all epochs (and runs)."""
    return score_frame(log.frame, pl.col(LOSS).cast(pl.Float64).mean())


@SCORERS.register("early-loss", needs="dynamics", higher="harder (higher early loss)")
def early_loss(log: DynamicsLog, *, epoch: int | None = None) -> pl.DataFrame:
    """Mean loss over epochs ``0..epoch`` (default: the early epoch), runs pooled."""
    e = log.early_epoch() if epoch is None else epoch
    return score_frame(log.frame.filter(pl.col(EPOCH) <= e), pl.col(LOSS).cast(pl.Float64).mean())
