"""Evaluation metrics on a hand-computed case."""

from __future__ import annotations

import polars as pl
import pytest

from curate.data import SampleTable
from curate.errors import IdMismatchError
from curate.eval import auroc, evaluate_predictions, minority_flags


def table() -> SampleTable:
    # train: groups 0..3 with 6, 2, 1, 3 samples; test: 2 samples per group
    train = [(f"r{i}", y, g) for i, (y, g) in enumerate([(0, 0)] * 6 + [(0, 1)] * 2 + [(1, 2)] * 1 + [(1, 3)] * 3)]
    test = [(f"t{i}", g // 2, g) for i, g in enumerate([0, 0, 1, 1, 2, 2, 3, 3])]
    rows = [(s, y, "train", g) for s, y, g in train] + [(s, y, "test", g) for s, y, g in test]
    f = pl.DataFrame(rows, schema=["sample_id", "label", "split", "group"], orient="row").with_columns(
        pl.col("sample_id").alias("path")
    )
    return SampleTable(f, group_names=("0/a", "0/b", "1/a", "1/b"))


def test_wilds_metrics_by_hand() -> None:
    # predictions: group 0 both right, group 1 one right, group 2 none right, group 3 both right
    pred = pl.DataFrame({"sample_id": [f"t{i}" for i in range(8)], "prediction": [0, 0, 0, 1, 0, 0, 1, 1]})
    r = evaluate_predictions(table(), pred)
    assert r.n == 8 and r.group_source == "true"
    assert r.acc_avg == pytest.approx(5 / 8)
    assert r.groups == {"0": 1.0, "1": 0.5, "2": 0.0, "3": 1.0}
    assert r.acc_wg == 0.0
    assert r.adj_acc_avg == pytest.approx((6 * 1.0 + 2 * 0.5 + 1 * 0.0 + 3 * 1.0) / 12)
    assert r.acc_worst_class == pytest.approx(0.5)  # class 1: 2 of 4 right
    assert r.group_names["2"] == "1/a" and r.to_dict()["groups"]["1"] == 0.5


def test_missing_prediction_is_named() -> None:
    pred = pl.DataFrame({"sample_id": [f"t{i}" for i in range(7)], "prediction": [0] * 7})
    with pytest.raises(IdMismatchError, match="1 ids in 'test split' not in 'predictions', first: 't7'"):
        evaluate_predictions(table(), pred)


def test_pseudo_groups_when_true_groups_are_unknown() -> None:
    t = table()
    nog = t.with_frame(t.frame.drop("group"))
    pred = pl.DataFrame({"sample_id": [f"t{i}" for i in range(8)], "prediction": [0] * 8})
    pseudo = pl.DataFrame({"sample_id": [f"t{i}" for i in range(8)], "pseudo_group": [0, 0, 0, 0, 1, 1, 1, 1]})
    r = evaluate_predictions(nog, pred, pseudo_groups=pseudo)
    assert r.group_source == "pseudo" and r.groups == {"0": 1.0, "1": 0.0} and r.adj_acc_avg is None


def test_minority_flags_and_auroc() -> None:
    flags = minority_flags(table().frame.filter(pl.col("split") == "train"))
    assert flags["minority"].sum() == 3  # groups 1 and 2 are not their class's majority
    assert auroc([0.1, 0.2, 0.9, 0.8], [False, False, True, True]) == 1.0
