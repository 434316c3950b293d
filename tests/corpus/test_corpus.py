"""Run every corpus case (``tests/corpus/cases_*.py``) through the CLI's error boundary."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

import tests.corpus as corpus_pkg
from tests._cli import invoke
from tests.corpus._corpus import Case, changes, snapshot


def _cases() -> list[Case]:
    cases: list[Case] = []
    for info in pkgutil.iter_modules(corpus_pkg.__path__):
        if info.name.startswith("cases_"):
            cases.extend(importlib.import_module(f"tests.corpus.{info.name}").CASES)
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"duplicate corpus case ids: {sorted(dupes)}"
    return cases


CASES = _cases()


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "case"
    root.mkdir()
    for k, v in case.env.items():
        monkeypatch.setenv(k, v.format(root=root))
    names = {"root": str(root), **dict((case.setup(root) if case.setup else None) or {})}
    before = snapshot(root)
    r = invoke(*[a.format(**names) for a in case.argv])
    code, out, err = r.returncode, r.stdout, r.stderr
    text = err if case.code != 0 else out + err
    assert code == case.code, f"exit {code}, expected {case.code}\nstdout: {out}\nstderr: {err}"
    assert case.message.format(**names) in text, f"{case.message!r} not in:\n{text}"
    assert "Traceback" not in out + err
    if case.code != 0:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines and lines[-1].startswith("error: "), err
        assert len([ln for ln in lines if ln.startswith("error:")]) == 1, err
    if case.unchanged:
        assert not changes(before, snapshot(root)), f"files changed: {changes(before, snapshot(root))}"
