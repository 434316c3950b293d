"""``KnnIndex``: nearest neighbours by inner product (cosine on unit vectors) with FAISS.

``kind="auto"`` uses an exact flat index up to ``flat_threshold`` points and above it an IVF index
with 8-bit scalar-quantised vectors (``ivf-sq8``: a quarter of the float32 matrix; ``nlist ≈
4·sqrt(N)``, trained on a seeded sample); ``ivf`` (full vectors) and ``hnsw`` are also offered.
Vectors are normalised, added and searched in chunks, so a memory-mapped matrix is never copied
whole. Follows the scikit-learn contract: settings in ``__init__``, ``fit`` builds, fitted
attributes end in ``_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from curate._core.io import atomic_path
from curate._core.seed import derive_seed
from curate.errors import ConfigError, InputDataError, NotFittedError
from curate.index.backend import to_cpu, to_device
from curate.index.kmeans import min_points_per_centroid

KINDS = ("auto", "flat", "ivf", "ivf-sq8", "hnsw")
FLAT_THRESHOLD = 50_000
CHUNK = 65_536
IVF_TRAIN_POINTS_PER_LIST = 64


class KnnIndex:
    """Inner-product nearest-neighbour index over the rows of a matrix.

    Args:
        kind: ``auto``, ``flat`` (exact), ``ivf`` (inverted lists), ``ivf-sq8`` (inverted lists of
            8-bit codes) or ``hnsw`` (graph).
        normalize: L2-normalise vectors so inner product is cosine similarity.
        nlist: IVF lists (default ``4·sqrt(N)``); ``nprobe``: lists visited per query.
        hnsw_m: HNSW graph degree.
        flat_threshold: largest N for an exact index under ``auto``.
        backend: ``faiss-cpu`` or ``faiss-gpu`` (a resolved backend name).
        seed: seeds the IVF training sample.
    """

    def __init__(
        self,
        *,
        kind: str = "auto",
        normalize: bool = True,
        nlist: int | None = None,
        nprobe: int = 16,
        hnsw_m: int = 32,
        flat_threshold: int = FLAT_THRESHOLD,
        backend: str = "faiss-cpu",
        seed: int = 0,
    ) -> None:
        if kind not in KINDS:
            raise ConfigError.bad_param("KnnIndex()", "kind", f"one of {KINDS}", kind)
        self.kind = kind
        self.normalize = normalize
        self.nlist = nlist
        self.nprobe = nprobe
        self.hnsw_m = hnsw_m
        self.flat_threshold = flat_threshold
        self.backend = backend
        self.seed = seed

    def _vectors(self, x: np.ndarray, rows: np.ndarray | int = 0) -> np.ndarray:
        """float32 rows, normalised; ``rows``: the global row numbers of ``x`` (or the first one)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if not np.isfinite(x).all():
            local = int(np.flatnonzero(~np.isfinite(x).all(1))[0])
            row = int(rows[local]) if isinstance(rows, np.ndarray) else rows + local
            raise InputDataError(
                "vectors hold NaN or inf values", file="knn input", row=row + 1, fix="recompute the embeddings"
            )
        if self.normalize:
            n = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / np.where(n > 0, n, 1.0)
        return x

    def fit(self, x: np.ndarray) -> KnnIndex:
        """Build the index over the rows of ``x`` (any array-like of rows, e.g. a memory map)."""
        import faiss

        n, d = x.shape
        kind = self.kind if self.kind != "auto" else ("flat" if n <= self.flat_threshold else "ivf-sq8")
        if kind == "flat":
            index: Any = faiss.IndexFlatIP(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        else:
            nlist = self.nlist or max(1, int(4 * np.sqrt(n)))
            if kind == "ivf":
                index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFScalarQuantizer(
                    faiss.IndexFlatIP(d), d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
                )
            rng = np.random.default_rng(derive_seed(self.seed, "ivf-train"))
            sample = np.sort(rng.choice(n, size=min(n, nlist * IVF_TRAIN_POINTS_PER_LIST), replace=False))
            index.cp.min_points_per_centroid = min_points_per_centroid(len(sample), nlist)  # no FAISS warning
            index.train(self._vectors(x[sample], sample))
            index.nprobe = min(self.nprobe, nlist)
        for start in range(0, n, CHUNK):
            index.add(self._vectors(x[start : start + CHUNK], start))
        self.kind_ = kind
        self.index_ = to_device(index, self.backend)
        self.n_ = n
        return self

    def _check(self) -> None:
        if not hasattr(self, "index_"):
            raise NotFittedError("KnnIndex is not fitted; call fit(x) first")

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar indexed rows for each query: ``(similarities, row indices)``, best first."""
        self._check()
        if not 1 <= k <= self.n_:
            raise ConfigError.bad_param("KnnIndex.search()", "k", f"an integer in [1, {self.n_}]", k)
        sims = np.empty((len(q), k), dtype=np.float32)
        idx = np.empty((len(q), k), dtype=np.int64)
        for start in range(0, len(q), CHUNK):
            sims[start : start + CHUNK], idx[start : start + CHUNK] = self.index_.search(
                self._vectors(q[start : start + CHUNK], start), k
            )
        return sims, idx

    def save(self, path: str | Path) -> Path:
        """Write the index in CPU form, atomically."""
        import faiss

        self._check()
        with atomic_path(path) as tmp:
            faiss.write_index(to_cpu(self.index_), str(tmp))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, *, backend: str = "faiss-cpu", normalize: bool = True) -> KnnIndex:
        """Read an index written by :meth:`save` and move it to ``backend``."""
        import faiss

        if not Path(path).exists():
            raise InputDataError(
                "index file not found", file=path, fix="build it with `curate cluster` or KnnIndex.fit"
            )
        index = faiss.read_index(str(path))
        self = cls(normalize=normalize, backend=backend)
        self.kind_ = "loaded"
        self.index_ = to_device(index, backend)
        self.n_ = int(index.ntotal)
        return self
