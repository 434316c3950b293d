from __future__ import annotations

from pathlib import Path

import pytest

from tests.embed import tiny_models


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
