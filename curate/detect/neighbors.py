"""Neighbourhood and cluster detectors on the embedding space (FAISS).

``knn``: the share of a sample's ``k`` nearest train neighbours (cosine) that carry another label.
When the spurious attribute dominates the embedding, a bias-conflicting sample sits among the
other class's majority. ``cluster``: spherical k-means within each class (k by silhouette); the
conflict score is the cluster's early proxy error rate (how badly the proxy fits that cluster),
the George/SPARE idea on embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.engine import check_engine, ray_session
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.detect._base import DETECTORS, Discovery, Signals, build_discovery, early_stats, split_by_score, train_rows
from curate.index import KMeansConfig, KnnIndex, cluster_per_class
from curate.index.knn import CHUNK

KNN_K = 20
REFERENCE_MAX = 200_000


def knn_disagreement(
    x: np.ndarray,
    labels: np.ndarray,
    *,
    k: int = KNN_K,
    backend: str = "faiss-cpu",
    reference_max: int = REFERENCE_MAX,
    seed: int = 0,
    engine: str = "local",
) -> np.ndarray:
    """Share of each row's ``k`` nearest other rows (cosine) whose label differs.

    Above ``reference_max`` rows the neighbours are looked up among a seeded sample of that many
    rows (an estimate of the same local label mix at constant cost per query); queries run in
    chunks, so ``x`` may be a memory map larger than memory. ``engine="ray"`` searches the chunks
    as Ray tasks sharing one serialised index (same result).
    """
    check_engine(engine, "knn_disagreement()")
    n = len(x)
    if n > reference_max:
        rng = np.random.default_rng(derive_seed(seed, "knn-reference"))
        ref = np.sort(rng.choice(n, size=reference_max, replace=False))
    else:
        ref = np.arange(n)
    k = min(k, len(ref) - 1)
    index = KnnIndex(backend=backend, seed=seed).fit(x if len(ref) == n else x[ref])
    ref_labels = labels[ref]
    starts = list(range(0, n, CHUNK))
    if engine == "ray":
        import faiss

        ray = ray_session()
        blob = ray.put(faiss.serialize_index(index.index_))
        task = ray.remote(_disagreement_chunk)
        parts = ray.get(
            [task.remote(blob, np.asarray(x[s : s + CHUNK]), s, ref, ref_labels, labels, k) for s in starts]
        )
    else:
        parts = [_disagreement_chunk(index, x[s : s + CHUNK], s, ref, ref_labels, labels, k) for s in starts]
    return np.concatenate(parts)


def _disagreement_chunk(
    index: Any, q: np.ndarray, start: int, ref: np.ndarray, ref_labels: np.ndarray, labels: np.ndarray, k: int
) -> np.ndarray:
    """Label disagreement of the query rows ``start..start+len(q)`` (``index``: a KnnIndex or a serialised one)."""
    if not isinstance(index, KnnIndex):
        import faiss

        loaded = KnnIndex()
        loaded.index_, loaded.n_ = faiss.deserialize_index(index), len(ref)
        index = loaded
    _, nn = index.search(q, k + 1)
    own = np.arange(start, start + len(q))
    self_mask = ref[np.maximum(nn, 0)] == own[:, None]
    other = np.where(self_mask | (nn < 0), -1, nn)
    # drop self (or the last neighbour when self was not returned among ties)
    keep = np.argsort(other == -1, axis=1, kind="stable")[:, :k]
    nn_k = np.take_along_axis(other, keep, axis=1)
    valid = nn_k >= 0  # an approximate index may return fewer than k neighbours
    differ = (ref_labels[np.maximum(nn_k, 0)] != labels[own][:, None]) & valid
    return differ.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


@DETECTORS.register("knn", needs=("embeddings",), description="share of the k nearest neighbours with another label")
def knn(
    table: SampleTable, signals: Signals, *, k: int = KNN_K, backend: str = "faiss-cpu", engine: str = "local"
) -> Discovery:
    """Conflict score = kNN label disagreement in embedding space; per-class Otsu split into pseudo-groups."""
    emb = signals.need_embeddings("knn")
    rows = train_rows(table)
    x = emb.select(rows[S.SAMPLE_ID], what="train split").check_finite().matrix
    labels = rows[S.LABEL].to_numpy()
    sc = knn_disagreement(x, labels, k=k, backend=backend, engine=engine)
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
