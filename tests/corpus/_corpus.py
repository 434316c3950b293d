"""The bad-input corpus: one table of cases, each an input, a command, the exit code, a fragment of
the message, and whether the command may create or change files.

Every ``cases_*.py`` module in this folder defines ``CASES: list[Case]``; ``test_corpus.py`` runs
them all through the CLI's one error boundary (``cli.app.main``), in process.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Setup = Callable[[Path], Mapping[str, str] | None]


@dataclass(frozen=True)
class Case:
    """One corpus case.

    ``argv`` may hold ``{root}`` (the case's folder) and any name ``setup`` returns; ``setup`` builds
    the input under the case's folder. ``message`` must appear in stderr (stdout for exit code 0).
    With ``unchanged`` (the default) the command must leave no new or changed file in the folder.
    """

    id: str
    argv: Sequence[str]
    code: int
    message: str
    setup: Setup | None = None
    unchanged: bool = True
    env: Mapping[str, str] = field(default_factory=dict)


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path) with its content hash; folders as ``<dir>``."""
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            out[rel] = "<link>"
        elif p.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The paths created, changed or removed between two snapshots."""
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


_BUILT: dict[tuple[str, int], Path] = {}


def dataset(root: Path, name: str = "digits-color", n_train: int = 200, folder: str = "data") -> Path:
    """A copy of a small built-in benchmark under ``root/folder`` (built once per test process)."""
    import os
    import shutil
    import tempfile

    from curate import api

    key = (name, n_train)
    if key not in _BUILT:
        os.environ.setdefault("CURATE_NO_PROGRESS", "1")
        out = Path(tempfile.mkdtemp(prefix="curate-corpus-")) / name
        api.make_benchmark(name, out, seed=0, n_train=n_train, n_val_per_group=10, n_test_per_group=10)
        _BUILT[key] = out
    dest = root / folder
    shutil.copytree(_BUILT[key], dest)
    return dest
