"""The CLI run inside the test process: ``cli.app.main`` with its own stdout and stderr, the exit code
of its ``SystemExit``. The same code path as ``curate ...`` from the error boundary down, without a
fresh interpreter per command (~4 s of imports each on 2 cores); ``tests/test_cli.py`` keeps the
real-process tests (entry point, exit codes, one-line errors)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
from pathlib import Path
from unittest import mock


def invoke(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``curate *args`` in this process; returns what :func:`subprocess.run` would."""
    from cli._render import console
    from cli.app import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    logger = logging.getLogger("curate")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    env = {"COLUMNS": "200", "CURATE_NO_PROGRESS": "1"}
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, env))
        stack.enter_context(mock.patch.object(console, "_width", int(env["COLUMNS"])))  # as a fresh process reads it
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        if cwd is not None:
            stack.enter_context(contextlib.chdir(cwd))
        try:
            main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        finally:  # the CLI routes curate's logger to its stderr: hand it back as it was
            logger.handlers[:], logger.level, logger.propagate = saved
    return subprocess.CompletedProcess(["curate", *args], code, out.getvalue(), err.getvalue())
