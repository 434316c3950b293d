"""Stage 4a, index: FAISS spherical k-means within each class, and nearest neighbours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.cache import cached_stage, fingerprint
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.embed import EmbeddingTable
from curate.errors import InputDataError
from curate.index import KMeansConfig, KnnIndex, cluster_per_class, get_backend
from curate.pipeline._common import stage_root

CLUSTER_VERSION = 1


def cluster(
    table: SampleTable,
    embeddings: EmbeddingTable,
    *,
    config: KMeansConfig | None = None,
    split: str = "train",
    index_backend: str = "auto",
    cache: bool = True,
    workspace: str | Path | Workspace | None = None,
    engine: str = "local",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spherical k-means within each class of ``split`` (FAISS; GPU when available; ``engine="ray"``:
    one Ray task per class, same result).

    Returns:
        ``assignments`` ``[sample_id, label, cluster_in_class, cluster]`` and the per-cluster
        ``summary`` ``[cluster, label, cluster_in_class, size, share_of_class, silhouette]``.
    """
    cfg = config or KMeansConfig()
    backend = get_backend(index_backend)
    rows = table.split(split).frame
    if rows.height == 0:
        raise InputDataError(f"the {split!r} split is empty", file=table.where, fix="pick another split")
    x = embeddings.select(rows[S.SAMPLE_ID], what=f"{split} split").check_finite().matrix
    root, ws = stage_root(workspace, table)
    parts = (table.fingerprint(), fingerprint(x), cfg.to_dict(), split)

    def compute(folder: Path) -> None:
        assign, summary = cluster_per_class(
            x, rows[S.SAMPLE_ID], rows[S.LABEL].to_numpy(), cfg, backend=backend, engine=engine
        )
        assign.write_parquet(folder / "assignments.parquet")
        summary.write_parquet(folder / "summary.parquet")

    folder = cached_stage("cluster", CLUSTER_VERSION, parts, compute, enabled=cache, root=root)
    if ws is not None:
        ws.record("cluster", str(embeddings.meta.get("encoder", "embeddings")), folder, config=cfg.to_dict())
    return pl.read_parquet(folder / "assignments.parquet"), pl.read_parquet(folder / "summary.parquet")


def knn(embeddings: EmbeddingTable, k: int = 10, *, kind: str = "auto", index_backend: str = "auto") -> pl.DataFrame:
    """The ``k`` nearest neighbours (cosine) of every sample, itself excluded.

    Returns:
        ``[sample_id, neighbor_id, rank, similarity]``, ``rank`` 1 = most similar.
    """
    index = KnnIndex(kind=kind, backend=get_backend(index_backend)).fit(embeddings.check_finite().matrix)
    sims, idx = index.search(embeddings.matrix, min(k + 1, len(embeddings)))
    n = len(embeddings)
    ids = embeddings.ids.to_numpy()
    rows = pl.DataFrame(
        {
            S.SAMPLE_ID: np.repeat(ids, idx.shape[1]),
            "neighbor_id": ids[np.clip(idx, 0, n - 1)].reshape(-1),
            "similarity": sims.reshape(-1),
            "_self": (idx == np.arange(n)[:, None]).reshape(-1),
        }
    )
    return (
        rows.filter(~pl.col("_self"))
        .with_columns(pl.int_range(1, pl.len() + 1).over(S.SAMPLE_ID).alias("rank"))
        .filter(pl.col("rank") <= k)
        .select(S.SAMPLE_ID, "neighbor_id", "rank", "similarity")
    )
