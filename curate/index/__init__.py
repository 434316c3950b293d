"""Layer 3: FAISS backends, per-class spherical k-means and nearest-neighbour indexes."""

from curate.index.backend import INDEX_BACKENDS, get_backend
from curate.index.kmeans import KMeansConfig, KMeansResult, choose_k, cluster_per_class, kmeans, silhouette
from curate.index.knn import KnnIndex

__all__ = [
    "INDEX_BACKENDS",
    "KMeansConfig",
    "KMeansResult",
    "KnnIndex",
    "choose_k",
    "cluster_per_class",
    "get_backend",
    "kmeans",
    "silhouette",
]
