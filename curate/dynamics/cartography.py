"""Dataset cartography (Swayamdipta et al., EMNLP 2020).

Over all recorded epochs: confidence = mean p(true label); variability = its standard deviation
(population std, as in the authors' code); correctness = share of epochs classified correctly.
Runs are pooled (each run's epochs are observations).
"""

from __future__ import annotations

import polars as pl

from curate.dynamics._registry import SCORERS, score_frame
from curate.dynamics.log import CORRECT, PROB_TRUE, DynamicsLog


@SCORERS.register("confidence", needs="dynamics", higher="easier (confidently learned)")
def confidence(log: DynamicsLog) -> pl.DataFrame:
    """Mean probability of the true label across epochs."""
    return score_frame(log.frame, pl.col(PROB_TRUE).cast(pl.Float64).mean())


@SCORERS.register("variability", needs="dynamics", higher="more ambiguous")
def variability(log: DynamicsLog) -> pl.DataFrame:
    """Standard deviation (ddof 0) of the probability of the true label across epochs."""
    return score_frame(log.frame, pl.col(PROB_TRUE).cast(pl.Float64).std(ddof=0))


@SCORERS.register("correctness", needs="dynamics", higher="easier (more often correct)")
def correctness(log: DynamicsLog) -> pl.DataFrame:
    """Share of epochs at which the sample is classified correctly."""
    return score_frame(log.frame, pl.col(CORRECT).cast(pl.Float64).mean())
