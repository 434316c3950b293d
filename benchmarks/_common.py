"""Helpers shared by the benchmarks: machine description, timing, result files."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """One line naming the machine a result was measured on."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | torch threads {torch.get_num_threads()} | {gpu}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def report(name: str, lines: list[str]) -> None:
    """Print the result lines and save them to ``benchmarks/results/<name>.txt``."""
    text = "\n".join([f"# {name}", f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d %H:%M:%S')}", *lines])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.txt").write_text(text + "\n")


class EpochTimer:
    """A training hook timing each epoch's training phase: from the epoch's start to its last step
    (validation, checkpoints and other end-of-epoch work excluded); ``images`` counts the rows seen."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.images: list[int] = []
        self._t0 = self._last = 0.0
        self._n = 0

    def on_epoch_start(self, epoch: int) -> None:
        self._t0 = self._last = time.perf_counter()
        self._n = 0

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None:
        self._last = time.perf_counter()
        self._n += len(batch["index"])

    def on_epoch_end(self, epoch: int) -> None:
        self.times.append(self._last - self._t0)
        self.images.append(self._n)


def built_benchmark(name: str, data: Path, *, check_files: bool = True) -> Any:
    """Built-in benchmark ``name`` in ``data`` at seed 0, (re)built when absent or of an older revision."""
    import json

    from curate import api
    from curate.data.benchmarks import BENCHMARKS

    info = data / "dataset.json"
    current = BENCHMARKS.get(name).revision
    if not (data / "metadata.csv").exists() or json.loads(info.read_text()).get("revision", 1) != current:
        api.make_benchmark(name, data, seed=0, overwrite=True)
    return api.load_dataset(data / "metadata.csv", check_files=check_files)


def gap_closed(wg: float, *, erm: float, oracle: float | None) -> float:
    """Share of the ERM → oracle worst-group gap that a mean test WGA ``wg`` closes; NaN without a gap."""
    return (wg - erm) / (oracle - erm) if oracle is not None and oracle > erm else float("nan")


def run_once(folder: Path, tag: str, key: list[Any], table: Any, **run: Any) -> dict[str, Any]:
    """``curate run`` into ``folder/<tag>-<hash of key>``, or its metrics when that run finished before
    (a run folder is swapped in whole: ``metrics.json`` means finished). ``key`` must hold everything
    the result depends on (the curate code version, benchmark, method, config, seed)."""
    import hashlib
    import json

    from curate import api

    out = folder / f"{tag}-{hashlib.sha256(json.dumps(key).encode()).hexdigest()[:10]}"
    done = out / "metrics.json"
    return json.loads(done.read_text()) if done.exists() else api.run(table, out=out, **run)


def workspace_of(folder: Path, table: Any) -> Path:
    """The benchmark's workspace under ``folder``, one per dataset content (a workspace is bound to its
    data: a rebuilt benchmark gets a new one instead of an error)."""
    return folder / "ws" / table.fingerprint()[:12]


def fmnist_subset(work: Path, n_train: int, seed: int = 0) -> Any:
    """fmnist-textures with ``n_train`` train images (val/test at 50 per group), built once under ``work``."""
    from curate import api

    out = work / f"fmnist-textures-{n_train}"
    if (out / "metadata.csv").exists():
        return api.load_dataset(out / "metadata.csv")
    return api.make_benchmark(
        "fmnist-textures", out, seed=seed, n_train=n_train, n_val_per_group=50, n_test_per_group=50, overwrite=True
    )
