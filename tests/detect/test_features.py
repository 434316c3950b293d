"""``features``: the bias-only model on the embedding dimensions most tied to the label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from curate import api
from curate.detect import features as F
from curate.detect import pseudo_groups_of
from curate.detect._base import BIAS_TOP_K
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError


def test_feature_t_is_welchs_one_vs_rest_t_in_any_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=301)
    x = rng.normal(size=(301, 6)) + y[:, None] * np.array([0.0, 0.5, -1.0, 0.0, 2.0, 0.1])
    x[:, 3] = 1.5  # a constant dimension ties to no class
    by_hand = np.zeros((6, 3))
    for c in range(3):
        for d in (0, 1, 2, 4, 5):
            by_hand[d, c] = stats.ttest_ind(x[y == c, d], x[y != c, d], equal_var=False).statistic
    np.testing.assert_allclose(F.feature_t(x, y), by_hand, rtol=1e-6, atol=1e-9)
    monkeypatch.setattr(F, "CHUNK", 7)  # read in chunks, as a memory map is
    np.testing.assert_allclose(F.feature_t(x, y), by_hand, rtol=1e-6, atol=1e-9)


def _shortcut_embeddings(table: api.SampleTable, seed: int = 0) -> EmbeddingTable:
    """128 dims: the attribute ``a`` in dims 3 and 7 (its values apart by 5 sd); the class weak in each
    of dims 20-59; dims 20-127 vary 4× as much as the rest (the object's appearance), so distances
    hardly see the attribute."""
    rng = np.random.default_rng(seed)
    a = table.frame["a"].to_numpy()
    y = table.frame["label"].to_numpy()
    x = rng.normal(size=(len(table), 128))
    x[:, 20:] *= 4.0
    x[:, [3, 7]] += 2.5 * (2 * a[:, None] - 1)
    x[:, 20:60] += 0.8 * (2 * y[:, None] - 1)
    return EmbeddingTable(table.ids, x.astype(np.float32), {"encoder": "planted"})


def test_features_finds_the_shortcut_dimensions_and_its_minority(digits_dir: Path) -> None:
    table = api.load_dataset(digits_dir)
    emb = _shortcut_embeddings(table)
    d = api.detect(table, embeddings=emb)  # auto: features for images; no dynamics needed
    assert d.detector == "features" and d.extra["dims"] == [3, 7]  # the default top_k = 2: the shortcut alone
    # the shortcut lives in 2 of 128 dimensions: a row's neighbours barely see it
    knn = api.detect(table, embeddings=emb, detector="knn")
    assert api.detection_auroc(table, d) > 0.97 > 0.85 > api.detection_auroc(table, knn)
    truth = table.split("train").frame.select("sample_id", (pl.col("a") != pl.col("label")).alias("minority"))
    got = d.scores.join(truth, on="sample_id")
    assert ((got["cluster"] == 1) == got["minority"]).mean() >= 0.97
    with pytest.raises(ConfigError, match="top_k"):
        api.detect(table, embeddings=emb, detector="features", top_k=0)


def test_features_scores_val_rows_with_its_own_model(digits_dir: Path, tmp_path: Path) -> None:
    table = api.load_dataset(digits_dir)
    emb = _shortcut_embeddings(table)
    d = api.detect(table, embeddings=emb, detector="features")
    val = pseudo_groups_of(d, table, emb, "val")
    # by hand: a val row is in its class's pseudo-minority when its attribute disagrees with its class
    truth = table.split("val").frame.select("sample_id", (pl.col("a") != pl.col("label")).alias("minority"))
    minority = set(d.scores.filter(pl.col("cluster") == 1)["pseudo_group"].to_list())
    got = truth.join(val, on="sample_id").with_columns(pl.col("pseudo_group").is_in(list(minority)).alias("flagged"))
    assert got.height == truth.height and got["minority"].sum() == truth.height // 2
    assert (got["flagged"] == got["minority"]).mean() >= 0.95
    with pytest.raises(ConfigError, match="needs their embeddings"):
        pseudo_groups_of(d, table, None, "val")
    # embeddings other than those it was fitted on are refused, not silently scored
    with pytest.raises(InputDataError, match="does not match"):
        pseudo_groups_of(d, table, _shortcut_embeddings(table, seed=1), "val")


def test_a_changed_detector_default_is_detected_again_not_read_from_the_cache(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from curate.pipeline.detect import cached_detect

    table = api.load_dataset(digits_dir)
    emb = _shortcut_embeddings(table)
    first = cached_detect(table, emb, None, api.ProxyConfig(), {"detector": "features"}, tmp_path)  # type: ignore[arg-type]
    assert len(first.extra["dims"]) == BIAS_TOP_K
    # a new curate with another default top_k: the cached discovery of the old default is not reused
    monkeypatch.setattr(F.features, "__kwdefaults__", {**F.features.__kwdefaults__, "top_k": 5})
    again = cached_detect(table, emb, None, api.ProxyConfig(), {"detector": "features"}, tmp_path)  # type: ignore[arg-type]
    assert len(again.extra["dims"]) == 5
