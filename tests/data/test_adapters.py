"""Each adapter on a small fixture written in that layout's exact form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curate import api
from curate.data import detect_format
from curate.errors import ConfigError, InputDataError, UnknownNameError


def png(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(path)


def test_subpopbench(tmp_path: Path) -> None:
    rows = [(0, "img/0.png", 0, 0, 0), (1, "img/1.png", 0, 1, 1), (2, "img/2.png", 1, 0, 1), (3, "img/3.png", 2, 1, 0)]
    for r in rows:
        png(tmp_path / r[1])
    pl.DataFrame(rows, schema=["id", "filename", "split", "y", "a"], orient="row").write_csv(tmp_path / "metadata.csv")
    assert detect_format(tmp_path) == "subpopbench"
    t = api.load_dataset(tmp_path)
    assert t.frame["sample_id"].to_list() == ["0", "1", "2", "3"]
    assert t.frame["split"].to_list() == ["train", "train", "val", "test"]
    assert t.frame["group"].to_list() == [0, 3, 1, 2]  # y * 2 + a
    assert t.resolve(t.frame["path"][0]) == tmp_path / "img/0.png"
    assert t.modality == "image" and t.has_groups


def test_waterbirds(tmp_path: Path) -> None:
    rows = [
        (1, "001.Black_footed_Albatross/a.jpg", 1, 0, 1),
        (2, "002.Laysan/b.jpg", 0, 0, 0),
        (3, "003.Sooty/c.jpg", 0, 1, 1),
        (4, "004.Tern/d.jpg", 1, 2, 0),
    ]
    for r in rows:
        png(tmp_path / r[1])
    pl.DataFrame(rows, schema=["img_id", "img_filename", "y", "split", "place"], orient="row").write_csv(
        tmp_path / "metadata.csv"
    )
    assert detect_format(tmp_path / "metadata.csv") == "waterbirds"
    t = api.load_dataset(tmp_path / "metadata.csv")
    assert t.frame["group"].to_list() == [3, 0, 1, 2]
    assert t.frame["place"].to_list() == [1, 0, 1, 0]
    assert t.label_names == ("landbird", "waterbird")
    assert t.group_name(3) == "waterbird / water"


def test_celeba(tmp_path: Path) -> None:
    names = ["5_o_Clock_Shadow", "Blond_Hair", "Male", "Smiling"]
    vals = {
        "000001.jpg": (-1, 1, -1, 1),
        "000002.jpg": (1, -1, 1, -1),
        "000003.jpg": (-1, 1, 1, 1),
        "000004.jpg": (1, -1, -1, 1),
    }
    lines = [str(len(vals)), " ".join(names)] + [f"{k}  " + " ".join(f"{v:2d}" for v in vs) for k, vs in vals.items()]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n")
    for k in vals:
        png(tmp_path / "img_align_celeba" / k)
    assert detect_format(tmp_path) == "celeba"
    t = api.load_dataset(tmp_path)
    f = t.frame.sort("sample_id")
    assert f["label"].to_list() == [1, 0, 1, 0]
    assert f["a"].to_list() == [0, 1, 1, 0]
    assert f["split"].to_list() == ["train", "train", "val", "test"]
    assert t.group_name(3) == "Blond_Hair / Male"
    t2 = api.load_dataset(tmp_path, target="Smiling", spurious="Blond_Hair")
    assert t2.frame.sort("sample_id")["label"].to_list() == [1, 0, 1, 1]
    with pytest.raises(ConfigError, match="did you mean 'Smiling'"):
        api.load_dataset(tmp_path, target="Smilng")


def test_civilcomments(tmp_path: Path) -> None:
    df = pl.DataFrame(
        {
            "id": [10, 11, 12, 13],
            "comment_text": ["you are great", 'awful, "quoted" person', "as a muslim I agree", "men are bad"],
            "split": ["train", "train", "val", "test"],
            "toxicity": [0.0, 0.8, 0.1, 0.6],
            "male": [0.0, 0.0, 0.0, 0.9],
            "female": [0.0] * 4,
            "LGBTQ": [0.0] * 4,
            "christian": [0.0] * 4,
            "muslim": [0.0, 0.0, 1.0, 0.0],
            "other_religions": [0.0] * 4,
            "black": [0.0] * 4,
            "white": [0.0] * 4,
        }
    )
    df.write_csv(tmp_path / "all_data_with_identities.csv")
    assert detect_format(tmp_path) == "civilcomments"
    t = api.load_dataset(tmp_path)
    assert t.modality == "text"
    assert t.frame["label"].to_list() == [0, 1, 0, 1]
    assert t.frame["a"].to_list() == [0, 0, 1, 1]
    assert t.frame["text"][1] == 'awful, "quoted" person'
    t2 = api.load_dataset(tmp_path, identity="muslim")
    assert t2.frame["a"].to_list() == [0, 0, 1, 0]


def test_imagefolder_with_and_without_splits(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            png(tmp_path / "a" / split / cls / "x.png")
    t = api.load_dataset(tmp_path / "a")
    assert t.label_names == ("cat", "dog")
    assert sorted(set(t.frame["split"])) == ["train", "val"]
    assert "train/dog/x.png" in t.frame["sample_id"].to_list()
    png(tmp_path / "b" / "zebra" / "1.jpg")
    png(tmp_path / "b" / "ant" / "2.png")
    t = api.load_dataset(tmp_path / "b", format="imagefolder")
    assert t.frame.sort("sample_id")["label"].to_list() == [0, 1] and set(t.frame["split"]) == {"train"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_generic_table_with_column_map(tmp_path: Path, suffix: str) -> None:
    df = pl.DataFrame(
        {
            "uid": ["u1", "u2", "u3"],
            "cls": ["dog", "cat", "dog"],
            "fold": ["train", "train", "test"],
            "sentence": ["a", "b", "c"],
            "place": [0, 1, 1],
        }
    )
    path = tmp_path / f"data{suffix}"
    {".csv": df.write_csv, ".parquet": df.write_parquet, ".jsonl": df.write_ndjson}[suffix](path)
    t = api.load_dataset(
        path, columns={"sample_id": "uid", "label": "cls", "split": "fold", "text": "sentence", "a": "place"}
    )
    assert t.label_names == ("cat", "dog")
    assert t.frame["label"].to_list() == [1, 0, 1]
    assert t.frame["group"].to_list() == [2, 1, 3]
    with pytest.raises(InputDataError, match="no 'sample_id' column.*--columns sample_id="):
        api.load_dataset(path, columns={"label": "cls", "split": "fold", "text": "sentence"})
    with pytest.raises(InputDataError, match="column 'nope' \\(mapped to 'label'\\) not found"):
        api.load_dataset(path, columns={"label": "nope"})


def test_sidecar_names_and_unknown_format(tmp_path: Path) -> None:
    pl.DataFrame({"id": ["t1", "t2"], "split": [0, 2], "y": [0, 1], "a": [1, 0], "text": ["x", "y"]}).write_csv(
        tmp_path / "metadata.csv"
    )
    (tmp_path / "dataset.json").write_text(
        json.dumps({"name": "toy", "label_names": ["neg", "pos"], "attribute_values": ["plain", "cue"]})
    )
    t = api.load_dataset(tmp_path)
    assert t.name == "toy" and t.group_name(1) == "neg / cue" and t.modality == "text"
    with pytest.raises(UnknownNameError, match="did you mean 'waterbirds'"):
        api.load_dataset(tmp_path, format="waterbird")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputDataError, match="cannot tell the dataset layout"):
        api.load_dataset(tmp_path / "notes.txt")


def test_flat_image_folder_names_the_expected_layout(tmp_path: Path) -> None:
    for k in range(3):
        png(tmp_path / "flat" / f"{k}.png")
    for fmt in ("auto", "imagefolder"):
        with pytest.raises(
            InputDataError, match=r"3 images but no class sub-folders.*root/<class>/<image>.*metadata file"
        ):
            api.load_dataset(tmp_path / "flat", format=fmt)


def test_single_class_folder_is_refused(tmp_path: Path) -> None:
    png(tmp_path / "one" / "cats" / "a.png")
    png(tmp_path / "one" / "cats" / "b.png")
    with pytest.raises(InputDataError, match=r"only one class folder \('cats'\).*at least two classes"):
        api.load_dataset(tmp_path / "one")
    png(tmp_path / "split" / "train" / "cats" / "a.png")
    png(tmp_path / "split" / "val" / "cats" / "b.png")
    with pytest.raises(InputDataError, match="only one class folder"):
        api.load_dataset(tmp_path / "split")


def test_loose_images_beside_class_folders_are_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    png(tmp_path / "d" / "cat" / "a.png")
    png(tmp_path / "d" / "dog" / "b.png")
    png(tmp_path / "d" / "stray.png")
    with caplog.at_level("WARNING", logger="curate"):
        t = api.load_dataset(tmp_path / "d")
    assert len(t) == 2 and "ignored 1 images outside the class folders" in caplog.text
