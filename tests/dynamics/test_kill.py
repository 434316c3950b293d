"""``kill -9`` in the middle of recording dynamics, rerun: the log equals an uninterrupted run's."""

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
from curate.embed import EmbeddingTable

CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import curate.dynamics.recorder as recorder
    from curate import api
    from curate.embed import EmbeddingTable

    write = recorder.DynamicsRecorder._write
    def write_slowly(self, *args):  # timing only: leaves room to kill the process between epochs
        time.sleep(0.25)
        return write(self, *args)

    recorder.DynamicsRecorder._write = write_slowly
    table = api.load_dataset(sys.argv[1])
    x = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    api.record_dynamics(table, EmbeddingTable(table.ids, x, {"encoder": "random"}), config=api.ProxyConfig(epochs=12))
    """
)


def _embeddings(table):  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    return EmbeddingTable(table.ids, x, {"encoder": "random"})


@pytest.mark.integration
def test_kill_minus_nine_then_rerun_equals_an_uninterrupted_run(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "CURATE_CACHE_DIR": str(tmp_path / "killed"), "CURATE_NO_PROGRESS": "1"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(digits_dir)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((tmp_path / "killed").glob("dynamics/*/run=0/epoch=*.parquet"))) < 3:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    survived = len(list((tmp_path / "killed").glob("dynamics/*/run=0/epoch=*.parquet")))
    assert 3 <= survived < 12, "the child was not killed mid-run"

    table = api.load_dataset(digits_dir)
    cfg = api.ProxyConfig(epochs=12)
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "killed"))
    resumed = api.record_dynamics(table, _embeddings(table), config=cfg)
    monkeypatch.setenv("CURATE_CACHE_DIR", str(tmp_path / "clean"))
    clean = api.record_dynamics(table, _embeddings(table), config=cfg)
    assert resumed.frame.sort("epoch", "sample_id").equals(clean.frame.sort("epoch", "sample_id"))
