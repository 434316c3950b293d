"""Every bad input gets a named error (file, row, fix); --skip-bad drops and reports; nothing is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curate import api
from curate.errors import ConfigError, InputDataError


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
    with pytest.raises(InputDataError, match=r"row 4 .*label 'cat' is not an integer class index"):
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


def test_fractional_label_is_an_error_not_rounded(tmp_path: Path) -> None:
    meta = write(tmp_path, [*GOOD, ("s3", "img/3.png", 1, "1.5", 0)])
    with pytest.raises(InputDataError) as e:
        api.load_dataset(meta)
    assert e.value.row == 4 and e.value.column == "label" and e.value.sample_id == "s3"
    assert "label '1.5' is not an integer class index" in str(e.value) and "--skip-bad" in str(e.value)
    table, report = api.check_dataset(meta, skip_bad=True)
    assert "s3" not in table.frame["sample_id"].to_list() and [p.row for p in report.dropped] == [4]
    write(tmp_path, [*GOOD, ("s3", "img/3.png", 1, "1.0", 0)])  # an integral float is that integer
    assert api.load_dataset(meta).frame.filter(pl.col("sample_id") == "s3")["label"].to_list() == [1]
    assert not [c for c in api.load_dataset(meta).frame.columns if c.startswith("_")]


def test_fractional_label_in_a_table(tmp_path: Path) -> None:
    pl.DataFrame({"sid": ["a", "b"], "y": [0.0, 1.5], "split": ["train", "train"], "text": ["x", "y"]}).write_parquet(
        tmp_path / "d.parquet"
    )
    with pytest.raises(InputDataError, match=r"row 2 \(sample_id 'b'\) column 'label': label '1.5' is not an integer"):
        api.load_dataset(tmp_path / "d.parquet", columns={"sample_id": "sid", "label": "y"})


def test_fractional_attribute_is_an_error(tmp_path: Path) -> None:
    meta = write(tmp_path, [*GOOD, ("s3", "img/3.png", 1, 1, "0.5")])
    with pytest.raises(InputDataError, match=r"row 4 \(sample_id 's3'\) column 'a': a '0.5' is not an integer"):
        api.load_dataset(meta)


def test_text_file_listed_as_image_is_decoded_and_refused(tmp_path: Path) -> None:
    meta = write(tmp_path, GOOD)
    (tmp_path / "notes.txt").write_text("not an image")
    write(tmp_path, [*GOOD, ("s3", "notes.txt", 1, 0, 0)], images=False)
    with pytest.raises(InputDataError, match=r"row 4 .*unreadable image at .*notes.txt"):
        api.load_dataset(meta)


def test_truncated_jpeg_is_decoded(tmp_path: Path) -> None:
    meta = write(tmp_path, [("s0", "img/0.jpg", 0, 0, 0), ("s1", "img/1.png", 0, 1, 1)], images=False)
    (tmp_path / "img").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "img/0.jpg", quality=95)
    Image.fromarray(np.zeros((3, 3, 3), dtype=np.uint8)).save(tmp_path / "img/1.png")
    data = (tmp_path / "img/0.jpg").read_bytes()
    (tmp_path / "img/0.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"row 1 .*unreadable image"):
        api.load_dataset(meta)


@pytest.mark.parametrize("kind", ["parent", "absolute", "symlink"])
def test_paths_outside_the_root_are_refused_unless_allowed(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros((3, 3, 3), dtype=np.uint8)).save(outside)
    rel = {"parent": "../outside.png", "absolute": str(outside), "symlink": "img/link.png"}[kind]
    write(data, GOOD)
    meta = write(data, [*GOOD, ("s3", rel, 1, 0, 0)], images=False)
    if kind == "symlink":
        (data / "img/link.png").symlink_to(outside)
    with pytest.raises(InputDataError) as e:
        api.load_dataset(meta)
    assert e.value.row == 4 and e.value.column == "path" and e.value.file == str(meta)
    assert "is outside the dataset root" in str(e.value) and "--allow-outside-root" in str(e.value)
    table = api.load_dataset(meta, allow_outside_root=True)
    assert len(table) == 4


def test_outside_root_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from curate.data import integrity

    opened: list[Path] = []
    real = integrity._image_problem
    monkeypatch.setattr(integrity, "_image_problem", lambda p: opened.append(p) or real(p))
    write(tmp_path, GOOD)
    meta = write(tmp_path, [*GOOD, ("s3", "../elsewhere.png", 1, 0, 0)], images=False)
    report = api.check_dataset(meta, skip_bad=True)[1]
    assert [p.row for p in report.dropped] == [4]
    assert all(p.name != "elsewhere.png" for p in opened) and len(opened) == 3


def test_option_the_layout_does_not_take(tmp_path: Path) -> None:
    meta = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"'target' \(--target\) does not apply to the subpopbench layout"):
        api.load_dataset(meta, target="Male")


def test_column_map_reads_a_sniffed_file_as_a_table(tmp_path: Path) -> None:
    meta = write(tmp_path, GOOD)
    t = api.check_dataset(meta, columns={"sample_id": "id", "label": "y", "path": "filename"})
    assert t[1].format == "table" and t[0].frame["label"].to_list() == [0, 1, 1]
