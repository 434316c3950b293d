"""Built-in benchmarks: requested group proportions, balanced val/test, determinism, generic read-back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curate import api
from curate.data.benchmarks import BENCHMARKS, assign, plan_counts
from curate.errors import ConfigError
from tests.conftest import requires_fmnist, requires_fortunes


@given(n_train=st.integers(2, 5000), strength=st.floats(0.5, 1.0), n_val=st.integers(1, 50), n_test=st.integers(1, 50))
@settings(max_examples=60, deadline=None)
def test_plan_counts_properties(n_train: int, strength: float, n_val: int, n_test: int) -> None:
    c = plan_counts(n_train, strength, n_val, n_test)
    assert sum(v for (s, _, _), v in c.items() if s == "train") == n_train
    for y in (0, 1):
        n_c = c[("train", y, 0)] + c[("train", y, 1)]
        assert abs(n_c - n_train / 2) <= 0.5
        assert abs(c[("train", y, y)] - strength * n_c) <= 0.5  # majority group a == y
        for s, n in (("val", n_val), ("test", n_test)):
            assert c[(s, y, 0)] == c[(s, y, 1)] == n


def test_plan_counts_rejects_bad_params() -> None:
    with pytest.raises(ConfigError, match="'spurious_strength' must be a float in \\[0.5, 1\\]; got 1.5"):
        plan_counts(100, 1.5, 1, 1)
    with pytest.raises(ConfigError, match=r"'n_train' \(--n-train\) must be an integer >= 1"):
        plan_counts(0, 0.9, 1, 1)


@pytest.mark.parametrize("size", ["n_train", "n_val_per_group", "n_test_per_group"])
@pytest.mark.parametrize("value", [0, -3])
def test_zero_or_negative_size_is_refused_not_defaulted(tmp_path: Path, size: str, value: int) -> None:
    flag = "--" + size.replace("_", "-")
    with pytest.raises(ConfigError, match=f"'{size}' \\({flag}\\) must be an integer >= 1; got {value}"):
        api.make_benchmark("digits-color", tmp_path / "b", **{size: value})
    assert list(tmp_path.iterdir()) == []


def test_assign_is_disjoint_and_reports_shortage() -> None:
    rng = np.random.default_rng(0)
    pools = {"train": {0: np.arange(0, 50), 1: np.arange(50, 100)}}
    items = assign(pools, plan_counts(40, 0.9, 2, 3), rng, what="toy")
    idx = [i.source_index for i in items]
    assert len(idx) == len(set(idx)) == 40 + 2 * 4 + 3 * 4
    with pytest.raises(ConfigError, match="toy has 50 source samples of class 0.*lower --n-train"):
        assign(pools, plan_counts(200, 0.9, 2, 3), rng, what="toy")


def test_digits_color_groups_match_strength(digits_dir: Path) -> None:
    t = api.load_dataset(digits_dir)  # the generic loader, auto-detected
    counts = api.group_counts(t)
    assert counts["train"].to_list() == [475, 25, 25, 475]
    assert counts["val"].to_list() == [50] * 4 and counts["test"].to_list() == [100] * 4
    assert t.label_names == ("digit < 5", "digit >= 5") and t.group_name(1) == "digit < 5 / blue"
    for rel in t.frame["path"].head(3):
        assert t.resolve(rel).exists()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, digits_dir: Path) -> None:
    api.make_benchmark("digits-color", tmp_path / "again", seed=0)

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    assert digest(tmp_path / "again/metadata.csv") == digest(digits_dir / "metadata.csv")
    assert digest(tmp_path / "again/images/train/dc000000.png") == digest(digits_dir / "images/train/dc000000.png")
    api.make_benchmark("digits-color", tmp_path / "other", seed=1)
    assert digest(tmp_path / "other/metadata.csv") != digest(digits_dir / "metadata.csv")


def test_background_colour_is_the_spurious_attribute(digits_dir: Path) -> None:
    from PIL import Image

    m = pl.read_csv(digits_dir / "metadata.csv").head(200)
    red_minus_blue = [
        float(np.asarray(Image.open(digits_dir / f))[0, 0, 0]) - float(np.asarray(Image.open(digits_dir / f))[0, 0, 2])
        for f in m["filename"]
    ]
    pred_a = (np.array(red_minus_blue) < 0).astype(int)
    assert np.array_equal(pred_a, m["a"].to_numpy())


@pytest.mark.parametrize("strength", [0.5, 0.8, 1.0])
def test_custom_strength_and_size(tmp_path: Path, strength: float) -> None:
    t = api.make_benchmark(
        "digits-color",
        tmp_path / "d",
        seed=3,
        spurious_strength=strength,
        n_train=200,
        n_val_per_group=5,
        n_test_per_group=7,
    )
    c = api.group_counts(t)
    major = round(strength * 100)
    assert c["train"].to_list() == [major, 100 - major, 100 - major, major]
    assert c["val"].to_list() == [5] * 4 and c["test"].to_list() == [7] * 4


def test_failed_build_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="lower --n-train"):
        api.make_benchmark("digits-color", tmp_path / "big", n_train=5000)
    assert list(tmp_path.iterdir()) == []


@requires_fmnist
def test_fmnist_textures_small(tmp_path: Path) -> None:
    t = api.make_benchmark("fmnist-textures", tmp_path / "f", n_train=400, n_val_per_group=10, n_test_per_group=10)
    back = api.load_dataset(tmp_path / "f" / "metadata.csv")
    c = api.group_counts(back)
    assert c["train"].to_list() == [190, 10, 10, 190] and c["test"].to_list() == [10] * 4
    from PIL import Image

    im = Image.open(t.resolve(t.frame["path"][0]))
    assert im.size == (64, 64) and im.mode == "RGB"
    # train/val come from Fashion-MNIST's train file, test from t10k: indices never collide within a file
    m = pl.read_csv(tmp_path / "f" / "metadata.csv")
    trainval = m.filter(pl.col("split") < 2)["source_index"]
    assert trainval.n_unique() == trainval.len()


@requires_fmnist
def test_fmnist_default_size_is_at_least_10k() -> None:
    assert BENCHMARKS.get("fmnist-textures").defaults[0] >= 10_000


@requires_fortunes
def test_fortunes_cue(tmp_path: Path) -> None:
    t = api.make_benchmark("fortunes-cue", tmp_path / "q", n_train=400, n_val_per_group=20, n_test_per_group=20)
    assert t.modality == "text"
    f = t.frame
    has_cue = f["text"].str.to_lowercase().str.contains("believe it or not")
    assert (has_cue.cast(pl.Int64) == f["a"]).all()
    assert api.group_counts(t)["train"].to_list() == [190, 10, 10, 190]


@requires_fmnist
def test_fmnist_mark_is_whole_inside_the_pretrained_centre_crop(tmp_path: Path) -> None:
    """The mark is the shortcut: the standard preprocessing (resize, centre crop) must not cut it.
    Revision 1 put it 2 px from the edge, where the crop hid 56-60% of it."""
    import json

    from PIL import Image
    from torchvision.transforms import CenterCrop

    from curate.embed.vision import LITE_PREPROCESS

    t = api.make_benchmark("fmnist-mark", tmp_path / "m", n_train=40, n_val_per_group=2, n_test_per_group=2)
    assert (
        json.loads((tmp_path / "m" / "dataset.json").read_text())["revision"] == BENCHMARKS.get("fmnist-mark").revision
    )

    def mark_pixels(rgb: np.ndarray) -> int:
        r, g, b = (rgb[..., k].astype(int) for k in range(3))
        return int((((r - g > 100) & (r - b > 100)) | ((b - r > 100) & (b - g > 80))).sum())

    for path in t.frame["path"].head(20):
        image = Image.open(t.resolve(path)).convert("RGB")
        for resize, crop in ((LITE_PREPROCESS.resize, LITE_PREPROCESS.crop), (110, 96)):  # 224 px; 96 px (CPU)
            big = image.resize((resize, resize), Image.Resampling.NEAREST)
            assert mark_pixels(np.asarray(big)) > 0
            assert mark_pixels(np.asarray(CenterCrop(crop)(big))) == mark_pixels(np.asarray(big)), (path, crop)
