"""The Ray engine: embedding with Ray Data actors and per-class clustering as Ray tasks equal the
single-process results (a local Ray cluster on CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from curate import api
from tests.embed import tiny_models

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_local():  # type: ignore[no-untyped-def]
    import ray

    from curate._core.engine import ray_session

    yield ray_session()
    ray.shutdown()


@pytest.mark.integration
def test_ray_embedding_and_clustering_equal_local(ray_local, digits_dir: Path, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    table = api.load_dataset(digits_dir)
    table = table.with_frame(table.frame.head(300))
    vit = str(tiny_models.tiny_vit(tmp_path / "vit"))
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "local"))
    local = api.embed(table, vit, shard_size=128)
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "ray"))
    distributed = api.embed(table, vit, shard_size=128, engine="ray")
    assert distributed.ids.equals(local.ids)
    np.testing.assert_allclose(distributed.matrix, local.matrix, rtol=0, atol=1e-5)

    bert = str(tiny_models.tiny_bert(tmp_path / "bert"))
    texts = table.with_frame(table.frame.with_columns(text=table.frame["sample_id"] + " is a digit").drop("path"))
    t_local = api.embed(texts, f"hf-text:{bert}", cache=False)
    t_ray = api.embed(texts, f"hf-text:{bert}", cache=False, engine="ray")
    np.testing.assert_allclose(t_ray.matrix, t_local.matrix, rtol=0, atol=1e-5)

    train = api.load_dataset(digits_dir)
    emb = api.embed(train, vit)
    cfg = api.KMeansConfig(k_max=4, seed=0)
    a_local, s_local = api.cluster(train, emb, config=cfg, cache=False)
    a_ray, s_ray = api.cluster(train, emb, config=cfg, cache=False, engine="ray")
    assert a_ray.equals(a_local) and s_ray.equals(s_local)
    import curate.detect.neighbors as nb

    monkeypatch.setattr(nb, "CHUNK", 300)  # several query chunks, several Ray tasks
    d_local = api.detect(train, embeddings=emb, detector="knn")
    d_ray = api.detect(train, embeddings=emb, detector="knn", engine="ray")
    assert d_ray.scores.equals(d_local.scores)


def test_unknown_engine_is_named(digits_dir: Path) -> None:
    from curate.errors import ConfigError

    table = api.load_dataset(digits_dir)
    with pytest.raises(ConfigError, match="engine"):
        api.embed(table.with_frame(table.frame.head(10)), "minilm", engine="spark")
