"""Progress: plain lines every few seconds when stderr is not a terminal; silenced by CURATE_NO_PROGRESS."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from curate._core import progress as P


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATE_NO_PROGRESS", raising=False)
    out, clock = io.StringIO(), FakeClock()
    with P.progress(4200, "embed", unit="images", stream=out, every=10, clock=clock) as bar:
        for _ in range(42):  # 100 images per second of fake time, advanced every second
            clock.t += 1
            bar.advance(100)
            if clock.t == 12:
                assert out.getvalue().splitlines() == ["embed: 1,000 / 4,200 images (23%), 100 images/s, ~32 s left"]
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # at 10, 20, 30, 40 s, and the closing line
    assert lines[1] == "embed: 2,000 / 4,200 images (47%), 100 images/s, ~22 s left"
    assert lines[-1] == "embed: 4,200 images in 42 s"


def test_short_task_prints_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATE_NO_PROGRESS", raising=False)
    out, clock = io.StringIO(), FakeClock()
    with P.progress(10, "checking files", stream=out, clock=clock) as bar:
        clock.t += 2
        bar.advance(10)
    assert out.getvalue() == ""


def test_unknown_total_and_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATE_NO_PROGRESS", raising=False)
    clock = FakeClock()
    bar = P.PlainBar(None, "train", io.StringIO(), unit="steps", clock=clock)
    clock.t = 30
    bar.advance(60)
    assert bar.line(clock.t) == "train: 60 steps, 2.0 steps/s"
    bar = P.PlainBar(10_000, "embed", io.StringIO(), clock=clock)
    clock.t += 60
    bar.advance(100)
    assert bar.line(clock.t).endswith("(1%), 1.7 steps/s, ~1 h 39 min left")


def test_no_progress_env_silences_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CURATE_NO_PROGRESS", "1")
    out, clock = io.StringIO(), FakeClock()
    with P.progress(100, "embed", stream=out, every=1, clock=clock) as bar:
        for _ in range(10):
            clock.t += 5
            bar.advance(10)
    assert out.getvalue() == ""


def test_terminal_gets_no_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CURATE_NO_PROGRESS", raising=False)
    out, clock = Tty(), FakeClock()
    with P.progress(100, "embed", stream=out, every=1, clock=clock) as bar:
        clock.t += 5
        bar.advance(100)
    assert "embed: 100" not in out.getvalue()  # a rich bar (transient), not a plain line


def test_logging_is_one_plain_line_per_message_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    logger = logging.getLogger("curate")
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))  # restored after the test
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)
    P.setup_logging(logging.INFO)
    long = "x" * 200
    logging.getLogger("curate.test").info("loaded %s", long)
    logging.getLogger("curate.test").debug("hidden")
    assert err.getvalue() == f"INFO     loaded {long}\n"
