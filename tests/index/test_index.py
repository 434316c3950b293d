"""FAISS k-means and kNN on planted clusters with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError, MissingDependencyError, NotFittedError
from curate.index import INDEX_BACKENDS, KMeansConfig, KnnIndex, choose_k, cluster_per_class, get_backend, kmeans


def planted(n_per: int = 60, k: int = 3, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` tight clusters around random unit directions (cosine geometry)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    truth = np.repeat(np.arange(k), n_per)
    x = centers[truth] * rng.uniform(0.5, 3.0, size=(len(truth), 1)) + 0.05 * rng.normal(size=(len(truth), d))
    return x.astype(np.float32), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    from sklearn.metrics import adjusted_rand_score

    return bool(adjusted_rand_score(a, b) == 1.0)


def test_spherical_kmeans_recovers_planted_clusters() -> None:
    x, truth = planted()
    res = kmeans(x, 3, seed=0)
    assert same_partition(res.assign, truth)  # despite very different norms: spherical
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, atol=1e-5)
    assert res.inertia == pytest.approx(
        sum(np.sum((x[i] / np.linalg.norm(x[i]) - res.centroids[res.assign[i]]) ** 2) for i in range(len(x))), rel=1e-3
    )
    again = kmeans(x, 3, seed=0)
    np.testing.assert_array_equal(res.assign, again.assign)


def test_silhouette_picks_the_planted_k() -> None:
    x, truth = planted(k=4)
    res, sil = choose_k(x, KMeansConfig(k_min=2, k_max=7))
    assert len(res.centroids) == 4 and max(sil, key=sil.get) == 4
    assert same_partition(res.assign, truth)


def test_cluster_per_class_numbers_clusters_globally() -> None:
    x0, t0 = planted(k=2, seed=1)
    x1, t1 = planted(k=3, seed=2)
    x = np.vstack([x0, x1])
    labels = np.r_[np.zeros(len(x0), int), np.ones(len(x1), int)]
    ids = pl.Series([f"s{i}" for i in range(len(x))])
    assign, summary = cluster_per_class(x, ids, labels, KMeansConfig(k_max=5))
    assert summary["label"].to_list() == [0, 0, 1, 1, 1] and summary["cluster"].to_list() == [0, 1, 2, 3, 4]
    assert summary["size"].sum() == len(x) and summary.filter(pl.col("label") == 1)[
        "share_of_class"
    ].sum() == pytest.approx(1.0)
    assert same_partition(assign["cluster"].to_numpy(), np.r_[t0, t1 + 2])


def test_kmeans_errors() -> None:
    x, _ = planted()
    with pytest.raises(ConfigError, match="'k' must be an integer in"):
        kmeans(x[:2], 5)
    x[7, 3] = np.nan
    with pytest.raises(InputDataError, match="row 8"):
        kmeans(x, 3)
    with pytest.raises(ConfigError):
        KMeansConfig(k_min=5, k_max=2)


@pytest.mark.parametrize("kind", ["flat", "ivf", "ivf-sq8", "hnsw"])
def test_knn_against_brute_force(kind: str, tmp_path: Path) -> None:
    x, _ = planted(n_per=200, k=5, d=32)
    idx = KnnIndex(kind=kind, nlist=8, nprobe=8).fit(x)
    sims, nn = idx.search(x[:20], 5)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.argsort(-(xn[:20] @ xn.T), axis=1)[:, :5]
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(nn, exact, strict=True)])
    assert recall >= {"flat": 1.0, "ivf-sq8": 0.8}.get(kind, 0.9)  # 8-bit codes blur near-ties
    assert np.all(np.diff(sims, axis=1) <= 1e-6)  # best first
    idx.save(tmp_path / "i.faiss")
    back = KnnIndex.load(tmp_path / "i.faiss")
    np.testing.assert_array_equal(back.search(x[:20], 5)[1], nn)


def test_knn_auto_switches_to_ivf_and_errors() -> None:
    x, _ = planted(n_per=100, k=3)
    assert KnnIndex(flat_threshold=10_000).fit(x).kind_ == "flat"
    assert KnnIndex(flat_threshold=100).fit(x).kind_ == "ivf-sq8"
    with pytest.raises(NotFittedError):
        KnnIndex().search(x, 3)
    with pytest.raises(ConfigError, match="'kind' must be one of"):
        KnnIndex(kind="lsh")


def test_backends() -> None:
    assert get_backend("faiss-cpu") == "faiss-cpu"
    assert "faiss-gpu" in INDEX_BACKENDS
    if INDEX_BACKENDS.entry("faiss-gpu").unavailable is not None:
        with pytest.raises(MissingDependencyError, match=r"curate\[gpu\]"):
            get_backend("faiss-gpu")


def test_api_knn_and_cluster(tmp_path: Path, digits_dir: Path) -> None:
    table = api.load_dataset(digits_dir)
    x, _ = planted(n_per=len(table) // 2 + 1, k=2)
    emb = EmbeddingTable(table.ids, x[: len(table)], {"encoder": "planted"})
    nn = api.knn(emb, k=3)
    assert nn.height == 3 * len(table) and (nn["sample_id"] != nn["neighbor_id"]).all()
    assert nn.filter(pl.col("sample_id") == nn["sample_id"][0])["rank"].to_list() == [1, 2, 3]
    assign, summary = api.cluster(table, emb, config=KMeansConfig(k=2), workspace=tmp_path / "ws")
    assert assign.height == len(table.split("train")) and summary.height == 4


def test_chunked_build_and_search_equal_one_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import curate.index.knn as knn_module

    x, _ = planted(n_per=200, k=5, d=32)
    whole = KnnIndex(kind="flat").fit(x).search(x, 6)
    monkeypatch.setattr(knn_module, "CHUNK", 64)
    path = tmp_path / "x.npy"
    np.save(path, x)
    mapped = np.load(path, mmap_mode="r")  # a memory map is read chunk by chunk
    chunked = KnnIndex(kind="flat").fit(mapped).search(mapped, 6)
    np.testing.assert_array_equal(chunked[1], whole[1])
    np.testing.assert_allclose(chunked[0], whole[0], rtol=1e-6)
    x[300, 2] = np.nan
    with pytest.raises(InputDataError, match="row 301"):
        KnnIndex(kind="flat").fit(x)


def test_knn_disagreement_on_a_reference_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    import curate.detect.neighbors as nb
    from curate.eval import auroc

    rng = np.random.default_rng(0)
    n = 4000
    labels = rng.integers(0, 2, n)
    attr = np.where(rng.random(n) < 0.9, labels, 1 - labels)  # 10% bias-conflicting
    x = rng.normal(size=(n, 16)).astype(np.float32)
    x[:, 0] += 3.0 * (2 * attr - 1)
    full = nb.knn_disagreement(x, labels)
    monkeypatch.setattr(nb, "CHUNK", 500)
    sampled = nb.knn_disagreement(x, labels, reference_max=1000)
    minority = attr != labels
    assert auroc(full, minority) > 0.95 and auroc(sampled, minority) > 0.95
    assert np.corrcoef(full, sampled)[0, 1] > 0.8
    np.testing.assert_array_equal(nb.knn_disagreement(x, labels, reference_max=n), full)  # chunking changes nothing


def test_no_faiss_warning_on_small_clusters(capfd: pytest.CaptureFixture[str]) -> None:
    """A class of 150 points clustered with k up to 8 (FAISS wants 39·k) and an IVF index with more
    lists than 39 points each: FAISS prints nothing (it used to print one warning per k)."""
    x, _ = planted(n_per=50, k=3)
    res, scores = choose_k(x, KMeansConfig(k_min=2, k_max=8))
    assert sorted(scores) == list(range(2, 9)) and len(res.centroids) == 3
    KnnIndex(kind="ivf", nlist=16).fit(x)
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err and "training points" not in out + err
