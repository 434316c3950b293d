"""What every stage shares: the installed version and where a stage's cached output lives."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from curate.data.table import SampleTable
from curate.data.workspace import Workspace


def version() -> str:
    """The installed curate version."""
    try:
        return importlib.metadata.version("curate")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def as_workspace(workspace: str | Path | Workspace) -> Workspace:
    """A :class:`Workspace` from a folder or an existing one."""
    return workspace if isinstance(workspace, Workspace) else Workspace(workspace)


def stage_root(workspace: str | Path | Workspace | None, table: SampleTable) -> tuple[Path | None, Workspace | None]:
    """The cache root of a stage (the workspace folder; None: the global cache) and its workspace.

    The workspace is checked against ``table`` now but bound to it only by the stage's
    ``ws.record(...)``, once the stage has finished: a stage that fails leaves it untouched.

    Raises:
        InputDataError: the workspace already holds another dataset.
    """
    if workspace is None:
        return None, None
    ws = as_workspace(workspace)
    ws.bind(table)
    return ws.path, ws
