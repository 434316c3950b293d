"""The CLI as a user runs it: exit codes, one-line errors, no partial output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl


def run(*args: str, cwd: Path | None = None, columns: int = 200) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "CURATE_NO_PROGRESS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "cli.app", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or Path(__file__).resolve().parents[1],
    )


def test_datasets_make_prints_group_table_and_check_reads_back(tmp_path: Path) -> None:
    out = tmp_path / "dc"
    r = run("datasets", "make", "digits-color", "--out", str(out), "--n-train", "300", "--spurious-strength", "0.9")
    assert r.returncode == 0, r.stderr
    assert "digit < 5 / red" in r.stdout and "135" in r.stdout and "15" in r.stdout
    r = run("datasets", "check", str(out / "metadata.csv"))
    assert r.returncode == 0, r.stderr
    assert "subpopbench layout" in r.stdout and "OK" in r.stdout


def test_a_printed_path_is_never_broken_over_lines(tmp_path: Path) -> None:
    out = tmp_path / ("a-long-folder-name-" * 4) / "dc"
    r = run("datasets", "make", "digits-color", "--out", str(out), "--n-train", "50", columns=40)
    assert r.returncode == 0, r.stderr
    assert f"650 samples written to {out}\n" in r.stdout  # one line, wider than the terminal
    assert max(len(line) for line in r.stdout.splitlines()[1:]) <= 40  # the table still fits


def test_bad_input_one_line_error_nonzero_exit(tmp_path: Path) -> None:
    out = tmp_path / "dc"
    assert run("datasets", "make", "digits-color", "--out", str(out), "--n-train", "100").returncode == 0
    meta = pl.read_csv(out / "metadata.csv")
    (out / meta["filename"][4]).unlink()
    r = run("datasets", "check", str(out / "metadata.csv"))
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "error:" in lines[0] and "metadata.csv row 5" in lines[0] and "--skip-bad" in lines[0]
    r = run("datasets", "check", str(out / "metadata.csv"), "--skip-bad")
    assert r.returncode == 0 and "dropped 1 bad rows" in r.stdout


def test_failed_make_exits_nonzero_and_leaves_nothing(tmp_path: Path) -> None:
    r = run("datasets", "make", "digits-color", "--out", str(tmp_path / "x"), "--n-train", "99999")
    assert r.returncode == 2 and "lower --n-train" in r.stderr
    assert list(tmp_path.iterdir()) == []
    r = run("datasets", "make", "digits-colour", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "did you mean 'digits-color'" in r.stderr


def test_existing_output_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    r = run("datasets", "make", "digits-color", "--out", str(tmp_path / "x"), "--n-train", "50")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


def test_env_and_list() -> None:
    r = run("env")
    assert r.returncode == 0 and "torch" in r.stdout and "faiss" in r.stdout
    r = run("list", "benchmarks")
    assert r.stdout.split() == ["digits-color", "fmnist-mark", "fmnist-textures", "fortunes-cue"]
    r = run("list", "benchmark")
    assert r.returncode == 2 and "did you mean 'benchmarks'" in r.stderr
