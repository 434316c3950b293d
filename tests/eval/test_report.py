"""The report: Markdown table of runs and PNG plots that open as images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curate.errors import InputDataError
from curate.eval import write_report
from tests.eval.test_metrics import table


def run(folder: Path, method: str, groups: dict[str, float]) -> Path:
    folder.mkdir(parents=True)
    test = {
        "acc_avg": float(np.mean(list(groups.values()))),
        "acc_wg": min(groups.values()),
        "adj_acc_avg": 0.9,
        "groups": groups,
        "group_source": "true",
        "group_names": {"0": "0/a", "1": "0/b"},
    }
    (folder / "metrics.json").write_text(
        json.dumps({"method": method, "manifest": {"method": "keep-all"}, "test": test})
    )
    return folder


def test_report_with_plots(tmp_path: Path) -> None:
    runs = [run(tmp_path / "erm", "erm", {"0": 0.9, "1": 0.4}), run(tmp_path / "dro", "groupdro", {"0": 0.8, "1": 0.7})]
    t = table()
    train = t.split("train").frame
    scores = train.select("sample_id").with_columns(
        pl.Series("conflict_score", np.linspace(0, 1, train.height)), pl.lit(0).alias("pseudo_group")
    )
    emb = np.random.default_rng(0).normal(size=(train.height, 5))
    report = write_report(
        runs, tmp_path / "rep", table=t, scores=scores, embeddings=emb, embedding_ids=train["sample_id"].to_list()
    )
    text = report.read_text()
    assert "| erm | erm | head on frozen embeddings | keep-all | 0.6500 | 0.4000 | 0.9000 | true |" in text
    for png in ("group_accuracy.png", "score_histograms.png", "embedding_map.png"):
        assert f"({png})" in text
        assert Image.open(tmp_path / "rep" / png).size[0] > 100
    with pytest.raises(InputDataError, match="no metrics.json"):
        write_report([tmp_path / "nope"], tmp_path / "rep2")


def test_report_names_the_detection_with_legends_auroc_and_artifacts(tmp_path: Path) -> None:
    t = table()
    train = t.split("train").frame
    # the minority (groups 1 and 2: not their class's majority) scored highest: AUROC 1
    minority = train["group"].is_in([1, 2]).to_numpy()
    scores = train.select("sample_id").with_columns(
        pl.Series("conflict_score", minority.astype(float)), pl.lit(0).alias("pseudo_group")
    )
    emb = np.random.default_rng(0).normal(size=(train.height, 5))
    tokens = [{"token": "dear", "z": 7.5, "class": 1, "n": 40}]
    report = write_report(
        [run(tmp_path / "erm", "erm", {"0": 0.9, "1": 0.4})], tmp_path / "rep", table=t, scores=scores,
        embeddings=emb, embedding_ids=train["sample_id"].to_list(), detector="ensemble", artifacts=tokens,
    )  # fmt: skip
    text = report.read_text()
    assert text.count("*Legend:*") == 3  # one under every plot
    assert "Shown: detection `ensemble`, 12 train samples scored" in text
    assert "Minority-detection AUROC against the true groups: 1.0000" in text
    assert "| `dear` | 7.50 | 1 | 40 |" in text
