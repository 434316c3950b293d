"""``ensemble``: the mean of two complementary signals in [0, 1], then a per-class Otsu split.

Combines the embedding-space signal (kNN label disagreement: the attribute dominates the
representation) with the training-dynamics signal (early loss as an error probability,
``1 − exp(−loss)``: the proxy cannot fit the sample with the majority rule). Both live in [0, 1]
and keep their bimodal shape, which the per-class Otsu split into pseudo-groups relies on (ranks
would flatten it and split every class in half).
"""

from __future__ import annotations

import numpy as np

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.detect._base import (
    DETECTORS,
    Discovery,
    Signals,
    build_discovery,
    early_stats,
    split_by_score,
    train_rows,
)
from curate.detect.neighbors import KNN_K, knn_disagreement


@DETECTORS.register(
    "ensemble",
    needs=("embeddings", "dynamics"),
    description="mean of kNN label disagreement and the early error probability 1 - exp(-loss), Otsu split per class",
)
def ensemble(
    table: SampleTable, signals: Signals, *, k: int = KNN_K, knn_weight: float = 0.5, backend: str = "faiss-cpu"
) -> Discovery:
    """Conflict score = ``knn_weight``·kNN disagreement + (1 − ``knn_weight``)·(1 − exp(−early loss))."""
    emb = signals.need_embeddings("ensemble")
    log = signals.need_dynamics("ensemble")
    rows = train_rows(table)
    x = emb.select(rows[S.SAMPLE_ID], what="train split").check_finite().matrix
    labels = rows[S.LABEL].to_numpy()
    nn = knn_disagreement(x, labels, k=k, backend=backend)
    loss = early_stats(log, rows[S.SAMPLE_ID])["early_loss"].to_numpy()
    sc = knn_weight * nn + (1 - knn_weight) * (1.0 - np.exp(-loss))
    return build_discovery(
        rows,
        np.asarray(sc),
        split_by_score(rows, sc),
        detector="ensemble",
        config={"k": k, "knn_weight": knn_weight},
        dynamics=log,
    )
