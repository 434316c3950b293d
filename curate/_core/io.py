"""Atomic writes: a temp file (or folder) beside the target, then ``os.replace``.

A crash leaves either the old file or the new one, never half of one. A target that cannot be
written (a file where its folder should be, a read-only folder, a folder in its place) is an
:class:`InputDataError` naming the target, raised before anything is created.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.errors import InputDataError, OutputExistsError

PICK_ANOTHER = "pick another output path (--out)"


def _unwritable(target: Path, what: str, e: OSError) -> InputDataError:
    """The one error for an OS refusal to write ``target``: what failed and why, in words."""
    return InputDataError(f"cannot {what} ({e.strerror or type(e).__name__})", file=target, fix=PICK_ANOTHER)


def prepare_target(target: str | Path, *, folder: bool = False) -> Path:
    """Check that ``target`` can be written and create its parent folders.

    Args:
        target: the file (or, with ``folder``, the folder) about to be written.
        folder: ``target`` is a folder (an existing file in its place is an error).

    Raises:
        InputDataError: a file stands where a folder of the path should be, ``target`` is a folder
            (a file when ``folder``), or the parent folder cannot be created.
    """
    target = Path(target)
    for up in (target.parent, *target.parent.parents):
        if up.exists():
            if not up.is_dir():
                raise InputDataError(
                    f"{up} is a file, not a folder, so nothing can be written under it", file=target, fix=PICK_ANOTHER
                )
            break
    if not folder and target.is_dir():
        raise InputDataError("is a folder; a file was expected", file=target, fix=PICK_ANOTHER)
    if folder and target.exists() and not target.is_dir():
        raise InputDataError("is a file; a folder was expected", file=target, fix=PICK_ANOTHER)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _unwritable(target, f"create the folder {target.parent}", e) from e
    return target


def _umask() -> int:
    """The process's umask (read by setting and restoring it; only where no other thread runs:
    the first atomic write happens in the main thread)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clear_stale_temps(target: Path) -> None:
    """Remove the temp files that a killed writer of ``target`` left next to it (``.<name>.<pid>.*``
    of a process that no longer runs); another live writer's temp file is left alone."""
    for p in target.parent.glob(f".{glob.escape(target.name)}.*"):
        pid = p.name[len(target.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path next to ``target``; on success it is renamed onto ``target``.

    Example: ``with atomic_path(out) as tmp: frame.write_parquet(tmp)``.

    Raises:
        InputDataError: ``target`` cannot be written (see :func:`prepare_target`).
    """
    target = prepare_target(target)
    clear_stale_temps(target)
    try:
        fd, name = tempfile.mkstemp(
            prefix=f".{target.name}.{os.getpid()}.", suffix=suffix or target.suffix or ".tmp", dir=target.parent
        )
    except OSError as e:
        raise _unwritable(target, f"write in {target.parent}", e) from e
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        try:
            if tmp.exists():  # mkstemp makes 0600; the output gets the user's usual permissions
                os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        except OSError as e:
            raise _unwritable(target, "replace it", e) from e
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(target: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target``.

    Raises:
        OutputExistsError: ``target`` exists, is not empty and ``overwrite`` is false.
        InputDataError: ``target`` cannot be written (see :func:`prepare_target`).
    """
    target = Path(target)
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputExistsError(f"{target} exists and is not empty; pass --overwrite or pick another --out")
    prepare_target(target, folder=True)
    clear_stale_temps(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".incomplete", dir=target.parent))
    except OSError as e:
        raise _unwritable(target, f"write in {target.parent}", e) from e
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if target.exists():
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(target: str | Path, text: str) -> Path:
    """Write ``text`` to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | Path, obj: Any) -> Path:
    """Write ``obj`` as pretty, key-sorted JSON to ``target`` atomically."""
    return write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
