"""FAISS k-means (curate.index.kmeans) vs scikit-learn ``KMeans`` on 100,000 x 384.

Data: a seeded mixture of 50 Gaussian clusters in 384-d (the width of MiniLM embeddings). Both
run Euclidean k-means with k-means++ seeding and their defaults (curate: 25 Lloyd iterations on
at most 256 points per centroid, then assignment of all points; scikit-learn: up to 300
iterations on all points, tol 1e-4). Inertia = sum of squared distances of all points to their
nearest centroid, computed the same way for both. Each runs with 3 seeds; mean time and mean
inertia are compared. Targets: >= 10x faster, inertia within 1%.
Run: ``.venv/bin/python -m benchmarks.kmeans_faiss_vs_sklearn [--n 100000 --d 384 --k 50]``.
"""

from __future__ import annotations

import argparse

import numpy as np


def data(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)).astype(np.float32)
    assign = rng.integers(0, k, size=n)
    return (centers[assign] + rng.normal(scale=2.0, size=(n, d)).astype(np.float32)).astype(np.float32)


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    import faiss

    index = faiss.IndexFlatL2(x.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, _ = index.search(x, 1)
    return float(dist.sum())


def main() -> None:
    from sklearn.cluster import KMeans

    from benchmarks._common import report, timed
    from curate.index import kmeans

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    x = data(args.n, args.d, args.k)
    seeds = range(args.seeds)
    ours = [timed(lambda s=s: kmeans(x, args.k, spherical=False, seed=s)) for s in seeds]
    ref = [timed(lambda s=s: KMeans(n_clusters=args.k, n_init=1, random_state=s).fit(x)) for s in seeds]
    t_faiss = float(np.mean([t for t, _ in ours]))
    t_sk = float(np.mean([t for t, _ in ref]))
    i_faiss = float(np.mean([inertia(x, r.centroids) for _, r in ours]))
    i_sk = float(np.mean([inertia(x, r.cluster_centers_) for _, r in ref]))
    iters = [int(r.n_iter_) for _, r in ref]
    report(
        "kmeans_faiss_vs_sklearn",
        [
            f"data: {args.n} x {args.d} float32, {args.k} planted Gaussian clusters; k = {args.k}; CPU; mean of {args.seeds} seeds",
            f"curate (FAISS) k-means: {t_faiss:.2f} s, inertia {i_faiss:.6g}",
            f"scikit-learn KMeans: {t_sk:.2f} s ({iters} iterations), inertia {i_sk:.6g}",
            f"speed-up FAISS vs scikit-learn: {t_sk / t_faiss:.1f}x (target >= 10x)",
            f"inertia FAISS / scikit-learn - 1: {100 * (i_faiss / i_sk - 1):+.3f}% (target within 1%)",
        ],
    )


if __name__ == "__main__":
    main()
