"""Fault tests, one per stage and one for `curate run`: ``kill -9`` a real ``curate`` process at a random point, rerun the same
command, and every output equals an uninterrupted run's, byte for byte (timing files aside).

Each stage starts from the outputs of the stages before it (built once, uninterrupted). The killed run
and the clean run happen at the same path, one after the other, so that recorded paths agree. The kill
point is drawn uniformly in [20%, 95%] of the clean run's wall time from a seeded generator
(``CURATE_FAULT_SEED``, default 0; the failure message names it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curate import api
from tests.embed import tiny_models

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("CURATE_FAULT_SEED", "0"))
TIMING_FILES = {"timing.json"}
LOCKS = (".lock",)  # lock files stay after a run (filelock's way); they hold no output

# stage -> (command with {p} = the stage's folder, the outputs that must never be seen half-written)
STAGES: dict[str, tuple[list[str], list[str]]] = {
    "embed": (["embed", "{p}/data/metadata.csv", "-e", "hf-vision:{p}/vit", "--out", "{p}/ws"], []),
    "dynamics": (["dynamics", "{p}/ws", "--epochs", "30"], ["ws/scores/dynamics.parquet"]),
    "detect": (["detect", "{p}/ws"], ["ws/detect/features/discovery.json", "ws/detect/features/scores.parquet"]),
    "select": (["prune", "{p}/ws", "--out", "{p}/m/prune.parquet"], ["m/prune.parquet"]),
    "finetune": (
        ["finetune", "{p}/ws", "-m", "{p}/m/prune.parquet", "--out", "{p}/run", "--epochs", "40"],
        ["run/metrics.json", "run/predictions.parquet"],
    ),
    "report": (["report", "{p}/run", "--workspace", "{p}/ws", "--out", "{p}/rep"], ["rep/report.md"]),
    # every stage in one process, into its own workspace and run folder
    "run": (
        [
            "run",
            "{p}/data/metadata.csv",
            "-m",
            "balance",
            "-e",
            "hf-vision:{p}/vit",
            "--workspace",
            "{p}/run-ws",
            "--out",
            "{p}/run-out",
        ],
        ["run-out/metrics.json", "run-out/manifest.parquet", "run-out/report.md"],
    ),
}
ORDER = list(STAGES)


def _curate(argv: list[str], folder: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CURATE_CACHE_DIR": str(folder / "cache"), "CURATE_NO_PROGRESS": "1", "COLUMNS": "200"}
    args = [a.format(p=folder) for a in argv]
    return subprocess.Popen(
        [sys.executable, "-m", "cli.app", *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err.decode()


def _canonical(obj: object) -> object:
    """A checkpoint's content as plain data (torch's zip archive embeds its file name and a random
    serialization id, so two saves of equal states differ in bytes; their tensors must not)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [str(obj.dtype), list(obj.shape), obj.detach().cpu().contiguous().reshape(-1).view(torch.uint8).tolist()]
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_canonical(v) for v in obj]
    return repr(obj)


def _digest(path: Path) -> str:
    if path.suffix == ".pt":
        import torch

        state = torch.load(path, weights_only=True, map_location="cpu")
        return hashlib.sha1(json.dumps(_canonical(state), sort_keys=True).encode()).hexdigest()
    if path.name.endswith(".json") or path.name == ".complete":
        data = json.loads(path.read_text())
        if isinstance(data, dict):  # timings are not outputs: drop them, compare the rest exactly
            data = {k: v for k, v in data.items() if k != "wall_s"}
            if isinstance(data.get("files"), dict):  # a cache marker: checkpoints are compared by content
                data["files"] = {k: v for k, v in data["files"].items() if not k.endswith(".pt")}
        return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): _digest(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name not in TIMING_FILES and not p.name.endswith(LOCKS)
    }


@pytest.fixture(scope="module")
def before(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """For each stage, a folder holding the uninterrupted outputs of every stage before it."""
    base = tmp_path_factory.mktemp("faults")
    work = base / "chain"
    work.mkdir()
    os.environ["CURATE_NO_PROGRESS"] = "1"
    api.make_benchmark("digits-color", work / "data", seed=0, n_train=300, n_val_per_group=10, n_test_per_group=10)
    tiny_models.tiny_vit(work / "vit")
    states: dict[str, Path] = {}
    for stage in ORDER:
        states[stage] = base / f"before-{stage}"
        shutil.copytree(work, states[stage], symlinks=True)
        if stage != ORDER[-1]:
            _finish(_curate(STAGES[stage][0], work))
    return states


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("stage", ORDER)
def test_kill_at_a_random_point_then_rerun_equals_an_uninterrupted_run(
    stage: str, before: dict[str, Path], tmp_path: Path
) -> None:
    argv, finals = STAGES[stage]
    folder = tmp_path / "p"  # the same path for both runs
    shutil.copytree(before[stage], folder, symlinks=True)
    start = time.perf_counter()
    _finish(_curate(argv, folder))
    wall = time.perf_counter() - start
    clean = _tree(folder)
    shutil.rmtree(folder)

    delay = random.Random(f"{SEED}-{stage}").uniform(0.2, 0.95) * wall
    for _ in range(4):  # a loaded machine can finish before the kill: then kill earlier
        shutil.copytree(before[stage], folder, symlinks=True)
        proc = _curate(argv, folder)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            break
        shutil.rmtree(folder)
        delay /= 2
    where = f"{stage}: killed at {delay:.2f} s of {wall:.2f} s (CURATE_FAULT_SEED={SEED})"
    assert proc.returncode == -signal.SIGKILL, f"{where}: the process always ended before the kill"
    for rel in finals:  # a final output is either absent or complete
        if (folder / rel).exists():
            assert _digest(folder / rel) == clean[rel], f"{where}: {rel} half-written"

    _finish(_curate(argv, folder))
    resumed = _tree(folder)
    assert resumed.keys() == clean.keys(), f"{where}: files differ {sorted(resumed.keys() ^ clean.keys())}"
    differ = [k for k in clean if clean[k] != resumed[k]]
    assert not differ, f"{where}: not byte-equal after the rerun: {differ}"
