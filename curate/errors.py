"""The one exception tree of curate.

Every error a user can cause is a :class:`CurateError`. Data errors name the file, the row, the
column and the fix; parameter errors share one message shape; unknown names list the valid ones.
Subclasses also derive from the matching builtin (``ValueError``, ``KeyError``, ``ImportError``)
so callers that catch builtins keep working.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


class CurateError(Exception):
    """Base class of every error curate raises on purpose."""

    exit_code: int = 1


class ConfigError(CurateError, ValueError):
    """A parameter has a bad value: ``"prune(): 'fraction' must be in (0, 1); got 1.5."``."""

    exit_code = 2

    @classmethod
    def bad_param(cls, where: str, name: str, expected: str, got: object) -> ConfigError:
        """Build the one message shape for a bad parameter (``param`` and ``expected`` kept on it)."""
        err = cls(f"{where}: {name!r} must be {expected}; got {got!r}.")
        err.param, err.expected = name, expected
        return err

    param: str | None = None
    expected: str | None = None


class UnknownNameError(CurateError, KeyError):
    """A registry lookup failed; the message lists the closest valid names."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class InputDataError(CurateError, ValueError):
    """Bad input data: names the file, the row (1-based, header excluded), the column and the fix."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        sample_id: str | None = None,
        column: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = None if file is None else str(file)
        self.row = row
        self.sample_id = sample_id
        self.column = column
        self.fix = fix
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(Path(self.file).name if len(self.file) > 60 else self.file)
        if self.row is not None:
            where.append(f"row {self.row}")
        head = " ".join(where)
        if self.sample_id is not None:
            head += f" (sample_id {self.sample_id!r})"
        if self.column is not None:
            head += f" column {self.column!r}"
        msg = f"{head}: {self.problem}" if head else self.problem
        if self.fix:
            msg += f"; {self.fix}"
        return msg


class EmptySelectionError(InputDataError):
    """A selection that would change nothing (JTT's error set empty, prune dropping no sample): the
    manifest would train plain ERM under the method's name, so it is refused instead."""


class IdMismatchError(InputDataError):
    """Two tables keyed by ``sample_id`` do not hold the same ids."""

    @classmethod
    def from_ids(cls, what: str, other: str, missing: Sequence[str]) -> IdMismatchError:
        """Name how many ids of ``what`` are absent from ``other`` and the first few of them."""
        first = ", ".join(repr(m) for m in list(missing)[:3])
        return cls(
            f"{len(missing)} ids in {what!r} not in {other!r}, first: {first}",
            fix=f"recompute {what!r} on the same dataset",
        )


class MissingDependencyError(CurateError, ImportError):
    """An optional backend is not installed; the message gives the install command."""

    exit_code = 3


class DeviceUnavailableError(CurateError, RuntimeError):
    """The requested device does not exist on this machine."""

    exit_code = 3


class NotFittedError(CurateError, AttributeError):
    """A stateful component was used before ``fit``."""


class CacheError(CurateError, RuntimeError):
    """The cache could not key or read an entry (unhashable input, corrupt entry)."""


class OutputExistsError(CurateError, FileExistsError):
    """An output path exists and overwriting was not requested."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
