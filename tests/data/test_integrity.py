"""Every bad input gets a named error (file, row, fix); --skip-bad drops and reports; nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curate import api
from curate.errors import InputDataError


def write(tmp_path: Path, rows: list[tuple], *, images: bool = True) -> Path:
    for r in rows:
        if images:
            (tmp_path / "img").mkdir(exist_ok=True)
            Image.fromarray(np.zeros((3, 3, 3), dtype=np.uint8)).save(tmp_path / r[1])
    pl.DataFrame(rows, schema=["id", "filename", "split", "y", "a"], orient="row").write_csv(tmp_path / "metadata.csv")
    return tmp_path / "metadata.csv"


GOOD = [("s0", "img/0.png", 0, 0, 0), ("s1", "img/1.png", 0, 1, 1), ("s2", "img/2.png", 2, 1, 0)]


def test_missing_image_names_file_row_and_fix(tmp_path: Path) -> None:
    meta = write(tmp_path, GOOD)
    (tmp_path / "img/1.png").unlink()
    with pytest.raises(InputDataError) as e:
        api.load_dataset(meta)
    msg = str(e.value)
    assert "metadata.csv row 2 (sample_id 's1') column 'path': file not found at" in msg
    assert "--skip-bad" in msg and "\n" not in msg
    assert e.value.row == 2 and e.value.sample_id == "s1"


def test_corrupt_image(tmp_path: Path) -> None:
    meta = write(tmp_path, GOOD)
    (tmp_path / "img/2.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(InputDataError, match=r"row 3 \(sample_id 's2'\) column 'path': unreadable image"):
        api.load_dataset(meta)


def test_truncated_png(tmp_path: Path) -> None:
    meta = write(tmp_path, GOOD)
    data = (tmp_path / "img/0.png").read_bytes()
    (tmp_path / "img/0.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match="row 1 .*unreadable image"):
        api.load_dataset(meta)


def test_duplicate_ids(tmp_path: Path) -> None:
    meta = write(tmp_path, [*GOOD, ("s1", "img/3.png", 1, 0, 0)])
    with pytest.raises(InputDataError, match=r"row 4 \(sample_id 's1'\) column 'sample_id': duplicate sample_id"):
        api.load_dataset(meta)


def test_label_outside_classes(tmp_path: Path) -> None:
    meta = write(tmp_path, [*GOOD, ("s3", "img/3.png", 1, -1, 0)])
    with pytest.raises(InputDataError, match=r"row 4 .*label -1 is outside the classes"):
        api.load_dataset(meta)
    rows = [*GOOD, ("s3", "img/3.png", 1, "cat", 0)]
    write(tmp_path, rows)
    with pytest.raises(InputDataError, match=r"row 4 .*label is missing or not an integer"):
        api.load_dataset(meta)


def test_label_outside_named_classes_in_table(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("sid,label,split,text\na,0,train,x\nb,7,train,y\n")
    t = api.load_dataset(tmp_path / "d.csv", columns={"sample_id": "sid"})
    assert t.n_classes == 8  # unnamed integer labels: any label >= 0 is a class


def test_bad_split_value_and_empty_split(tmp_path: Path) -> None:
    meta = write(tmp_path, [*GOOD, ("s3", "img/3.png", 7, 0, 0)])
    with pytest.raises(InputDataError, match=r"row 4 .*split '7' is not one of train, val, test"):
        api.load_dataset(meta)
    meta = write(tmp_path, [("s0", "img/0.png", 2, 0, 0)])
    with pytest.raises(InputDataError, match=r"metadata.csv column 'split': the 'train' split is empty"):
        api.load_dataset(meta)


def test_several_problems_count_and_skip_bad_reports_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    meta = write(tmp_path, [*GOOD, ("s3", "img/3.png", 1, 5, 0), ("s1", "img/4.png", 1, 0, 0)])
    (tmp_path / "img/0.png").unlink()
    with pytest.raises(
        InputDataError, match=r"row 1 .*\(and 1 more bad rows\); fix the path, or pass --skip-bad to drop every bad row"
    ):
        api.load_dataset(meta)
    with caplog.at_level("WARNING", logger="curate"):
        table, report = api.check_dataset(meta, skip_bad=True)
    assert sorted(table.frame["sample_id"]) == ["s1", "s2", "s3"]
    assert [p.row for p in report.dropped] == [1, 5]
    assert caplog.text.count("skipped") == 2


def test_unparseable_csv(tmp_path: Path) -> None:
    (tmp_path / "metadata.csv").write_bytes(b"id,filename,split,y,a\n\xff\xfe,\x00\n")
    with pytest.raises(InputDataError):
        api.load_dataset(tmp_path / "metadata.csv", format="subpopbench")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="no such file or folder"):
        api.load_dataset(tmp_path / "nope.csv")


def test_label_outside_named_classes(tmp_path: Path) -> None:
    import json

    meta = write(tmp_path, [*GOOD, ("s3", "img/3.png", 1, 2, 0)])
    (tmp_path / "dataset.json").write_text(json.dumps({"label_names": ["neg", "pos"]}))
    with pytest.raises(InputDataError, match=r"row 4 .*label 2 is outside the classes \(0..1\)"):
        api.load_dataset(meta)
