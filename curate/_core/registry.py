"""One generic name → implementation registry (in the spirit of timm's ``register_model``).

Instances (``ENCODERS``, ``SCORERS``, ``BENCHMARKS``, ...) live next to what they register.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from curate.errors import CurateError, UnknownNameError, did_you_mean

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered implementation with its metadata (``higher="harder"``, ``needs=...``)."""

    name: str
    obj: T | None
    meta: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    unavailable: CurateError | None = None


class Registry(Generic[T]):
    """Map names to implementations, with aliases, glob listing and "did you mean" errors."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}

    def register(
        self, name: str, *, aliases: tuple[str, ...] = (), override: bool = False, **meta: Any
    ) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; duplicate names raise unless ``override``."""

        def deco(obj: T) -> T:
            self.add(name, obj, aliases=aliases, override=override, **meta)
            return obj

        return deco

    def add(
        self,
        name: str,
        obj: T,
        *,
        aliases: tuple[str, ...] = (),
        override: bool = False,
        **meta: Any,
    ) -> None:
        """Register ``obj`` under ``name`` (the non-decorator form of :meth:`register`)."""
        self._put(Entry(name, obj, dict(meta), tuple(aliases)), override)

    def register_unavailable(self, name: str, error: CurateError, **meta: Any) -> None:
        """Register ``name`` as known but unusable here; :meth:`get` raises ``error``."""
        self._put(Entry(name, None, dict(meta), (), error), override=True)

    def _put(self, entry: Entry[T], override: bool) -> None:
        for key in (entry.name, *entry.aliases):
            taken = key in self._entries or key in self._aliases
            if taken and not override:
                raise ValueError(f"{self.kind} {key!r} is already registered; pass override=True")
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def entry(self, name: str) -> Entry[T]:
        """Return the entry for ``name`` or an alias of it.

        Raises:
            UnknownNameError: no such name; the message suggests the closest one.
        """
        key = self._aliases.get(name, name)
        if key not in self._entries:
            valid = self.names()
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, [*valid, *self._aliases])} "
                f"(valid: {', '.join(valid)}; see `curate list {self.kind.replace(' ', '-')}s`)"
            )
        return self._entries[key]

    def get(self, name: str) -> T:
        """Return the implementation for ``name``; raise its error when it is unavailable here."""
        e = self.entry(name)
        if e.unavailable is not None:
            raise e.unavailable
        assert e.obj is not None  # invariant: available entries hold an object
        return e.obj

    def meta(self, name: str) -> dict[str, Any]:
        """Metadata registered with ``name``."""
        return dict(self.entry(name).meta)

    def names(self, pattern: str = "*", *, available_only: bool = False) -> list[str]:
        """Sorted registered names matching a glob ``pattern`` (aliases excluded)."""
        return sorted(
            n
            for n, e in self._entries.items()
            if fnmatch.fnmatchcase(n, pattern) and not (available_only and e.unavailable)
        )

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
