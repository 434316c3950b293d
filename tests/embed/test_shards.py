"""Resumable embedding: ``kill -9`` in the middle, rerun, and the result equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from curate import api
from tests.embed import tiny_models

CHILD = textwrap.dedent(
    """
    import sys, time
    import curate.embed.shards as shards
    from curate import api

    slow = shards.embed_table
    def embed_slowly(*args, **kwargs):  # timing only: leaves room to kill the process between shards
        time.sleep(0.3)
        return slow(*args, **kwargs)

    shards.embed_table = embed_slowly
    table = api.load_dataset(sys.argv[1])
    api.embed(table, sys.argv[2], shard_size=100)
    """
)


@pytest.mark.integration
def test_kill_minus_nine_then_rerun_equals_an_uninterrupted_run(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import curate.embed.shards as shards_module

    vit = str(tiny_models.tiny_vit(tmp_path / "vit"))
    env = {**os.environ, "CURATE_CACHE_DIR": str(tmp_path / "killed"), "CURATE_NO_PROGRESS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(digits_dir), vit], env=env)
    deadline = time.time() + 120
    shards: list[Path] = []
    while time.time() < deadline and len(shards) < 3:
        shards = list((tmp_path / "killed").glob("embed/*/shards/shard=*.npy"))
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    survived = len(list((tmp_path / "killed").glob("embed/*/shards/shard=*.npy")))
    assert 3 <= survived < 16, "the child was not killed mid-run"

    embedded = []
    real = shards_module.embed_table
    monkeypatch.setattr(
        shards_module, "embed_table", lambda part, *a, **k: embedded.append(len(part)) or real(part, *a, **k)
    )
    table = api.load_dataset(digits_dir)
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "killed"))
    resumed = api.embed(table, vit, shard_size=100)
    assert len(embedded) == 16 - survived  # only the missing shards were embedded
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "clean"))
    clean = api.embed(table, vit, shard_size=100)
    assert np.array_equal(resumed.matrix, clean.matrix) and resumed.ids.equals(clean.ids)
    assert {k: v for k, v in resumed.meta.items() if k != "source"} == {
        k: v for k, v in clean.meta.items() if k != "source"
    }
    assert not list((tmp_path / "killed").glob("embed/*/shards"))


def test_float16_on_disk_and_memory_mapped(digits_dir: Path, tmp_path: Path) -> None:
    vit = str(tiny_models.tiny_vit(tmp_path / "vit"))
    table = api.load_dataset(digits_dir)
    full = api.embed(table, vit, shard_size=500)
    half = api.embed(table, vit, shard_size=500, float16=True, mmap=True)
    assert isinstance(half.matrix, np.memmap) and half.matrix.dtype == np.float16
    np.testing.assert_allclose(half.matrix, full.matrix, rtol=1e-3, atol=1e-3)
