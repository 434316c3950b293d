"""A workspace folder: the dataset a run works on, and every stage's output, content-addressed.

Layout::

    WS/workspace.json          dataset description + an index of the latest output of each stage
    WS/dataset.parquet         the checked SampleTable rows
    WS/<stage>/<sha256>/       one folder per (stage, inputs) — written atomically, reused on a hit

Each stage is also a plain function on in-memory objects; the workspace only decides where its
output lives, so reruns are cache hits and an interrupted stage leaves nothing half-written.

``workspace.json`` is read, changed and written under a file lock (``WS/.workspace.lock``), so
processes recording outputs at the same time never lose each other's entries. A stage binds the
workspace to its dataset only once it has finished (:meth:`Workspace.bind`, then
:meth:`Workspace.record`): a stage that fails on bad data leaves the workspace free for the fixed data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from curate._core.io import atomic_path, write_json_atomic
from curate.data.table import SampleTable
from curate.errors import InputDataError

WORKSPACE_FILE = "workspace.json"
DATASET_FILE = "dataset.parquet"
LOCK_FILE = ".workspace.lock"
SEQ = "seq"
"""Key of ``workspace.json`` (and of each output's record): the number of records so far, which orders them."""


class Workspace:
    """A folder holding one dataset and the outputs of the stages run on it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pending: SampleTable | None = None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the workspace's file lock (blocking) while reading and rewriting ``workspace.json``."""
        from filelock import FileLock

        self.path.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path / LOCK_FILE):
            yield

    @property
    def exists(self) -> bool:
        """Whether the folder already holds a workspace."""
        return (self.path / WORKSPACE_FILE).exists()

    def _info(self) -> dict[str, Any]:
        if not self.exists:
            raise InputDataError(
                "not a curate workspace (no workspace.json)",
                file=self.path,
                fix="create it with `curate embed DATA --out WS`",
            )
        info: dict[str, Any] = json.loads((self.path / WORKSPACE_FILE).read_text())
        return info

    def check(self, table: SampleTable) -> Workspace:
        """Raise unless this workspace is new or already holds ``table`` (writes nothing).

        Raises:
            InputDataError: the workspace already holds another dataset.
        """
        if self.exists and self._info()["dataset"]["fingerprint"] != table.fingerprint():
            raise InputDataError(
                "this workspace holds another dataset",
                file=self.path,
                fix="pick a new --out folder for a new dataset",
            )
        return self

    def bind(self, table: SampleTable) -> Workspace:
        """Check ``table`` against this workspace now and store it with the first :meth:`record`,
        i.e. once a stage on it has finished (a failed stage leaves the workspace unbound).

        Raises:
            InputDataError: the workspace already holds another dataset.
        """
        self.check(table)
        self._pending = table
        return self

    def attach(self, table: SampleTable) -> Workspace:
        """Store ``table`` as this workspace's dataset (once; a different dataset is an error).

        Raises:
            InputDataError: the workspace already holds another dataset.
        """
        with self._locked():
            return self._attach(table)

    def _attach(self, table: SampleTable) -> Workspace:
        fp = table.fingerprint()
        if self.exists:
            self.check(table)
            return self
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.path / DATASET_FILE) as tmp:
            table.frame.write_parquet(tmp)
        write_json_atomic(
            self.path / WORKSPACE_FILE,
            {
                "dataset": {
                    "fingerprint": fp,
                    "name": table.name,
                    "source": table.source,
                    "root": None if table.root is None else str(table.root.resolve()),
                    "label_names": table.label_names,
                    "group_names": table.group_names,
                    "attribute_names": table.attribute_names,
                },
                "outputs": {},
            },
        )
        return self

    def table(self) -> SampleTable:
        """The workspace's dataset."""
        d = self._info()["dataset"]
        frame = pl.read_parquet(self.path / DATASET_FILE)
        return SampleTable(
            frame,
            root=None if d["root"] is None else Path(d["root"]),
            name=d["name"],
            source=d["source"],
            label_names=None if d["label_names"] is None else tuple(d["label_names"]),
            group_names=None if d["group_names"] is None else tuple(d["group_names"]),
            attribute_names=None if d.get("attribute_names") is None else tuple(d["attribute_names"]),
        )

    def record(self, stage: str, name: str, folder: Path, **meta: Any) -> None:
        """Remember ``folder`` as the latest ``stage`` output called ``name`` (e.g. embed/minilm).

        Each record gets the next number of the workspace's sequence (``seq``), so the outputs of a
        stage keep the order they were recorded in (a name recorded again moves last) and the last
        one is the stage's current output (:meth:`latest`). Recording the current output again,
        unchanged, writes nothing, so a rerun leaves ``workspace.json`` byte-equal. The index is updated under the
        workspace's lock, so concurrent writers keep every entry; a dataset passed to :meth:`bind`
        is stored first.
        """
        with self._locked():
            if self._pending is not None:
                self._attach(self._pending)
                self._pending = None
            info = self._info()
            outputs = info["outputs"].setdefault(stage, {})
            entry = json.loads(json.dumps({"path": str(folder.relative_to(self.path)), **meta}, default=str))
            old = {k: v for k, v in outputs.get(name, {}).items() if k != SEQ}
            if old == entry and next(reversed(self._ordered(outputs))) == name:
                return  # already the current one, as recorded: a rerun (or a resumed one) changes nothing
            seq = int(info.get(SEQ, 0)) + 1
            info[SEQ] = seq
            outputs[name] = {**entry, SEQ: seq}
            write_json_atomic(self.path / WORKSPACE_FILE, info)

    @staticmethod
    def _ordered(outputs: dict[str, Any]) -> dict[str, Any]:
        """``outputs`` in the order they were recorded (those without a number first, by name)."""
        return dict(sorted(outputs.items(), key=lambda kv: int(kv[1].get(SEQ, 0))))

    def latest(self, stage: str) -> str | None:
        """Name of the ``stage`` output recorded last (the stage's current one); None when there is none."""
        names = list(self.outputs(stage))
        return names[-1] if names else None

    def lookup(self, stage: str, name: str | None = None) -> Path:
        """Folder of the ``stage`` output called ``name`` (the latest recorded when ``name`` is None).

        Raises:
            InputDataError: no such output yet; the message lists the ones there are.
        """
        outputs = self.outputs(stage)
        if name is None and outputs:
            name = next(reversed(outputs))
        if name not in outputs:
            have = ", ".join(outputs) or "none"
            what = f"no {stage} output yet" if name is None else f"no {stage} output named {name!r}"
            raise InputDataError(
                f"{what} in this workspace (has: {have})",
                file=self.path,
                fix=f"run `curate {stage}` first or pass one of the names it has",
            )
        return self.path / outputs[name]["path"]

    def outputs(self, stage: str) -> dict[str, Any]:
        """Every recorded output of ``stage`` by name, in the order they were recorded (outputs of
        workspaces older than the sequence first, by name)."""
        return self._ordered(self._info()["outputs"].get(stage, {}))
