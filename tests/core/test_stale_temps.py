"""A writer killed mid-write leaves a temp file; the next write of the same target removes it, and a
live writer's temp file is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from curate._core.io import atomic_dir, atomic_path


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_next_write_removes_a_killed_writers_temp_file(tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    dead = tmp_path / f".m.parquet.{_dead_pid()}.abc123.parquet"
    dead.write_bytes(b"half")
    live = tmp_path / f".m.parquet.{os.getpid()}.zzz.parquet"  # this process: alive
    live.write_bytes(b"in progress")
    other = tmp_path / ".other.parquet.1.x.parquet"
    other.write_bytes(b"not ours")
    with atomic_path(out) as tmp:
        tmp.write_bytes(b"done")
    assert out.read_bytes() == b"done"
    assert not dead.exists() and live.exists() and other.exists()


def test_next_folder_write_removes_a_killed_writers_temp_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    dead = tmp_path / f".run.{_dead_pid()}.q.incomplete"
    (dead / "x").mkdir(parents=True)
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("ok")
    assert (out / "f").read_text() == "ok" and not dead.exists()


def test_outputs_get_the_usual_permissions_not_the_temp_files_0600(tmp_path: Path) -> None:
    import curate._core.io as io

    old = os.umask(0o022)
    io._UMASK = None
    try:
        with atomic_path(tmp_path / "m.parquet") as tmp:
            tmp.write_bytes(b"x")
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "f").write_text("ok")
    finally:
        os.umask(old)
        io._UMASK = None
    assert (tmp_path / "m.parquet").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
