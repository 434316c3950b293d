"""Area Under the Margin (Pleiss et al., NeurIPS 2020).

Mean over epochs of (logit of the assigned label − largest other logit). Low or negative AUM marks
mislabeled or hard samples; higher = easier. Runs are pooled.
"""

from __future__ import annotations

import polars as pl

from curate.dynamics._registry import SCORERS, score_frame
from curate.dynamics.log import MARGIN, DynamicsLog


@SCORERS.register("aum", needs="dynamics", higher="easier (larger margin)")
def aum(log: DynamicsLog) -> pl.DataFrame:
    """Mean logit margin of the label across epochs."""
    return score_frame(log.frame, pl.col(MARGIN).cast(pl.Float64).mean())
