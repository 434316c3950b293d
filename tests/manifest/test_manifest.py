"""Manifest I/O in three formats, provenance, id checks, and the readers users have."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.errors import IdMismatchError, InputDataError
from curate.manifest import Manifest, ManifestDataset, manifest_frame, read_manifest, weighted_sampler, write_manifest


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


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_roundtrip_each_format(tmp_path: Path, suffix: str) -> None:
    m = small()
    p = write_manifest(m, tmp_path / f"m{suffix}")
    back = read_manifest(p, dataset_ids=pl.Series(["a", "b", "c", "d"]))
    assert back.frame.equals(m.frame) and back.provenance == m.provenance
    assert json.loads((tmp_path / "m.json").read_text())["method"] == "test"
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([f"m{suffix}", "m.json"])


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
    with pytest.raises(IdMismatchError, match="1 ids in 'm.parquet' not in 'dataset', first: 'c'"):
        read_manifest(p, dataset_ids=pl.Series(["a", "b"]))


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
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.csv", "m.json"]


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
