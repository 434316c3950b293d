"""A reviewer's decisions (``--keep``, ``--drop``, ``--review`` on the selection commands) and
``curate inspect``: unknown ids, ids both kept and dropped, bad review files, bad options.

Workspaces get random embeddings and a ``knn`` detection through the Python API (no encoder runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.corpus._corpus import Case
from tests.corpus.cases_manifest import _workspace

Setup = Callable[[Path], dict[str, str]]


def _detected(root: Path) -> dict[str, str]:
    """A workspace with random embeddings and a ``knn`` detection; ``id0``: a train id, ``val0``: a val id."""
    from curate import api
    from curate.embed import EmbeddingTable

    names = _workspace(root)
    ws = api.Workspace(names["ws"])
    table = ws.table()
    emb = EmbeddingTable.load(ws.lookup("embed", "random"))
    api.save_discovery(ws, api.detect(table, embeddings=emb, detector="knn", k=5))
    train = table.split("train").frame["sample_id"]
    val = table.split("val").frame["sample_id"]
    return {**names, "id0": train[0], "id1": train[1], "val0": val[0]}


def _files(**texts: str) -> Setup:
    """Setup: the detected workspace plus files ``root/NAME`` (``{id0}``-style names filled in)."""

    def setup(root: Path) -> dict[str, str]:
        names = _detected(root)
        for name, text in texts.items():
            (root / name.replace("_", ".")).write_text(text.format(**names))
        return names

    return setup


SELECT = ["select", "keep-all", "{ws}", "--out", "{root}/m.parquet"]

CASES = [
    Case(
        "balance-groups-unknown",
        ["balance", "{ws}", "--out", "{root}/m.parquet", "--groups", "TRUE"],
        2,
        "balance: '--groups' must be 'pseudo' or 'true'; got 'TRUE'",
        setup=_detected,
    ),
    Case(
        "review-drop-and-keep",
        [*SELECT, "--drop", "{root}/drop.txt", "--keep", "{root}/keep.txt"],
        0,
        "review: 1 kept (0 re-added), 1 dropped (1 rows removed",
        setup=_files(drop_txt="{id0}\n", keep_txt="{id1}\n"),
        unchanged=False,
    ),
    Case(
        "review-unknown-id",
        [*SELECT, "--drop", "{root}/drop.txt"],
        1,
        "drop.txt:3 (sample_id 'ghost'): this id is not in the dataset",
        setup=_files(drop_txt="{id0}\n\nghost\n"),
    ),
    Case(
        "review-id-outside-train",
        ["mix", "{ws}", "--out", "{root}/m.parquet", "--keep", "{root}/keep.txt"],
        1,
        "keep.txt:1 (sample_id '{val0}'): this id is a val sample; a manifest holds train samples only",
        setup=_files(keep_txt="{val0}\n"),
    ),
    Case(
        "review-id-kept-and-dropped",
        [*SELECT, "--keep", "{root}/keep.txt", "--drop", "{root}/drop.txt"],
        1,
        "drop.txt:1 (sample_id '{id0}'): this id is both kept (",
        setup=_files(keep_txt="{id1}\n{id0}\n", drop_txt="{id0}\n"),
    ),
    Case(
        "review-csv-bad-decision",
        [*SELECT, "--review", "{root}/review.csv"],
        1,
        "review.csv:3 (sample_id '{id1}') column 'decision': decision 'maybe' is not keep or drop",
        setup=_files(review_csv="sample_id,decision\n{id0},keep\n{id1},maybe\n"),
    ),
    Case(
        "review-csv-without-header",
        [*SELECT, "--review", "{root}/review.csv"],
        1,
        "review.csv: a review file needs the columns sample_id,decision",
        setup=_files(review_csv="{id0},drop\n"),
    ),
    Case(
        "review-file-missing",
        ["balance", "{ws}", "--out", "{root}/m.parquet", "--drop", "{root}/nope.txt"],
        1,
        "nope.txt: review file not found",
        setup=_detected,
    ),
    Case(
        "inspect-not-a-workspace",
        ["inspect", "{root}"],
        1,
        "not a curate workspace (no workspace.json)",
    ),
    Case(
        "inspect-no-detection-yet",
        ["inspect", "{ws}"],
        1,
        "no detect output yet in this workspace (has: none); run `curate detect` first",
        setup=_workspace,
    ),
    Case(
        "inspect-unknown-detector",
        ["inspect", "{ws}", "--detector", "ensemble"],
        1,
        "no detect output named 'ensemble' in this workspace (has: knn)",
        setup=_detected,
    ),
    Case(
        "inspect-group-not-a-pseudo-group",
        ["inspect", "{ws}", "--group", "9"],
        2,
        "'group' must be a pseudo-group among [0, 1, 2, 3]; got 9.",
        setup=_detected,
    ),
    Case(
        "inspect-top-zero",
        ["inspect", "{ws}", "--top", "0"],
        2,
        "inspect: '--top' must be an integer >= 1; got 0",
        setup=_detected,
    ),
    Case(
        "inspect-bad-format", ["inspect", "{ws}", "--format", "csv"], 2, "must be one of table, json", setup=_detected
    ),
    Case("inspect-lists-the-top", ["inspect", "{ws}", "--top", "3"], 0, "detection 'knn': top 3", setup=_detected),
]


def _runs(root: Path) -> dict[str, str]:
    """Two run folders named ``erm`` (under a/ and b/), one with broken JSON, one with an empty object."""
    import json

    for sub in ("a", "b"):
        (root / sub / "erm").mkdir(parents=True)
        (root / sub / "erm" / "metrics.json").write_text(
            json.dumps({"test": {"acc_avg": 1.0, "acc_wg": 1.0, "groups": {}}})
        )
    (root / "bad").mkdir()
    (root / "bad" / "metrics.json").write_text('{"acc')
    (root / "empty").mkdir()
    (root / "empty" / "metrics.json").write_text("{}")
    (root / "afile").write_text("x")
    return {}


CASES += [
    Case("report-two-runs-same-name", ["report", "{root}/a/erm", "{root}/b/erm", "--out", "{root}/rep"], 1, "two runs named 'erm'", setup=_runs),
    Case("report-metrics-not-json", ["report", "{root}/bad", "--out", "{root}/rep"], 1, "metrics.json: cannot read it as JSON", setup=_runs),
    Case("report-metrics-without-test", ["report", "{root}/empty", "--out", "{root}/rep"], 1, "metrics.json: holds no test metrics", setup=_runs),
    Case("report-missing-metrics-creates-nothing", ["report", "{root}", "--out", "{root}/rep"], 1, "no metrics.json", setup=_runs),
    Case("report-out-is-a-file", ["report", "{root}/a/erm", "--out", "{root}/afile"], 1, "afile: is a file; a folder was expected", setup=_runs),
]  # fmt: skip
