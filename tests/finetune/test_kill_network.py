"""``kill -9`` a real process fine-tuning a network, rerun: the run ends byte-equal to an
uninterrupted one (model, best state, predictions, metrics, every dynamics shard)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from curate import api

EPOCHS = 5
CHILD = textwrap.dedent(
    f"""
    import sys, time
    import curate.dynamics.recorder as recorder
    from curate import api

    if sys.argv[3] == "slow":  # timing only: leaves room to kill the process between epochs
        write = recorder.DynamicsRecorder._write
        def write_slowly(self, *args):
            time.sleep(0.3)
            return write(self, *args)
        recorder.DynamicsRecorder._write = write_slowly
    table = api.load_dataset(sys.argv[1])
    # EfficientNet-Lite0 at 32 px: dropout, drop-connect and BatchNorm, with augmentation and GroupDRO
    cfg = api.FinetuneConfig(
        backbone="efficientnet-lite0", image_size=32, epochs={EPOCHS}, batch_size=32, augment=True, eval_fraction=0.5
    )
    api.finetune(table, None, api.select("oracle", table), cfg, method="groupdro", out=sys.argv[2], device="cpu")
    """
)


def _child(data: Path, out: Path, mode: str) -> subprocess.Popen:  # type: ignore[type-arg]
    env = {**os.environ, "CURATE_NO_PROGRESS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(out), mode], env=env)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_kill_minus_nine_then_rerun_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data = tmp_path / "dc"
    api.make_benchmark("digits-color", data, n_train=120, n_val_per_group=6, n_test_per_group=6)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    child = _child(data, killed, "slow")
    shards = killed / "dynamics" / "run=0"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(shards.glob("epoch=*.parquet"))) < 2:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    survived = len(list(shards.glob("epoch=*.parquet")))
    assert 2 <= survived < EPOCHS, "the child was not killed mid-run"
    assert not (killed / "metrics.json").exists()
    assert _child(data, killed, "fast").wait() == 0
    assert _child(data, clean, "fast").wait() == 0

    for name in ("predictions.parquet",):
        assert pl.read_parquet(killed / name).equals(pl.read_parquet(clean / name))
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((clean / "metrics.json").read_text())
    for ck in ("checkpoint.pt", "best.pt"):
        a = torch.load(killed / "checkpoints" / ck, weights_only=True)
        b = torch.load(clean / "checkpoints" / ck, weights_only=True)
        sa, sb = (a["model"], b["model"]) if "model" in a else (a["state"], b["state"])
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        if "method" in a:  # GroupDRO's q came back with the checkpoint
            assert torch.equal(a["method"]["q"], b["method"]["q"])
    files = sorted(p.relative_to(clean) for p in (clean / "dynamics").rglob("*.parquet"))
    assert len(files) == EPOCHS + 1  # every epoch, and the eval-mode pass
    for f in files:
        assert pl.read_parquet(killed / f).equals(pl.read_parquet(clean / f)), f
