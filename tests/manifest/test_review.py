"""A reviewer's decisions: read from id files and review CSVs, checked against the dataset, applied
to a manifest (dropped leave, kept stay or come back with weight 1) and recorded in the sealed
provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from curate import api
from curate.errors import IdMismatchError, InputDataError
from curate.manifest import Manifest, apply_review, check_review, read_manifest, read_review, review_of
from tests.eval.test_metrics import table


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def subsampled() -> tuple[api.SampleTable, Manifest]:
    """The small table and a keep-all manifest without r0 and r1, with r3 mixed with r2."""
    t = table()
    m = api.select("keep-all", t)
    f = m.frame.filter(~pl.col("sample_id").is_in(["r0", "r1"])).with_columns(
        pl.when(pl.col("sample_id") == "r3").then(pl.lit("r2")).otherwise(None).alias("mix_with"),
        pl.when(pl.col("sample_id") == "r3").then(pl.lit(0.2)).otherwise(None).alias("mix_lambda"),
    )
    return t, Manifest(f, m.provenance | {"counts": {}})


def test_id_files_skip_blanks_comments_and_a_header(tmp_path: Path) -> None:
    keep = write(tmp_path / "keep.txt", "sample_id\nr0\n\n# looked fine\n  r1  \nr0\n")
    drop = write(tmp_path / "drop.txt", "r2\n")
    rev = read_review(keep=keep, drop=drop)
    assert rev.keep_ids == ["r0", "r1"] and rev.drop_ids == ["r2"]
    assert rev.decisions.filter(pl.col("sample_id") == "r1")["line"].item() == 5
    sha = {f["role"]: f["sha256"] for f in rev.files}
    assert sha["keep"] == hashlib.sha256(keep.read_bytes()).hexdigest()
    assert [f["ids"] for f in rev.files] == [2, 1]


def test_review_csv(tmp_path: Path) -> None:
    rev = read_review(review=write(tmp_path / "r.csv", "decision,sample_id,note\nKeep,r0,ok\n drop ,r2,\n\n"))
    assert rev.keep_ids == ["r0"] and rev.drop_ids == ["r2"] and rev.files[0]["role"] == "review"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "sample_id,decision\nr0,maybe\n",
            r"r.csv:2 \(sample_id 'r0'\) column 'decision': decision 'maybe' is not keep or drop",
        ),
        ("id,verdict\nr0,keep\n", "r.csv: a review file needs the columns sample_id,decision"),
    ],
)
def test_bad_review_csv(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(InputDataError, match=match):
        read_review(review=write(tmp_path / "r.csv", text))


def test_an_id_both_kept_and_dropped_is_an_error(tmp_path: Path) -> None:
    keep = write(tmp_path / "keep.txt", "r0\nr5\n")
    drop = write(tmp_path / "drop.txt", "r1\nr5\n")
    with pytest.raises(InputDataError, match=r"drop.txt:2 \(sample_id 'r5'\): this id is both kept \(.*keep.txt:2\)"):
        read_review(keep=keep, drop=drop)
    rev = write(tmp_path / "r.csv", "sample_id,decision\nr5,drop\n")
    with pytest.raises(InputDataError, match="both kept"):
        read_review(keep=keep, review=rev)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="nope.txt: review file not found"):
        read_review(drop=tmp_path / "nope.txt")


def test_unknown_and_non_train_ids_name_the_file_and_line(tmp_path: Path) -> None:
    t = table()
    with pytest.raises(IdMismatchError, match=r"drop.txt:3 \(sample_id 'ghost'\): this id is not in the dataset"):
        check_review(read_review(drop=write(tmp_path / "drop.txt", "r0\n\nghost\n")), t.frame)
    with pytest.raises(IdMismatchError, match=r"keep.txt:1 \(sample_id 't0'\): this id is a test sample"):
        check_review(read_review(keep=write(tmp_path / "keep.txt", "t0\n")), t.frame)


def test_apply_drops_re_adds_and_unmixes(tmp_path: Path) -> None:
    t, m = subsampled()
    rev = read_review(keep=write(tmp_path / "k.txt", "r0\nr4\n"), drop=write(tmp_path / "d.txt", "r2\nr5\n"))
    rows = t.split("train").frame.select("sample_id", pl.col("path").alias("source"), "label", "group")
    out = apply_review(m, rev, rows, train=12)
    ids = out.frame["sample_id"].to_list()
    assert "r2" not in ids and "r5" not in ids  # dropped
    assert ids.count("r0") == 1 and "r1" not in ids  # kept and re-added; undecided stays out
    r0 = out.frame.filter(pl.col("sample_id") == "r0").row(0, named=True)
    assert r0["weight"] == 1.0 and r0["label"] == 0 and r0["group"] == 0
    r3 = out.frame.filter(pl.col("sample_id") == "r3").row(0, named=True)
    assert r3["mix_with"] is None and r3["mix_lambda"] is None  # its partner was dropped
    prov = out.provenance
    assert prov["review"]["counts"] == {"kept": 2, "dropped": 2, "rows_removed": 2, "re_added": 1, "unmixed": 1}
    assert prov["review"]["keep"] == ["r0", "r4"] and prov["review"]["drop"] == ["r2", "r5"]
    assert prov["counts"]["rows"] == out.frame.height == 9 and prov["counts"]["dropped"] == 12 - 9
    assert prov["counts"]["mixed"] == 0
    assert review_of(out).sort("sample_id").rows() == [("r0", "keep"), ("r2", "drop"), ("r4", "keep"), ("r5", "drop")]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_reviewed_manifest_keeps_its_seal(tmp_path: Path, suffix: str) -> None:
    t = table()
    m = api.select("keep-all", t)
    out = api.review(m, t, drop=write(tmp_path / "d.txt", "r0\nr1\n"), keep=write(tmp_path / "k.txt", "r2\n"))
    path = api.write_manifest(out, tmp_path / f"m{suffix}")
    back = read_manifest(path, dataset=t.frame)
    assert back.frame.height == 10 and back.provenance["review"]["counts"]["dropped"] == 2
    assert back.provenance["review"]["files"][1]["sha256"] == hashlib.sha256(b"r0\nr1\n").hexdigest()


def test_no_review_files_leave_the_manifest_alone() -> None:
    t = table()
    m = api.select("keep-all", t)
    assert api.review(m, t) is m and "review" not in m.provenance
