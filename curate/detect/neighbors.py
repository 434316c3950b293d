"""Neighbourhood and cluster detectors on the embedding space (FAISS).

``knn``: the share of a sample's ``k`` nearest train neighbours (cosine) that carry another label.
When the spurious attribute dominates the embedding, a bias-conflicting sample sits among the
other class's majority. ``cluster``: spherical k-means within each class (k by silhouette); the
conflict score is the cluster's early proxy error rate (how badly the proxy fits that cluster),
the George/SPARE idea on embeddings.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.detect._base import DETECTORS, Discovery, Signals, build_discovery, early_stats, split_by_score, train_rows
from curate.index import KMeansConfig, KnnIndex, cluster_per_class

KNN_K = 20


def knn_disagreement(x: np.ndarray, labels: np.ndarray, *, k: int = KNN_K, backend: str = "faiss-cpu") -> np.ndarray:
    """Share of each row's ``k`` nearest other rows (cosine) whose label differs."""
    k = min(k, len(x) - 1)
    index = KnnIndex(backend=backend).fit(x)
    _, nn = index.search(x, k + 1)
    self_mask = nn == np.arange(len(x))[:, None]
    other = np.where(self_mask, -1, nn)
    # drop self (or the last neighbour when self was not returned among ties)
    keep = np.argsort(other == -1, axis=1, kind="stable")[:, :k]
    nn_k = np.take_along_axis(other, keep, axis=1)
    return (labels[nn_k] != labels[:, None]).mean(axis=1)


@DETECTORS.register("knn", needs=("embeddings",), description="share of the k nearest neighbours with another label")
def knn(table: SampleTable, signals: Signals, *, k: int = KNN_K, backend: str = "faiss-cpu") -> Discovery:
    """Conflict score = kNN label disagreement in embedding space; per-class Otsu split into pseudo-groups."""
    emb = signals.need_embeddings("knn")
    rows = train_rows(table)
    x = emb.select(rows[S.SAMPLE_ID], what="train split").check_finite().matrix
    labels = rows[S.LABEL].to_numpy()
    sc = knn_disagreement(x, labels, k=k, backend=backend)
    return build_discovery(
        rows, sc, split_by_score(rows, sc), detector="knn", config={"k": k}, dynamics=signals.dynamics
    )


@DETECTORS.register(
    "cluster", needs=("embeddings", "dynamics"), description="embedding k-means per class, scored by cluster error"
)
def cluster(
    table: SampleTable,
    signals: Signals,
    *,
    k: int | None = None,
    k_max: int = 8,
    seed: int = 0,
    backend: str = "faiss-cpu",
) -> Discovery:
    """Pseudo-groups = embedding clusters per class; conflict score = the cluster's early proxy error rate."""
    emb = signals.need_embeddings("cluster")
    log = signals.need_dynamics("cluster")
    rows = train_rows(table)
    x = emb.select(rows[S.SAMPLE_ID], what="train split").check_finite().matrix
    assign, _ = cluster_per_class(
        x, rows[S.SAMPLE_ID], rows[S.LABEL].to_numpy(), KMeansConfig(k=k, k_max=k_max, seed=seed), backend=backend
    )
    stats = early_stats(log, rows[S.SAMPLE_ID])
    j = assign.join(stats, on=S.SAMPLE_ID).with_columns(
        pl.col("early_error").mean().over("cluster").alias("cluster_error")
    )
    j = rows.join(
        j.select(S.SAMPLE_ID, "cluster_in_class", "cluster_error"), on=S.SAMPLE_ID, how="left", maintain_order="left"
    )
    return build_discovery(
        rows,
        j["cluster_error"].to_numpy(),
        j["cluster_in_class"].to_numpy(),
        detector="cluster",
        config={"k": k, "k_max": k_max, "seed": seed},
        dynamics=log,
    )
