"""Shared fixtures: an isolated cache per test, no progress bars, benchmarks built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from curate.data.benchmarks.fmnist_textures import fmnist_dir
from curate.data.benchmarks.fortunes_cue import fortunes_dir
from tests.embed import tiny_models


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core, at most 4), each worker's torch and
    the processes it starts get their share of the cores, so that workers do not oversubscribe them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        import torch

        torch.set_num_threads(int(threads))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CURATE_NO_PROGRESS", "1")


def have_fmnist() -> bool:
    return (fmnist_dir() / "train-images-idx3-ubyte.gz").exists()


def have_fortunes() -> bool:
    return (fortunes_dir() / "computers").exists()


requires_fmnist = pytest.mark.skipif(not have_fmnist(), reason="Debian dataset-fashion-mnist not installed (make data)")
requires_fortunes = pytest.mark.skipif(not have_fortunes(), reason="Debian fortunes not installed (make data)")


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default ``digits-color`` benchmark, built once (seed 0)."""
    os.environ["CURATE_NO_PROGRESS"] = "1"
    from curate import api

    out = tmp_path_factory.mktemp("bench") / "digits-color"
    api.make_benchmark("digits-color", out, seed=0)
    return out


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory, digits_dir: Path):  # type: ignore[no-untyped-def]
    """digits-color with embeddings in which the planted attribute dominates (background colour as
    a strong direction, the digit class as a weak one), and proxy dynamics recorded on them."""
    os.environ["CURATE_NO_PROGRESS"] = "1"
    from curate import api
    from curate.embed import EmbeddingTable

    table = api.load_dataset(digits_dir)
    rng = np.random.default_rng(0)
    a = table.frame["a"].to_numpy()
    y = table.frame["label"].to_numpy()
    x = rng.normal(size=(len(table), 16)).astype(np.float32)
    x[:, 0] += 4.0 * (2 * a - 1)  # attribute: strong
    x[:, 1] += 1.0 * (2 * y - 1)  # core: weak
    emb = EmbeddingTable(table.ids, x, {"encoder": "planted"})
    log = api.record_dynamics(
        table, emb, config=api.ProxyConfig(epochs=10, lr=0.01), workspace=tmp_path_factory.mktemp("ws")
    )
    return table, emb, log


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random BERT, ViT and CLIP folders and a resnet18 state-dict file, built once."""
    d = tmp_path_factory.mktemp("tiny")
    return {
        "bert": tiny_models.tiny_bert(d / "bert"),
        "vit": tiny_models.tiny_vit(d / "vit"),
        "clip": tiny_models.tiny_clip(d / "clip"),
        "resnet18": tiny_models.resnet18_weights(d / "resnet18.pth"),
    }


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from curate import api

    out = tmp_path_factory.mktemp("bench") / "dc-small"
    return api.make_benchmark("digits-color", out, n_train=40, n_val_per_group=2, n_test_per_group=2)


@pytest.fixture(scope="session")
def small_text(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import polars as pl

    from curate import api

    d = tmp_path_factory.mktemp("text")
    texts = tiny_models.SENTENCES[:6] * 3
    pl.DataFrame(
        {
            "id": [f"t{i}" for i in range(len(texts))],
            "split": [0] * 12 + [1] * 3 + [2] * 3,
            "y": [i % 2 for i in range(len(texts))],
            "a": [(i // 2) % 2 for i in range(len(texts))],
            "text": texts,
        }
    ).write_csv(d / "metadata.csv")
    return api.load_dataset(d / "metadata.csv")
