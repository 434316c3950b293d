"""One progress wrapper (rich) that tests and scripts can silence, plus logging setup.

Progress bars are off when ``CURATE_NO_PROGRESS=1`` or after :func:`disable_progress`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Protocol

_DISABLED = False


def disable_progress() -> None:
    """Turn progress bars off for this process."""
    global _DISABLED
    _DISABLED = True


def enable_progress() -> None:
    """Turn progress bars back on (unless ``CURATE_NO_PROGRESS`` is set)."""
    global _DISABLED
    _DISABLED = False


def progress_enabled() -> bool:
    """Whether progress bars are shown."""
    return not _DISABLED and os.environ.get("CURATE_NO_PROGRESS", "") not in ("1", "true", "yes")


class Bar(Protocol):
    """What :func:`progress` yields: ``advance(n)``."""

    def advance(self, n: int = 1) -> None: ...


class _NullBar:
    def advance(self, n: int = 1) -> None:
        pass


class _RichBar:
    def __init__(self, prog: object, task: object) -> None:
        self._prog = prog
        self._task = task

    def advance(self, n: int = 1) -> None:
        self._prog.advance(self._task, n)  # type: ignore[attr-defined]


@contextlib.contextmanager
def progress(total: int | None, desc: str) -> Iterator[Bar]:
    """Show a progress bar for ``total`` steps labelled ``desc`` (no-op when disabled)."""
    if not progress_enabled():
        yield _NullBar()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as prog:
        task = prog.add_task(desc, total=total)
        yield _RichBar(prog, task)


def setup_logging(level: int | str = logging.INFO) -> None:
    """Route curate's loggers through rich (called by the CLI, never at import time)."""
    from rich.logging import RichHandler

    logger = logging.getLogger("curate")
    logger.handlers[:] = [RichHandler(show_path=False, show_time=False, markup=False)]
    logger.setLevel(level)
    logger.propagate = False
