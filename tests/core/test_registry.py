from __future__ import annotations

import pytest

from curate._core.registry import Registry
from curate.errors import MissingDependencyError, UnknownNameError


def make() -> Registry[int]:
    reg: Registry[int] = Registry("scorer")
    reg.add("el2n", 1, aliases=("error-l2-norm",), higher="harder")
    reg.add("forgetting", 2)
    reg.add("aum", 3)
    return reg


def test_get_alias_meta_and_glob() -> None:
    reg = make()
    assert reg.get("el2n") == 1
    assert reg.get("error-l2-norm") == 1
    assert reg.meta("el2n") == {"higher": "harder"}
    assert reg.names() == ["aum", "el2n", "forgetting"]
    assert reg.names("*n") == ["el2n"]
    assert "error-l2-norm" in reg and "nope" not in reg
    assert len(reg) == 3 and list(reg) == reg.names()


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(UnknownNameError) as e:
        make().get("el2m")
    msg = str(e.value)
    assert "unknown scorer 'el2m'; did you mean 'el2n'?" in msg
    assert "valid: aum, el2n, forgetting" in msg


def test_duplicate_rejected_unless_override() -> None:
    reg = make()
    with pytest.raises(ValueError, match="already registered"):
        reg.add("aum", 9)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("x", 9, aliases=("el2n",))
    reg.add("aum", 9, override=True)
    assert reg.get("aum") == 9


def test_decorator_and_unavailable() -> None:
    reg: Registry[object] = Registry("index backend")

    @reg.register("flat")
    def flat() -> str:
        return "ok"

    assert reg.get("flat") is flat
    reg.register_unavailable("faiss-gpu", MissingDependencyError("pip install 'curate[gpu]'"))
    assert reg.names(available_only=True) == ["flat"]
    with pytest.raises(MissingDependencyError, match="curate\\[gpu\\]"):
        reg.get("faiss-gpu")
