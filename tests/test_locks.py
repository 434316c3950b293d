"""Concurrency and crashes: the workspace index under two writers, two runs into one ``--out``, and a
run that fails half-way leaving the previous run whole (each with real processes where it matters)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from curate import api
from curate.data.workspace import WORKSPACE_FILE, Workspace
from curate.errors import OutputExistsError
from tests.corpus._corpus import dataset
from tests.embed import tiny_models

RECORDS = 200
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from curate.data.workspace import Workspace

    ws = Workspace(sys.argv[1])
    for i in range(int(sys.argv[3])):
        ws.record("embed", f"{sys.argv[2]}-{i}", ws.path / "embed" / f"{sys.argv[2]}-{i}")
    """
)
HOLDER = textwrap.dedent(
    """
    import sys, time
    from curate import api

    with api.run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(60)
    """
)


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""), "CURATE_NO_PROGRESS": "1"}


def test_two_processes_recording_at_once_keep_every_entry(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / WORKSPACE_FILE).write_text(json.dumps({"dataset": {"fingerprint": "x"}, "outputs": {}}))
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(ws), name, str(RECORDS)], env=_env()) for name in ("a", "b")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert len(Workspace(ws).outputs("embed")) == 2 * RECORDS


def test_a_second_run_into_the_same_out_fails_at_once(tmp_path: Path) -> None:
    data = dataset(tmp_path) / "metadata.csv"
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "cli.app", "run", str(data), "-m", "erm", "--out", str(out), "--device", "cpu"],
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        took = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and "another curate run is writing to this folder" in lines[-1]
    assert str(out) in lines[-1] and "Traceback" not in r.stderr
    assert not out.exists() and not (tmp_path / ".run.incomplete").exists()
    assert took < 60  # failed before any stage ran (the loading of python and the dataset aside)


def test_the_lock_is_reentrant_within_a_process_and_exclusive_across(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with api.run_lock(out), api.run_lock(out):  # the CLI and api.run both hold it: no self-conflict
        pass
    with api.run_lock(out):
        r = subprocess.run(
            [sys.executable, "-c", HOLDER, str(out)], env=_env(), capture_output=True, text=True, timeout=120
        )
    assert r.returncode != 0 and "another curate run is writing" in r.stderr and str(out) in r.stderr


def test_a_folder_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not a curate run"):
        api.check_run(["erm"], outs=[out], device="cpu")
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.integration
def test_a_failed_rerun_leaves_the_previous_run_whole_and_the_next_one_resumes(
    digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_module = importlib.import_module("curate.pipeline.run")  # the module: the package exports run()

    vit = str(tiny_models.tiny_vit(tmp_path / "vit"))
    table = api.load_dataset(digits_dir)
    cfg = {"dynamics": {"epochs": 3}, "finetune": {"epochs": 2}}
    out = tmp_path / "run"
    kw = {"method": "erm", "out": out, "encoder": vit, "workspace": tmp_path / "ws", "device": "cpu"}
    first = api.run(table, config=cfg, **kw)  # type: ignore[arg-type]
    files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert "wall_s" not in first and "wall_s" in json.loads((out / "timing.json").read_text())
    assert ".incomplete" not in (out / "metrics.json").read_text()

    real_train = run_module.train

    def crash(*args: object, **kwargs: object) -> object:
        raise RuntimeError("killed during training")

    monkeypatch.setattr(run_module, "train", crash)
    with pytest.raises(RuntimeError, match="killed"):  # another seed: every output would change
        api.run(table, config=cfg, seed=1, **kw)  # type: ignore[arg-type]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == files  # the old run, whole
    work = tmp_path / ".run.incomplete" / "run"
    assert (work / "manifest.parquet").exists()  # the new run was being built beside it

    monkeypatch.setattr(run_module, "train", real_train)
    api.run(table, config=cfg, **kw)  # type: ignore[arg-type]  # the unfinished folder is found again
    assert not (tmp_path / ".run.incomplete").exists()
    again = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert {k: v for k, v in again.items() if k != "timing.json"} == {
        k: v for k, v in files.items() if k != "timing.json"
    }  # byte-equal to the first run: timings live apart


STAGE_WORKER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from curate._core.cache import cached_stage, resumable_stage

    root, kind, log = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])

    def compute(folder: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\\n")
        for k in range(5):  # shards written one by one, as embedding does
            (folder / f"shard{k}").write_text(str(k))
            time.sleep(0.2)

    stage = resumable_stage if kind == "resumable" else cached_stage
    folder = stage("demo", 1, ("same", "parts"), compute, root=root)
    print(folder, sorted(p.name for p in folder.iterdir()), flush=True)
    """
)


@pytest.mark.parametrize("kind", ["resumable", "cached"])
def test_processes_sharing_a_cache_compute_each_entry_once(tmp_path: Path, kind: str) -> None:
    """Two ``curate run`` on one workspace used to embed the same table side by side in one folder; the
    first to finish removed the shards the other was reading (FileNotFoundError). Now the second waits
    for the entry's lock and loads what the first wrote."""
    log = tmp_path / "computed.txt"
    argv = [sys.executable, "-c", STAGE_WORKER, str(tmp_path / "cache"), kind, str(log)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(argv, env=_env(), **pipes) for _ in range(3)]  # type: ignore[call-overload]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert len(log.read_text().split()) == 1  # computed by one process only
    assert len({out for out, _ in outs}) == 1  # every process got the same finished entry
    assert "shard4" in outs[0][0] and ".complete" in outs[0][0]
