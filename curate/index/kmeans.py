"""FAISS k-means: spherical k-means within each class, ``k`` given or chosen by silhouette.

Spherical k-means (unit-norm inputs and centroids) clusters by cosine similarity, the geometry of
pretrained embeddings. Training uses at most ``max_points_per_centroid × k`` points (FAISS's
default 256), seeded by greedy k-means++ on 64·k of them (as scikit-learn; FAISS alone seeds at random,
which can merge clusters), best of ``nredo`` seedings by objective; then every point is assigned. ``k`` by
silhouette is scored on a seeded subsample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.engine import check_engine, ray_session
from curate._core.seed import derive_seed
from curate.errors import ConfigError, InputDataError

SEED_POINTS_PER_CENTROID = 64  # k-means++ seeds on 64·k points: same inertia as on all, much faster
# FAISS warns ("please provide at least 39*k training points") below this many points per centroid;
# the warning changes nothing in the result, and small classes are normal here, so the threshold
# is lowered to what the training sample holds (see :func:`min_points_per_centroid`).
FAISS_MIN_POINTS_PER_CENTROID = 39
CLUSTER = "cluster"
CLUSTER_IN_CLASS = "cluster_in_class"


@dataclass(frozen=True, kw_only=True)
class KMeansConfig:
    """k-means settings. ``k=None`` picks k in ``[k_min, k_max]`` by the best cosine silhouette."""

    k: int | None = None
    k_min: int = 2
    k_max: int = 8
    niter: int = 25
    nredo: int = 1
    spherical: bool = True
    max_points_per_centroid: int = 256
    silhouette_sample: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise ConfigError.bad_param("KMeansConfig()", "k", "an integer >= 1 or None (silhouette)", self.k)
        if not 2 <= self.k_min <= self.k_max:
            raise ConfigError.bad_param(
                "KMeansConfig()", "k_min/k_max", "2 <= k_min <= k_max", (self.k_min, self.k_max)
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (cache key and provenance)."""
        return asdict(self)


@dataclass(frozen=True)
class KMeansResult:
    """Centroids ``(k, d)``, assignment per point, and the sum of squared distances to the centroids."""

    centroids: np.ndarray
    assign: np.ndarray
    inertia: float


def kmeans_plusplus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's variant with
    ``2 + ln k`` candidates per step, keeping the one that lowers the potential most)."""
    n = len(x)
    trials = 2 + int(np.log(k))
    sq = np.einsum("ij,ij->i", x, x)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = np.maximum(sq - 2 * x @ x[first] + sq[first], 0)
    for c in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than centers: repeat one
            centers[c:] = x[rng.integers(n, size=k - c)]
            break
        cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
        cand = np.minimum(cand, n - 1)
        d = np.maximum(sq[None, :] - 2 * x[cand] @ x.T + sq[cand][:, None], 0)
        pot = np.minimum(closest[None, :], d)
        best = int(np.argmin(pot.sum(axis=1)))
        centers[c] = x[cand[best]]
        closest = pot[best]
    return centers


ASSIGN_CHUNK = 65_536


def min_points_per_centroid(n_train: int, k: int) -> int:
    """FAISS's ``min_points_per_centroid`` for ``n_train`` points and ``k`` centroids: its default
    (39), lowered so that ``n_train >= k * value`` and FAISS never prints its too-few-points warning
    (which only warns: the clustering is the same)."""
    return max(1, min(FAISS_MIN_POINTS_PER_CENTROID, n_train // max(1, k)))


def _prepare(x: np.ndarray, spherical: bool, rows: np.ndarray | int = 0) -> np.ndarray:
    """float32 rows (normalised when ``spherical``); ``rows``: global numbers of ``x``'s rows (for errors)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x.sum(axis=1)).all():  # a row sum is finite iff every entry is (inf - inf = nan)
        local = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        row = int(rows[local]) if isinstance(rows, np.ndarray) else rows + local
        raise InputDataError(
            "embeddings hold NaN or inf values", file="k-means input", row=row + 1, fix="recompute them"
        )
    if spherical:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms > 0, norms, 1.0)
    return x


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    niter: int = 25,
    nredo: int = 1,
    spherical: bool = True,
    seed: int = 0,
    max_points_per_centroid: int = 256,
    backend: str = "faiss-cpu",
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` clusters with FAISS (on the GPU for ``faiss-gpu``).

    Centroids are trained on a seeded sample of at most ``max_points_per_centroid·k`` rows; every
    row is then assigned in chunks, so ``x`` may be a memory map larger than memory.

    Raises:
        ConfigError: ``k`` exceeds the number of points.
    """
    import faiss

    if not 1 <= k <= len(x):
        raise ConfigError.bad_param("kmeans()", "k", f"an integer in [1, {len(x)}] (the number of points)", k)
    rng = np.random.default_rng(derive_seed(seed, "kmeans"))
    n_train = min(len(x), max_points_per_centroid * k)
    if n_train == len(x):
        train = _prepare(x, spherical)
    else:
        pick = rng.choice(len(x), size=n_train, replace=False)
        order = np.argsort(pick)  # read the rows in file order, keep the drawn order
        train = np.empty((n_train, x.shape[1]), dtype=np.float32)
        train[order] = _prepare(x[pick[order]], spherical, pick[order])
    best: tuple[float, Any] | None = None
    for redo in range(max(1, nredo)):
        # k-means++ seeding (scikit-learn's greedy variant) on a random part of the training sample,
        # then FAISS Lloyd iterations on the whole training sample
        part = train[rng.permutation(len(train))[: SEED_POINTS_PER_CENTROID * k]]
        init = kmeans_plusplus(part, k, np.random.default_rng(derive_seed(seed, "kmeans++", redo)))
        km = faiss.Kmeans(
            x.shape[1],
            k,
            niter=niter,
            spherical=spherical,
            max_points_per_centroid=max_points_per_centroid,
            min_points_per_centroid=min_points_per_centroid(len(train), k),
            gpu=backend == "faiss-gpu",
            verbose=False,
        )
        km.train(train, init_centroids=np.ascontiguousarray(init, dtype=np.float32))
        objs = np.asarray(km.obj if km.obj is not None else [0.0])
        obj = float(objs[-1]) if objs.size else 0.0
        if best is None or obj < best[0]:
            best = (obj, km)
    assert best is not None
    km = best[1]
    assign = np.empty(len(x), dtype=np.int64)
    inertia = 0.0
    for start in range(0, len(x), ASSIGN_CHUNK):
        part = _prepare(x[start : start + ASSIGN_CHUNK], spherical, start)
        score, a = km.index.search(part, 1)  # spherical: inner products; otherwise squared L2 distances
        sq = np.maximum(2.0 - 2.0 * score[:, 0], 0.0) if spherical else score[:, 0]
        assign[start : start + len(part)] = a[:, 0]
        inertia += float(sq.astype(np.float64).sum())
    return KMeansResult(np.asarray(km.centroids), assign, inertia)


def kmeans_with(x: np.ndarray, k: int, cfg: KMeansConfig, *, backend: str = "faiss-cpu") -> KMeansResult:
    """:func:`kmeans` with the settings of ``cfg`` (``k`` given separately)."""
    return kmeans(
        x,
        k,
        niter=cfg.niter,
        nredo=cfg.nredo,
        spherical=cfg.spherical,
        seed=cfg.seed,
        max_points_per_centroid=cfg.max_points_per_centroid,
        backend=backend,
    )


def silhouette(x: np.ndarray, assign: np.ndarray, *, sample: int, seed: int) -> float:
    """Mean cosine silhouette on a seeded subsample of at most ``sample`` points (−1 if one cluster)."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(assign)) < 2:
        return -1.0
    rng = np.random.default_rng(derive_seed(seed, "silhouette"))
    idx = rng.choice(len(x), size=min(sample, len(x)), replace=False)
    if len(np.unique(assign[idx])) < 2:
        return -1.0
    return float(silhouette_score(x[idx], assign[idx], metric="cosine"))


def choose_k(x: np.ndarray, cfg: KMeansConfig, *, backend: str = "faiss-cpu") -> tuple[KMeansResult, dict[int, float]]:
    """Fit k-means for every k in ``[k_min, k_max]`` (capped by the points) and keep the best silhouette."""
    best: tuple[float, int, KMeansResult] | None = None
    scores: dict[int, float] = {}
    for k in range(cfg.k_min, min(cfg.k_max, len(x) - 1) + 1):
        res = kmeans_with(x, k, cfg, backend=backend)
        scores[k] = silhouette(x, res.assign, sample=cfg.silhouette_sample, seed=cfg.seed)
        if best is None or scores[k] > best[0]:
            best = (scores[k], k, res)
    if best is None:  # fewer than 3 points: one cluster
        res = kmeans(x, 1, spherical=cfg.spherical, seed=cfg.seed, backend=backend)
        return res, {1: -1.0}
    return best[2], scores


def cluster_one_class(x: np.ndarray, cfg: KMeansConfig, backend: str = "faiss-cpu") -> tuple[KMeansResult, float]:
    """k-means of one class's rows (k chosen by silhouette unless ``cfg.k``) and the chosen k's silhouette."""
    if cfg.k is None:
        res, sil = choose_k(x, cfg, backend=backend)
        return res, sil[len(res.centroids)]
    return kmeans_with(x, min(cfg.k, len(x)), cfg, backend=backend), float("nan")


def cluster_per_class(
    x: np.ndarray,
    ids: pl.Series,
    labels: np.ndarray,
    cfg: KMeansConfig,
    *,
    backend: str = "faiss-cpu",
    engine: str = "local",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """k-means within each class (``engine="ray"``: one Ray task per class; same result).

    Returns:
        ``assignments`` ``[sample_id, label, cluster_in_class, cluster]`` (``cluster`` numbers all
        clusters of all classes consecutively) and ``summary`` ``[cluster, label, cluster_in_class,
        size, share_of_class, silhouette]`` (the class's chosen-k silhouette).

    Raises:
        InputDataError: a class has no samples or the inputs do not line up.
    """
    if len(x) != len(ids) or len(ids) != len(labels):
        raise InputDataError(
            f"{len(x)} embeddings, {len(ids)} ids and {len(labels)} labels do not line up", file="cluster input"
        )
    check_engine(engine, "cluster_per_class()")
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == y) for y in classes]
    if engine == "ray":
        ray = ray_session()
        task = ray.remote(cluster_one_class)
        results = ray.get([task.remote(x[rows], cfg, backend) for rows in members])
    else:
        results = [cluster_one_class(x[rows], cfg, backend) for rows in members]
    parts, summary, offset = [], [], 0
    for y, rows, (res, k_sil) in zip(classes, members, results, strict=True):
        parts.append(
            pl.DataFrame(
                {
                    S.SAMPLE_ID: ids.gather(rows),
                    S.LABEL: np.full(len(rows), int(y)),
                    CLUSTER_IN_CLASS: res.assign,
                    CLUSTER: res.assign + offset,
                }
            )
        )
        sizes = np.bincount(res.assign, minlength=len(res.centroids))
        for c, n in enumerate(sizes):
            summary.append(
                {
                    CLUSTER: offset + c,
                    S.LABEL: int(y),
                    CLUSTER_IN_CLASS: c,
                    "size": int(n),
                    "share_of_class": float(n / len(rows)),
                    "silhouette": k_sil,
                }
            )
        offset += len(res.centroids)
    return pl.concat(parts), pl.DataFrame(summary)
