"""``curate inspect`` and the workspace's detections: the top-flagged list (ordered by score, one
pseudo-group, JSON), the current detection (the latest recorded), the scores' minority flag, and a
reviewer's decisions shown next to each sample."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cli.app import main
from curate import api
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError
from tests.corpus._corpus import dataset


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A workspace on a 200-sample digits-color with random embeddings and a ``knn`` detection."""
    table = api.load_dataset(dataset(tmp_path) / "metadata.csv")
    w = api.Workspace(tmp_path / "ws").attach(table)
    x = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    emb = EmbeddingTable(table.ids, x, {"encoder": "random"})
    w.record("embed", "random", emb.save(tmp_path / "ws" / "embed" / "random"))
    api.save_discovery(w, api.detect(table, embeddings=emb, detector="knn", k=5))
    return tmp_path / "ws"


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(argv)
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_top_flagged_ordered_by_score(ws: Path) -> None:
    name, frame = api.inspect(ws, top=7)
    assert name == "knn" and frame.height == 7
    assert frame.columns == ["sample_id", "label", "class", "pseudo_group", "score", "path", "action", "review"]
    names = api.load_dataset(ws.parent / "data" / "metadata.csv").label_names
    assert names is not None and frame["class"].to_list() == [names[y] for y in frame["label"].to_list()]
    full = api.load_discovery(ws).scores.sort(["conflict_score", "sample_id"], descending=[True, False])
    assert frame["sample_id"].to_list() == full["sample_id"].head(7).to_list()
    assert frame["score"].to_list() == sorted(frame["score"].to_list(), reverse=True)


def test_group_filter(ws: Path) -> None:
    _, frame = api.inspect(ws, top=5, group=2)
    assert frame.height == 5 and set(frame["pseudo_group"].to_list()) == {2}
    with pytest.raises(ConfigError, match="'group' must be a pseudo-group among"):
        api.inspect(ws, group=99)


def test_cli_json_and_table(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(["inspect", str(ws), "--top", "4", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["detector"] == "knn" and len(data["samples"]) == 4
    assert [s["score"] for s in data["samples"]] == sorted((s["score"] for s in data["samples"]), reverse=True)
    assert set(data["samples"][0]) == {
        "sample_id",
        "label",
        "class",
        "pseudo_group",
        "score",
        "path",
        "action",
        "review",
    }
    code, out, err = cli(["inspect", str(ws), "--top", "3", "--group", "1"], capsys)
    assert code == 0 and "detection 'knn'" in out and "of pseudo-group 1" in out
    code, out, err = cli(["inspect", str(ws), "--format", "xml"], capsys)
    assert code == 2 and "'--format' must be one of table, json" in err


def test_current_detection_is_the_latest_recorded(ws: Path) -> None:
    w = api.Workspace(ws)
    table = w.table()
    emb = EmbeddingTable.load(w.lookup("embed"))
    other = api.detect(table, embeddings=emb, detector="knn", k=3)
    api.save_discovery(w, replace(other, detector="cluster"))  # a second detection, recorded later
    assert w.latest("detect") == "cluster" and api.load_discovery(w).detector == "cluster"
    assert api.inspect(ws, top=1)[0] == "cluster" and api.inspect(ws, top=1, detector="knn")[0] == "knn"
    api.save_discovery(w, api.detect(table, embeddings=emb, detector="knn", k=5))  # recorded again: current
    assert list(w.outputs("detect")) == ["cluster", "knn"] and api.current_detector(w) == "knn"
    assert w.outputs("detect")["knn"]["by"] == "curate detect"
    with pytest.raises(InputDataError, match=r"no detect output named 'el2n' in this workspace \(has: cluster, knn\)"):
        api.inspect(ws, detector="el2n")


def test_scores_carry_pseudo_group_and_minority_flag(ws: Path) -> None:
    w = api.Workspace(ws)
    disc = api.load_discovery(w)
    saved = pl.read_parquet(w.lookup("detect") / "scores.parquet")
    assert {"pseudo_group", "minority"} <= set(saved.columns)
    frame = api.score_frame(disc, w.table())
    assert frame.columns == [
        "sample_id", "label", "conflict_score", "pseudo_group", "minority", "group", "true_minority"
    ]  # fmt: skip
    largest = frame.group_by("label", "pseudo_group").len().sort("len", descending=True).unique("label", keep="first")
    for label, pg in largest.select("label", "pseudo_group").iter_rows():
        rows = frame.filter(pl.col("label") == label)
        assert not rows.filter(pl.col("pseudo_group") == pg)["minority"].any()
        assert rows.filter(pl.col("pseudo_group") != pg)["minority"].all()
    assert api.score_frame(disc).columns[-1] == "minority"  # without the table: no true groups


def test_review_decisions_are_shown(ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, first = api.inspect(ws, top=3)
    a, b, c = first["sample_id"].to_list()
    (tmp_path / "drop.txt").write_text(f"{a}\n{b}\n")
    (tmp_path / "keep.txt").write_text(f"{c}\n")
    m = tmp_path / "m.parquet"
    code, out, err = cli(
        ["select", "keep-all", str(ws), "--out", str(m), "--drop", str(tmp_path / "drop.txt"),
         "--keep", str(tmp_path / "keep.txt")],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "review: 1 kept (0 re-added), 2 dropped (2 rows removed" in out
    _, frame = api.inspect(ws, top=3)  # the workspace remembers the latest review
    assert frame["review"].to_list() == ["drop", "drop", "keep"] and frame["action"].null_count() == 3
    _, frame = api.inspect(ws, top=3, manifest=m)  # or the manifest's own record
    assert frame["action"].to_list() == ["dropped (review)", "dropped (review)", "kept"]  # not the method
    assert frame["review"].to_list() == ["drop", "drop", "keep"]
    assert api.review_decisions(ws).height == 3
    assert api.read_manifest(m).provenance["review"]["counts"]["dropped"] == 2
