"""A run folder written as one piece: locked, built beside itself, swapped in when complete.

``curate run --out RUN`` takes the lock ``.RUN.lock`` next to ``RUN`` (non-blocking: a second run
into the same folder fails at once), builds every output in ``.RUN.incomplete/RUN/`` and, once the
report is written, swaps that folder in for ``RUN``. Until then the previous run in ``RUN`` stays
whole; a crash (even ``kill -9``) leaves it untouched, and the next run into ``RUN`` finds the
unfinished folder by its name and resumes its training from the checkpoints in ``train/``.
A fresh build starts from hard links to the previous run's ``train/`` (checkpoints are replaced,
never written in place), so rerunning a finished run with the same settings resumes its training
as before.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from curate.errors import InputDataError, OutputExistsError

logger = logging.getLogger(__name__)

TRAIN = "train"
RUN_MARKERS = ("metrics.json", "manifest.parquet", TRAIN)  # a folder holding one of these is a run
_HELD: dict[Path, int] = {}  # run folders this process holds the lock of, with the hold count


def lock_path(out: Path) -> Path:
    """The lock file of run folder ``out``: ``.NAME.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


def work_path(out: Path) -> Path:
    """Where the run into ``out`` is built: ``.NAME.incomplete/NAME`` beside it (same name inside,
    so anything that records the folder's name records the final one)."""
    return out.parent / f".{out.name}.incomplete" / out.name


@contextmanager
def run_lock(out: str | Path) -> Iterator[None]:
    """Hold the lock of run folder ``out`` (reentrant within a process).

    Raises:
        InputDataError: another process holds it (another ``curate run`` is writing to ``out``).
    """
    from filelock import FileLock, Timeout

    key = Path(out).absolute()
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    key.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path(key))
    try:
        lock.acquire(timeout=0)
    except Timeout as e:
        raise InputDataError(
            f"another curate run is writing to this folder: {key} (it holds {lock_path(key).name})",
            fix="wait for it to finish, or pick another --out",
        ) from e
    _HELD[key] = 1
    try:
        yield
    finally:
        del _HELD[key]
        lock.release()


def check_out(out: Path) -> None:
    """Refuse an ``--out`` that holds files but no run (a rerun would replace the folder whole).

    Raises:
        OutputExistsError: ``out`` is a file, or a non-empty folder without a run's outputs.
    """
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out} is a file; pick a folder for --out")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in RUN_MARKERS):
        raise OutputExistsError(
            f"{out} holds files that are not a curate run (no {', '.join(RUN_MARKERS)}); "
            "a run replaces its folder whole: pick an empty or new --out"
        )


def _link_tree(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` as hard links (a plain copy where links are refused)."""

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


@contextmanager
def building(out: str | Path) -> Iterator[Path]:
    """Yield the folder to build the run into; when the block succeeds, it replaces ``out``.

    The caller holds :func:`run_lock`. An unfinished build found by name is resumed (its
    ``train/`` kept, every other output rebuilt); a failed block leaves it for the next run.
    """
    out = Path(out)
    work = work_path(out)
    if work.exists():
        logger.info("resuming the unfinished run in %s", work)
        for p in work.iterdir():  # every other output is rebuilt from cached stages
            if p.name == TRAIN:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    else:
        work.mkdir(parents=True)
        if (out / TRAIN).is_dir():  # the previous run's checkpoints: a rerun resumes them
            _link_tree(out / TRAIN, work / TRAIN)
    yield work
    swap_in(work, out)


def swap_in(work: Path, out: Path) -> None:
    """Replace ``out`` by the finished ``work`` folder (two renames) and remove what is left."""
    box = work.parent
    old = box / ".previous"
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(work, out)
    shutil.rmtree(box, ignore_errors=True)
