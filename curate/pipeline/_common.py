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
    """The cache root of a stage (the workspace folder, with ``table`` attached; None: the global cache)."""
    if workspace is None:
        return None, None
    ws = as_workspace(workspace)
    ws.attach(table)
    return ws.path, ws
