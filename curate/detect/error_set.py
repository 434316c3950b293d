"""Error-set detectors from the training dynamics.

``jtt`` (Liu et al., ICML 2021): the samples the ERM model (proxy head or fine-tuned network)
misclassifies in epoch ``T`` form the error set (pseudo-group 1 of each class); the conflict score is
``1 − p(true label)`` at that epoch, mean over runs. Its predictions are the training pass's, as in
the authors' code (their ``train.py`` writes ``output_train_epoch_T.csv`` from the training loop,
model in train mode, and ``process_training.py`` takes the error set from it), not an eval pass.
``T`` defaults to the early epoch (10% of training): JTT's ``T`` is a per-dataset choice
(Waterbirds 60 of 300 epochs, CelebA 1, MultiNLI 2).
``el2n``: the conflict score is EL2N at the early epoch (Paul et al.); pseudo-groups split each
class at the Otsu threshold of the score.
"""

from __future__ import annotations

import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.detect._base import DETECTORS, Discovery, Signals, build_discovery, split_by_score, train_rows
from curate.dynamics import SCORERS
from curate.dynamics.log import CORRECT, PROB_TRUE


@DETECTORS.register("jtt", needs=("dynamics",), description="JTT error set of the ERM model at epoch T")
def jtt(table: SampleTable, signals: Signals, *, epoch: int | None = None) -> Discovery:
    """JTT's error set: misclassified at ``epoch`` (default: early) → pseudo-minority; score 1 − p(true)."""
    log = signals.need_dynamics("jtt")
    rows = train_rows(table)
    e = log.early_epoch() if epoch is None else epoch
    at = (
        log.at_epoch(e)
        .group_by(S.SAMPLE_ID)
        .agg(
            (1 - pl.col(PROB_TRUE).cast(pl.Float64).mean()).alias("s"),
            (pl.col(CORRECT).cast(pl.Float64).mean() < 0.5).alias("err"),
        )
    )
    j = rows.join(at, on=S.SAMPLE_ID, how="left", maintain_order="left")
    return build_discovery(
        rows, j["s"].to_numpy(), j["err"].cast(pl.Int64).to_numpy(), detector="jtt", config={"epoch": e}, dynamics=log
    )


@DETECTORS.register("el2n", needs=("dynamics",), description="early EL2N, Otsu split per class")
def el2n(table: SampleTable, signals: Signals, *, epoch: int | None = None) -> Discovery:
    """Conflict score = early EL2N; per-class Otsu split into pseudo-majority / pseudo-minority."""
    log = signals.need_dynamics("el2n")
    rows = train_rows(table)
    e = log.early_epoch() if epoch is None else epoch
    sc = rows.join(SCORERS.get("el2n")(log, epoch=e), on=S.SAMPLE_ID, how="left", maintain_order="left")[
        S.SCORE
    ].to_numpy()
    return build_discovery(rows, sc, split_by_score(rows, sc), detector="el2n", config={"epoch": e}, dynamics=log)
