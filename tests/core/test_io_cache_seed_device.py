from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate._core import cache, device, seed
from curate._core.io import atomic_dir, atomic_path, write_json_atomic
from curate.errors import CacheError, ConfigError, DeviceUnavailableError, OutputExistsError


def test_atomic_path_commits_on_success(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "m.parquet"
    with atomic_path(out) as tmp:
        pl.DataFrame({"a": [1]}).write_parquet(tmp)
    assert pl.read_parquet(out)["a"].to_list() == [1]
    assert [p.name for p in out.parent.iterdir()] == ["m.parquet"]


def test_atomic_path_leaves_old_file_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    write_json_atomic(out, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert out.read_text().strip().startswith("{") and '"v": 1' in out.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_dir(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "x").write_text("1")
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with atomic_dir(out) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(OutputExistsError, match="--overwrite"), atomic_dir(out):
        pass
    with atomic_dir(out, overwrite=True) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["y"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_fingerprint_is_stable_and_content_addressed() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    f1 = cache.fingerprint({"b": 1, "a": [1.5, "x"]}, a, pl.DataFrame({"x": [1, 2]}))
    f2 = cache.fingerprint({"a": [1.5, "x"], "b": 1}, a.copy(), pl.DataFrame({"x": [1, 2]}))
    assert f1 == f2
    assert cache.fingerprint(a) != cache.fingerprint(a.astype(np.float64))
    assert cache.fingerprint(1) != cache.fingerprint(1.0)


def test_unhashable_input_is_an_error() -> None:
    with pytest.raises(CacheError, match="cannot fingerprint a object"):
        cache.fingerprint(object())


def test_cached_stage_hits_and_recomputes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Path] = []

    def compute(d: Path) -> None:
        calls.append(d)
        (d / "out.txt").write_text("v")

    p1 = cache.cached_stage("embed", 1, ("ds", "enc"), compute)
    assert p1.is_relative_to(tmp_path / "cache")
    with caplog.at_level("INFO", logger="curate"):
        p2 = cache.cached_stage("embed", 1, ("ds", "enc"), compute)
    assert p1 == p2 and len(calls) == 1 and "loaded cached embed" in caplog.text
    p3 = cache.cached_stage("embed", 2, ("ds", "enc"), compute)
    assert p3 != p1 and len(calls) == 2
    cache.cached_stage("embed", 1, ("ds", "enc"), compute, enabled=False)
    assert len(calls) == 3 and (p1 / "out.txt").read_text() == "v"


def test_cache_entry_not_created_when_compute_fails() -> None:
    def boom(d: Path) -> None:
        (d / "partial").write_text("x")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        cache.cached_stage("embed", 1, ("x",), boom)
    assert not cache.stage_dir("embed", 1, "x").exists()


@pytest.mark.parametrize("damage", ["truncate", "edit", "remove"])
@pytest.mark.parametrize("kind", ["cached", "resumable"])
def test_a_damaged_cache_entry_is_recomputed_with_a_warning(
    damage: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path] = []

    def compute(d: Path) -> None:
        calls.append(d)
        (d / "shards").mkdir(exist_ok=True)
        (d / "shards" / "m.npy").write_bytes(bytes(range(256)) * 1024)

    stage = cache.cached_stage if kind == "cached" else cache.resumable_stage
    entry = stage("embed", 1, ("ds",), compute)
    f = entry / "shards" / "m.npy"
    if damage == "truncate":
        f.write_bytes(f.read_bytes()[:1000])
    elif damage == "edit":
        f.write_bytes(b"x" + f.read_bytes()[1:])
    else:
        f.unlink()
    with caplog.at_level("WARNING", logger="curate"):
        again = stage("embed", 1, ("ds",), compute)
    assert again == entry and len(calls) == 2 and "is damaged" in caplog.text
    assert f.read_bytes() == bytes(range(256)) * 1024
    caplog.clear()
    with caplog.at_level("INFO", logger="curate"):
        stage("embed", 1, ("ds",), compute)
    assert len(calls) == 2 and "loaded cached embed" in caplog.text  # intact again: a plain hit


def test_seeds_have_no_global_side_effects() -> None:
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = seed.rng(7, "assign").random(3)
    b = seed.rng(7, "assign").random(3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, seed.rng(7, "render").random(3))
    assert np.random.random() == before
    assert seed.derive_seed(1, "x") == seed.derive_seed(1, "x") != seed.derive_seed(2, "x")


def test_resolve_device() -> None:
    assert device.resolve_device("cpu") == "cpu"
    assert device.resolve_device("auto") in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="'device' must be one of"):
        device.resolve_device("tpu")
    if not device.cuda_available():
        with pytest.raises(DeviceUnavailableError, match="use --device cpu"):
            device.resolve_device("cuda")


def test_resolve_index_backend() -> None:
    assert device.resolve_index_backend("auto") in ("faiss-cpu", "faiss-gpu")
    assert device.resolve_index_backend("faiss-cpu") == "faiss-cpu"
    if device.faiss_gpu_count() == 0:
        from curate.errors import MissingDependencyError

        with pytest.raises(MissingDependencyError, match=r"curate\[gpu\]"):
            device.resolve_index_backend("faiss-gpu")
