"""Manifest I/O in three formats, provenance (own sidecar per file, sealed and checked), id and
label checks against the dataset, safe output paths, and the readers users have."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.data import SampleTable
from curate.errors import ConfigError, IdMismatchError, InputDataError
from curate.manifest import (
    Manifest,
    ManifestDataset,
    check_against_dataset,
    manifest_frame,
    read_manifest,
    rows_fingerprint,
    sidecar_path,
    weighted_sampler,
    write_manifest,
)


def small() -> Manifest:
    rows = pl.DataFrame(
        {
            "sample_id": ["a", "b", "c"],
            "source": ["x/a.png", "x/b.png", "x/c.png"],
            "label": [0, 1, 1],
            "weight": [1.0, 2.5, 1.0],
            "mix_with": [None, "a", None],
            "mix_lambda": [None, 0.8, None],
        }
    )
    return Manifest(manifest_frame(rows), {"method": "test", "seed": 3})


SUFFIXES = (".parquet", ".csv", ".jsonl")


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_roundtrip_each_format(tmp_path: Path, suffix: str) -> None:
    m = small()
    p = write_manifest(m, tmp_path / f"m{suffix}")
    back = read_manifest(p, dataset_ids=pl.Series(["a", "b", "c", "d"]))
    assert back.frame.equals(m.frame) and back.path == p
    assert back.provenance == {**m.provenance, "rows_sha256": rows_fingerprint(m.frame), "provenance_sha256": ANY}
    side = sidecar_path(p)
    if suffix == ".parquet":  # the provenance is embedded: no sidecar
        assert side is None and [x.name for x in tmp_path.iterdir()] == ["m.parquet"]
    else:
        assert side == tmp_path / f"m{suffix}.json" and json.loads(side.read_text())["method"] == "test"
        assert sorted(x.name for x in tmp_path.iterdir()) == sorted([f"m{suffix}", f"m{suffix}.json"])


def test_rows_fingerprint_is_the_same_in_every_format(tmp_path: Path) -> None:
    m = small()
    prints = {read_manifest(write_manifest(m, tmp_path / f"m{s}")).provenance["rows_sha256"] for s in SUFFIXES}
    assert prints == {rows_fingerprint(m.frame)}


def test_formats_in_one_folder_keep_their_own_provenance(tmp_path: Path) -> None:
    """Writing a mix manifest to x.csv and x.jsonl leaves the provenance of the prune x.parquet alone."""
    write_manifest(small(), tmp_path / "x.parquet")
    other = Manifest(small().frame.head(2), {"method": "mix", "seed": 9})
    write_manifest(other, tmp_path / "x.csv")
    write_manifest(other, tmp_path / "x.jsonl")
    assert read_manifest(tmp_path / "x.parquet").method == "test"
    assert read_manifest(tmp_path / "x.csv").method == "mix" and read_manifest(tmp_path / "x.jsonl").method == "mix"
    assert not (tmp_path / "x.json").exists()


def test_export_keeps_the_provenance(tmp_path: Path) -> None:
    write_manifest(small(), tmp_path / "m.csv")
    out = api.export_manifest(tmp_path / "m.csv", tmp_path / "m.parquet")
    assert read_manifest(out).provenance == read_manifest(tmp_path / "m.csv").provenance


def _edit_sidecar(path: Path, **changes: object) -> None:
    prov = json.loads(path.read_text())
    prov.update(changes)
    path.write_text(json.dumps(prov))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_hand_edited_sidecar_is_refused(tmp_path: Path, suffix: str) -> None:
    p = write_manifest(small(), tmp_path / f"m{suffix}")
    _edit_sidecar(tmp_path / f"m{suffix}.json", method="oracle")
    with pytest.raises(InputDataError, match=rf"m\{suffix}\.json: the provenance was changed after curate wrote it"):
        read_manifest(p)


def test_sidecar_of_other_rows_is_refused(tmp_path: Path) -> None:
    p = write_manifest(small(), tmp_path / "m.csv")
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:-1]) + "\n")  # one row fewer than the provenance describes
    with pytest.raises(InputDataError, match=r"m\.csv\.json: the provenance describes other rows than m\.csv holds"):
        read_manifest(p)


def test_unsealed_provenance_must_match_the_counts(tmp_path: Path) -> None:
    """Provenance without the seal (written by hand, or by an older curate) is checked against the rows."""
    rows = small().frame
    m = Manifest(
        rows, {"method": "prune", "counts": {"rows": 3, "unique_kept": 3, "mixed": 1, "train": 5, "dropped": 2}}
    )
    p = write_manifest(m, tmp_path / "m.csv")
    side = tmp_path / "m.csv.json"
    prov = {k: v for k, v in json.loads(side.read_text()).items() if not k.endswith("sha256")}  # unsealed
    side.write_text(json.dumps(prov))
    assert read_manifest(p).method == "prune"
    for counts, wrong in (
        ({"rows": 4}, "counts.rows is 4 but the manifest has 3"),
        ({"mixed": 0}, "counts.mixed is 0 but the manifest has 1"),
        ({"unique_kept": 3, "train": 5, "dropped": 1}, "counts.dropped is 1 but train - unique_kept is 2"),
        ({"per_group": {"0": {"rows": 3, "weight": 1.0}}}, "counts.per_group records rows"),
    ):
        side.write_text(json.dumps({**prov, "counts": counts}))
        with pytest.raises(InputDataError, match=re.escape(wrong)):
            read_manifest(p)


def test_parquet_with_changed_embedded_provenance_is_refused(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    p = write_manifest(small(), tmp_path / "m.parquet")
    t = pq.read_table(p)
    prov = json.loads(t.schema.metadata[b"curate"])
    prov["method"] = "oracle"
    pq.write_table(t.replace_schema_metadata({b"curate": json.dumps(prov).encode()}), p)
    with pytest.raises(InputDataError, match=r"m\.parquet: the provenance was changed.*cannot be separated"):
        read_manifest(p)


def test_old_shared_sidecar_is_not_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """``x.json`` (the name every format used to share) may describe another file: it is ignored, with a warning."""
    p = write_manifest(small(), tmp_path / "m.csv")
    (tmp_path / "m.csv.json").rename(tmp_path / "m.json")
    with caplog.at_level("WARNING"):
        assert read_manifest(p).provenance == {}
    assert "m.json" in caplog.text and "holds no provenance" in caplog.text


def test_unreadable_inputs_are_one_clear_error(tmp_path: Path) -> None:
    p = write_manifest(small(), tmp_path / "m.parquet")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputDataError, match=r"m\.parquet: cannot read it as parquet \(truncated"):
        read_manifest(p)
    c = write_manifest(small(), tmp_path / "m.csv")
    (tmp_path / "m.csv.json").write_text('{"method": "prune",')
    with pytest.raises(InputDataError, match=r"m\.csv\.json: provenance is not valid JSON"):
        read_manifest(c)
    (tmp_path / "m.csv.json").write_text("[1, 2]")
    with pytest.raises(InputDataError, match="must be a JSON object, got list"):
        read_manifest(c)
    (tmp_path / "m.csv.json").unlink()
    c.write_text("sample_id,source,label,weight\na,x.png,one,1.0\n")
    with pytest.raises(InputDataError, match=r"m\.csv: cannot read it as csv"):
        read_manifest(c)
    c.write_text("sample_id,source,label,weight\na,x.png,,1.0\n")
    with pytest.raises(InputDataError, match=r"m\.csv row 1 \(sample_id 'a'\) column 'label': label is empty"):
        read_manifest(c)
    with pytest.raises(InputDataError, match="is a folder"):
        read_manifest(tmp_path)


def test_output_path_under_a_file_or_on_a_folder(tmp_path: Path) -> None:
    (tmp_path / "somefile.txt").write_text("x")
    with pytest.raises(InputDataError, match=r"somefile\.txt is a file, not a folder.*pick another output path"):
        write_manifest(small(), tmp_path / "somefile.txt" / "sub" / "m.parquet")
    (tmp_path / "m.csv").mkdir()
    with pytest.raises(InputDataError, match=r"m\.csv: is a folder"):
        write_manifest(small(), tmp_path / "m.csv")
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.csv", "somefile.txt"]


def test_read_only_destination(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"cannot (write in|create the folder) /sys"):
        write_manifest(small(), Path("/sys/curate-test/m.parquet"))
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(InputDataError, match="Permission denied"):
            write_manifest(small(), ro / "m.csv")
    finally:
        ro.chmod(0o700)


def test_format_must_agree_with_the_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--format csv contradicts the suffix of m.parquet"):
        write_manifest(small(), tmp_path / "m.parquet", format="csv")
    assert read_manifest(write_manifest(small(), tmp_path / "m.ndjson", format="ndjson")).method == "test"


def test_parquet_metadata_pyarrow_and_hf_datasets(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    p = write_manifest(small(), tmp_path / "m.parquet")
    t = pq.read_table(p)
    assert json.loads(t.schema.metadata[b"curate"])["seed"] == 3
    assert t.column("weight").to_pylist() == [1.0, 2.5, 1.0]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("parquet", data_files=str(p), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds["sample_id"] == ["a", "b", "c"] and ds["mix_with"] == [None, "a", None]


def test_ids_must_belong_to_the_dataset(tmp_path: Path) -> None:
    p = write_manifest(small(), tmp_path / "m.parquet")
    with pytest.raises(IdMismatchError, match=r"m\.parquet row 3 \(sample_id 'c'\) column 'sample_id': id is not in"):
        read_manifest(p, dataset_ids=pl.Series(["a", "b"]))
    partner_only = Manifest(small().frame.filter(pl.col("sample_id") != "a"), {"method": "mix"})
    with pytest.raises(IdMismatchError, match=r"row 1 \(sample_id 'b'\) column 'mix_with': mixing partner 'a' is not"):
        check_against_dataset(partner_only, pl.DataFrame({"sample_id": ["b", "c"]}))


def tiny_table() -> SampleTable:
    frame = pl.DataFrame(
        {
            "sample_id": ["a", "b", "c", "d"],
            "label": [0, 1, 1, 0],
            "split": ["train", "train", "train", "val"],
            "text": ["w", "x", "y", "z"],
            "group": [0, 3, 2, 1],
        }
    )
    return SampleTable(frame, name="tiny")


def test_labels_that_contradict_the_dataset_are_refused(tmp_path: Path) -> None:
    table = tiny_table()
    good = small()  # labels 0, 1, 1 as in the dataset
    check_against_dataset(good, table.frame)
    relabelled = Manifest(good.frame.with_columns(pl.Series("label", [0, 0, 1])), good.provenance)
    p = write_manifest(relabelled, tmp_path / "m.csv")
    with pytest.raises(
        InputDataError,
        match=r"m\.csv row 2 \(sample_id 'b'\) column 'label': label 0 contradicts the dataset's label 1 for this id",
    ):
        read_manifest(p, dataset=table.frame)
    regrouped = Manifest(good.frame.with_columns(pl.Series("group", [0, 3, 1])), good.provenance)
    with pytest.raises(InputDataError, match=r"test manifest row 3 .*group 1 contradicts the dataset's group 2"):
        check_against_dataset(regrouped, table.frame)


def test_training_refuses_a_manifest_that_relabels_the_data(tmp_path: Path) -> None:
    from curate.finetune import TrainRequest

    table = tiny_table()
    m = api.select("keep-all", table)
    TrainRequest(table, m)  # consistent
    wrong = write_manifest(
        Manifest(m.frame.with_columns(pl.lit(1, pl.Int64).alias("label")), m.provenance), tmp_path / "m.parquet"
    )
    with pytest.raises(InputDataError, match=r"m\.parquet row 1 \(sample_id 'a'\) column 'label': label 1 contradicts"):
        TrainRequest(table, read_manifest(wrong, dataset_ids=table.ids))
    unknown = Manifest(m.frame.with_columns(pl.lit("zz").alias("sample_id")), m.provenance)
    with pytest.raises(IdMismatchError, match=r"keep-all manifest row 1 \(sample_id 'zz'\).*id is not in the dataset"):
        TrainRequest(table, unknown)


def test_bad_rows_rejected() -> None:
    rows = manifest_frame(
        pl.DataFrame({"sample_id": ["a", "b"], "source": ["s", "t"], "label": [0, 1], "weight": [1.0, 0.0]})
    )
    with pytest.raises(InputDataError, match=r"row 2 \(sample_id 'b'\) column 'weight': weight 0.0 is not > 0"):
        Manifest(rows)
    rows = manifest_frame(
        pl.DataFrame(
            {"sample_id": ["a"], "source": ["s"], "label": [0], "weight": [1.0], "mix_with": ["a"], "mix_lambda": [1.5]}
        )
    )
    with pytest.raises(InputDataError, match="mix_lambda 1.5 is outside"):
        Manifest(rows)


def test_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_manifest(small(), tmp_path / "m.csv")
    before = (tmp_path / "m.csv").read_bytes()

    def boom(*a: object, **k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        write_manifest(small(), tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.csv", "m.csv.json"]


def test_torch_dataset_mixes_and_sampler_follows_weights() -> None:
    import torch

    values = {
        "x/a.png": torch.tensor([1.0, 0.0]),
        "x/b.png": torch.tensor([0.0, 1.0]),
        "x/c.png": torch.tensor([5.0, 5.0]),
    }
    ds = ManifestDataset(small(), values.__getitem__)
    item = ds[1]
    assert torch.allclose(item["x"], 0.8 * values["x/a.png"] + 0.2 * values["x/b.png"])
    assert item["label"] == 1 and item["weight"] == 2.5
    counts = np.bincount(list(weighted_sampler(small(), num_samples=9000, seed=1)), minlength=3)
    assert counts[1] / counts[0] == pytest.approx(2.5, rel=0.1)
    assert list(weighted_sampler(small(), num_samples=20, seed=1)) == list(
        weighted_sampler(small(), num_samples=20, seed=1)
    )


def test_export_converts_formats(tmp_path: Path) -> None:
    write_manifest(small(), tmp_path / "m.parquet")
    out = api.export_manifest(tmp_path / "m.parquet", tmp_path / "out" / "m.jsonl")
    assert read_manifest(out).frame.equals(small().frame)
