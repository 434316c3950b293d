"""Manifests: their provenance (one sidecar per file, sealed, checked against the rows), unreadable
files, output paths that cannot be written, and manifests that contradict the dataset they train on.

Workspaces get random embeddings through the Python API (no encoder runs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from tests.corpus._corpus import Case, dataset

Setup = Callable[[Path], dict[str, str]]
Change = Callable[[Path, dict[str, str]], None]
Edit = Callable[[pl.DataFrame], pl.DataFrame]


def _workspace(root: Path) -> dict[str, str]:
    """A workspace on the corpus dataset with random embeddings recorded as encoder ``random``."""
    from curate import api
    from curate.embed import EmbeddingTable

    table = api.load_dataset(dataset(root) / "metadata.csv")
    ws = api.Workspace(root / "ws").attach(table)
    x = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    folder = EmbeddingTable(table.ids, x, {"encoder": "random"}).save(root / "ws" / "embed" / "random")
    ws.record("embed", "random", folder)
    return {"ws": str(root / "ws")}


def _with_manifest(name: str, edit: Edit | None = None) -> Setup:
    """Setup: a workspace and its keep-all manifest ``root/name`` (rows changed by ``edit`` first)."""

    def setup(root: Path) -> dict[str, str]:
        from curate import api
        from curate.manifest import Manifest

        names = _workspace(root)
        m = api.select("keep-all", api.Workspace(root / "ws").table())
        fifth = m.frame.row(4, named=True)  # as in the dataset
        if edit is not None:
            m = Manifest(edit(m.frame), m.provenance)
        api.write_manifest(m, root / name)
        return {**names, "m": str(root / name), "id5": fifth["sample_id"], "y5": str(fifth["label"])}

    return setup


def _relabel_row5(frame: pl.DataFrame) -> pl.DataFrame:
    """Flip the label of the fifth row (binary labels)."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 4).then(1 - pl.col("label")).otherwise(pl.col("label")).alias("label")
    )


def _ghost_row3(frame: pl.DataFrame) -> pl.DataFrame:
    """Give the third row an id the dataset lacks."""
    return frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("ghost")).otherwise(pl.col("sample_id")).alias("sample_id")
    )


def _then(setup: Setup, change: Change) -> Setup:
    def run(root: Path) -> dict[str, str]:
        names = setup(root)
        change(root, names)
        return names

    return run


def _truncate(root: Path, names: dict[str, str]) -> None:
    p = Path(names["m"])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _sidecar(text: str) -> Change:
    def change(root: Path, names: dict[str, str]) -> None:
        Path(names["m"] + ".json").write_text(text)

    return change


def _edit_sidecar(**changes: object) -> Change:
    def change(root: Path, names: dict[str, str]) -> None:
        side = Path(names["m"] + ".json")
        prov = json.loads(side.read_text())
        prov.update(changes)
        side.write_text(json.dumps({k: v for k, v in prov.items() if v is not None}))

    return change


def _drop_last_row(root: Path, names: dict[str, str]) -> None:
    p = Path(names["m"])
    p.write_text("\n".join(p.read_text().splitlines()[:-1]) + "\n")


def _file_in_the_way(root: Path, names: dict[str, str]) -> None:
    (root / "somefile.txt").write_text("not a folder\n")


def _folder_in_the_way(root: Path, names: dict[str, str]) -> None:
    (root / "m.parquet").mkdir()


def _two_formats(root: Path) -> dict[str, str]:
    """x.parquet from keep-all, then x.csv and x.jsonl from oracle in the same folder (they used to
    share the sidecar x.json, so the Parquet's provenance became oracle's)."""
    from curate import api

    names = _workspace(root)
    table = api.Workspace(root / "ws").table()
    api.write_manifest(api.select("keep-all", table), root / "x.parquet")
    oracle = api.select("oracle", table)
    api.write_manifest(oracle, root / "x.csv")
    api.write_manifest(oracle, root / "x.jsonl")
    return names


def _csv(text: str) -> Setup:
    def setup(root: Path) -> dict[str, str]:
        (root / "m.csv").write_text(text)
        return {"m": str(root / "m.csv")}

    return setup


def _txt(root: Path) -> dict[str, str]:
    (root / "m.txt").write_text("sample_id\n")
    return {"m": str(root / "m.txt")}


WS = _workspace
FINETUNE = ["finetune", "{ws}", "-m", "{m}", "--out", "{root}/run", "--epochs", "1", "--device", "cpu"]
EXPORT = ["export", "{m}", "--out", "{root}/out.jsonl"]
CSV_HEADER = "sample_id,source,label,weight\n"

CASES = [
    # provenance: each file its own, and checked
    Case(
        "manifest-formats-keep-their-own-provenance",
        ["finetune", "{ws}", "-m", "{root}/x.parquet", "--out", "{root}/run", "--epochs", "1", "--device", "cpu"],
        0,
        "on keep-all manifest",
        setup=_two_formats,
        unchanged=False,
    ),
    Case("manifest-export-keeps-provenance", EXPORT, 0, "out.jsonl", setup=_with_manifest("m.csv"), unchanged=False),
    Case(
        "manifest-sidecar-hand-edited",
        FINETUNE,
        1,
        "m.csv.json: the provenance was changed after curate wrote it",
        setup=_then(_with_manifest("m.csv"), _edit_sidecar(method="oracle")),
    ),
    Case(
        "manifest-sidecar-counts-disagree",
        EXPORT,
        1,
        "counts.rows is 7 but the manifest has 200",
        setup=_then(
            _with_manifest("m.jsonl"),
            _edit_sidecar(counts={"rows": 7}, rows_sha256=None, provenance_sha256=None),
        ),
    ),
    Case(
        "manifest-sidecar-of-other-rows",
        EXPORT,
        1,
        "the provenance describes other rows than m.csv holds",
        setup=_then(_with_manifest("m.csv"), _drop_last_row),
    ),
    Case(
        "manifest-sidecar-invalid-json",
        EXPORT,
        1,
        "m.csv.json: provenance is not valid JSON",
        setup=_then(_with_manifest("m.csv"), _sidecar('{"method": "prune",')),
    ),
    Case(
        "manifest-sidecar-not-an-object",
        EXPORT,
        1,
        "provenance must be a JSON object, got list",
        setup=_then(_with_manifest("m.jsonl"), _sidecar("[1, 2]")),
    ),
    # unreadable manifests
    Case(
        "manifest-truncated-parquet",
        EXPORT,
        1,
        "m.parquet: cannot read it as parquet (truncated",
        setup=_then(_with_manifest("m.parquet"), _truncate),
    ),
    Case(
        "manifest-truncated-parquet-finetune",
        FINETUNE,
        1,
        "m.parquet: cannot read it as parquet (truncated",
        setup=_then(_with_manifest("m.parquet"), _truncate),
    ),
    Case("manifest-not-found", ["export", "{root}/nope.parquet", "--out", "{root}/o.csv"], 1, "manifest not found"),
    Case("manifest-is-a-folder", ["export", "{root}", "--out", "{root}/o.csv"], 1, "is a folder"),
    Case(
        "manifest-unknown-suffix", ["export", "{m}", "--out", "{root}/o.csv"], 1, "unknown manifest format", setup=_txt
    ),
    Case(
        "manifest-missing-column",
        EXPORT,
        1,
        "m.csv: manifest lacks column 'label'",
        setup=_csv("sample_id,source,weight\na,x.png,1.0\n"),
    ),
    Case(
        "manifest-label-not-int", EXPORT, 1, "m.csv: cannot read it as csv", setup=_csv(CSV_HEADER + "a,x.png,one,1\n")
    ),
    Case(
        "manifest-label-empty",
        EXPORT,
        1,
        "m.csv row 2 (sample_id 'b') column 'label': label is empty",
        setup=_csv(CSV_HEADER + "a,x.png,0,1\nb,y.png,,1\n"),
    ),
    Case(
        "manifest-weight-not-positive",
        EXPORT,
        1,
        "m.csv row 1 (sample_id 'a') column 'weight': weight 0.0 is not > 0",
        setup=_csv(CSV_HEADER + "a,x.png,0,0\n"),
    ),
    Case("manifest-empty-file", EXPORT, 1, "m.csv: cannot read it as csv", setup=_csv("")),
    # output paths
    Case(
        "manifest-out-under-a-file",
        ["select", "keep-all", "{ws}", "--out", "{root}/somefile.txt/m.parquet"],
        1,
        "somefile.txt is a file, not a folder, so nothing can be written under it",
        setup=_then(WS, _file_in_the_way),
    ),
    Case(
        "manifest-out-is-a-folder",
        ["select", "keep-all", "{ws}", "--out", "{root}/m.parquet"],
        1,
        "m.parquet: is a folder; a file was expected",
        setup=_then(WS, _folder_in_the_way),
    ),
    Case(
        "manifest-out-read-only",
        ["select", "keep-all", "{ws}", "--out", "/sys/m.parquet"],
        1,
        "cannot write in /sys (Permission denied)",
        setup=WS,
    ),
    Case(
        "manifest-out-folder-cannot-be-created",
        ["select", "keep-all", "{ws}", "--out", "/sys/curate-corpus/m.parquet"],
        1,
        "cannot create the folder /sys/curate-corpus",
        setup=WS,
    ),
    Case(
        "export-out-under-a-file",
        ["export", "{m}", "--out", "{root}/somefile.txt/o.csv"],
        1,
        "somefile.txt is a file, not a folder",
        setup=_then(_with_manifest("m.parquet"), _file_in_the_way),
    ),
    Case(
        "manifest-format-contradicts-suffix",
        ["select", "keep-all", "{ws}", "--out", "{root}/m.parquet", "--format", "csv"],
        2,
        "--format csv contradicts the suffix of m.parquet",
        setup=WS,
    ),
    Case(
        "manifest-unknown-out-suffix",
        ["select", "keep-all", "{ws}", "--out", "{root}/m.txt"],
        2,
        "cannot tell the format of m.txt",
        setup=WS,
    ),
    Case(
        "manifest-written",
        ["select", "keep-all", "{ws}", "--out", "{root}/out/m.csv"],
        0,
        "keep-all: 200 rows",
        setup=WS,
        unchanged=False,
    ),
    # manifests applied to a dataset
    Case(
        "manifest-label-contradicts-dataset",
        FINETUNE,
        1,
        "m.csv row 5 (sample_id '{id5}') column 'label': label",
        setup=_with_manifest("m.csv", _relabel_row5),
    ),
    Case(
        "manifest-label-contradicts-dataset-parquet",
        FINETUNE,
        1,
        "contradicts the dataset's label {y5} for this id",
        setup=_with_manifest("m.parquet", _relabel_row5),
    ),
    Case(
        "manifest-id-not-in-dataset",
        FINETUNE,
        1,
        "m.jsonl row 3 (sample_id 'ghost') column 'sample_id': id is not in the dataset",
        setup=_with_manifest("m.jsonl", _ghost_row3),
    ),
]
