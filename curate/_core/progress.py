"""One progress wrapper that tests and scripts can silence, plus logging setup.

On a terminal, progress is a rich bar; when stderr is not a terminal (a file, a pipe, a CI log), it
is a plain line every :data:`PLAIN_EVERY_S` seconds, e.g.
``embedding (efficientnet-lite0): 1,200 / 4,200 images (29%), 48 images/s, ~1 min left``.
Progress is off when ``CURATE_NO_PROGRESS=1`` or after :func:`disable_progress`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

_DISABLED = False
_CONSOLE: Any = None  # the rich console on stderr that bars and log lines share (made on first use)

PLAIN_EVERY_S = 10.0  # seconds between two plain progress lines when stderr is not a terminal


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


def _stderr_console() -> Any:
    """The rich console on stderr shared by progress bars and log messages (so neither garbles the other)."""
    global _CONSOLE
    from rich.console import Console

    if _CONSOLE is None:  # its file is sys.stderr at each write, so it follows redirection
        _CONSOLE = Console(stderr=True, markup=False, highlight=False)
    return _CONSOLE


def _is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except ValueError:  # a closed stream
        return False


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


def format_duration(seconds: float) -> str:
    """A rounded duration in words: ``45 s``, ``3 min``, ``2 h 5 min``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    m = round(s / 60)
    if m < 60:
        return f"{m} min"
    return f"{m // 60} h {m % 60} min"


class PlainBar:
    """Progress as plain text lines, at most one every ``every`` seconds (for logs and pipes).

    A line is written when ``every`` seconds have passed since the last one; when at least one was
    written, :meth:`close` writes a last line with the total time. Short tasks print nothing.
    """

    def __init__(
        self,
        total: int | None,
        desc: str,
        stream: IO[str],
        *,
        unit: str = "",
        every: float = PLAIN_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = 0
        self.lines = 0
        self._stream = stream
        self._every = every
        self._clock = clock
        self._start = clock()
        self._last = self._start

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more steps done; write a line when ``every`` seconds have passed."""
        self.done += n
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._write(self.line(now))

    def line(self, now: float) -> str:
        """The progress line at clock time ``now``."""
        unit = f" {self.unit}" if self.unit else ""
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        rate_s = f"{rate:,.0f}" if rate >= 10 else f"{rate:.1f}"
        if self.total:
            head = f"{self.done:,} / {self.total:,}{unit} ({100 * self.done // self.total}%)"
        else:
            head = f"{self.done:,}{unit}"
        text = f"{self.desc}: {head}, {rate_s}{unit or ' steps'}/s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ~{format_duration((self.total - self.done) / rate)} left"
        return text

    def close(self) -> None:
        """Write the closing line (only if a progress line was written)."""
        if self.lines:
            unit = f" {self.unit}" if self.unit else ""
            self._write(f"{self.desc}: {self.done:,}{unit} in {format_duration(self._clock() - self._start)}")

    def _write(self, text: str) -> None:
        self.lines += 1
        self._stream.write(text + "\n")
        self._stream.flush()


@contextlib.contextmanager
def progress(
    total: int | None,
    desc: str,
    *,
    unit: str = "",
    stream: IO[str] | None = None,
    every: float = PLAIN_EVERY_S,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Bar]:
    """Show progress for ``total`` steps labelled ``desc`` (no-op when disabled).

    Args:
        total: the number of steps (``None`` when unknown).
        desc: what is being done (``embedding (minilm)``).
        unit: what a step is, plural (``images``), for plain lines.
        stream: where progress goes (default ``sys.stderr``); a terminal gets a rich bar, anything
            else a plain line every ``every`` seconds.
        every: seconds between plain lines.
        clock: the time source of plain lines (seconds).
    """
    if not progress_enabled():
        yield _NullBar()
        return
    out = sys.stderr if stream is None else stream
    if not _is_terminal(out):
        bar = PlainBar(total, desc, out, unit=unit, every=every, clock=clock)
        yield bar
        bar.close()
        return
    from rich.console import Console
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
        console=_stderr_console() if out is sys.stderr else Console(file=out),
    ) as prog:
        task = prog.add_task(desc, total=total)
        yield _RichBar(prog, task)


def setup_logging(level: int | str = logging.INFO) -> None:
    """Route curate's loggers to stderr (called by the CLI, never at import time).

    On a terminal, messages go through rich; otherwise each is one plain line (``INFO message``),
    never wrapped, so that logs and CI output keep one line per message.
    """
    logger = logging.getLogger("curate")
    handler: logging.Handler
    if _is_terminal(sys.stderr):
        from rich.logging import RichHandler

        handler = RichHandler(show_path=False, show_time=False, markup=False, console=_stderr_console())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
