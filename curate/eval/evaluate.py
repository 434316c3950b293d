"""Evaluation with WILDS conventions on a split of a dataset, from per-sample predictions.

``acc_avg`` (mean over samples), ``acc_wg`` (worst non-empty group), per-group accuracy,
``adj_acc_avg`` (group accuracies weighted by the *train* group shares, as reported for
Waterbirds), and ``acc_worst_class``. Groups are the true ones when the dataset has them, or
pseudo-groups passed in; the result says which.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.errors import IdMismatchError, InputDataError

PREDICTION = "prediction"


@dataclass(frozen=True)
class EvalResult:
    """Accuracies of one model on one split (fractions in [0, 1])."""

    split: str
    n: int
    acc_avg: float
    acc_wg: float
    adj_acc_avg: float | None
    acc_worst_class: float
    groups: dict[str, float]
    group_sizes: dict[str, int]
    group_source: str
    group_names: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (``metrics.json``)."""
        return asdict(self)


def _group_names(table: SampleTable, groups: list[int], source: str) -> dict[str, str]:
    """Names of the scored groups: the true groups' names, or the class names when scored by class."""
    if source == "true":
        return {str(g): table.group_name(int(g)) for g in groups}
    names = table.label_names
    if source.startswith("class") and names is not None:
        return {str(g): names[int(g)] for g in groups if 0 <= int(g) < len(names)}
    return {}


def evaluate_predictions(
    table: SampleTable,
    predictions: pl.DataFrame,
    *,
    split: str = "test",
    pseudo_groups: pl.DataFrame | None = None,
) -> EvalResult:
    """Score ``predictions`` (``[sample_id, prediction]``) on ``split`` of ``table``.

    Args:
        table: the dataset (labels, splits, true groups when known).
        predictions: one predicted class per sample of the split (extra ids are ignored).
        split: which split to score.
        pseudo_groups: ``[sample_id, pseudo_group]`` used when the dataset has no true groups; a
            split none of whose rows has one (val/test: discovery covers train) is scored by class.

    Raises:
        IdMismatchError: a sample of the split has no prediction.
        InputDataError: the split is empty.
    """
    rows = table.split(split).frame
    if rows.height == 0:
        raise InputDataError(f"the {split!r} split is empty", file=table.where, fix="evaluate on another split")
    if table.has_groups:
        keyed, source = rows.select(S.SAMPLE_ID, S.LABEL, S.GROUP), "true"
    elif pseudo_groups is not None:
        keyed = rows.select(S.SAMPLE_ID, S.LABEL).join(
            pseudo_groups.select(S.SAMPLE_ID, pl.col(S.PSEUDO_GROUP).alias(S.GROUP)), on=S.SAMPLE_ID, how="left"
        )
        source = "pseudo"
        if keyed[S.GROUP].null_count() == keyed.height:  # discovery covers train only: none for this split
            keyed, source = rows.select(S.SAMPLE_ID, S.LABEL, pl.col(S.LABEL).alias(S.GROUP)), "class (no groups known)"
    else:
        keyed, source = rows.select(S.SAMPLE_ID, S.LABEL, pl.col(S.LABEL).alias(S.GROUP)), "class (no groups known)"
    j = keyed.join(predictions.select(S.SAMPLE_ID, PREDICTION), on=S.SAMPLE_ID, how="left")
    missing = j.filter(pl.col(PREDICTION).is_null())[S.SAMPLE_ID].to_list()
    if missing:
        raise IdMismatchError.from_ids(f"{split} split", "predictions", missing)
    j = j.with_columns((pl.col(PREDICTION) == pl.col(S.LABEL)).alias("correct"))
    per_group = (
        j.drop_nulls(S.GROUP)
        .group_by(S.GROUP)
        .agg(pl.len().alias("n"), pl.col("correct").mean().alias("acc"))
        .sort(S.GROUP)
    )
    per_class = j.group_by(S.LABEL).agg(pl.col("correct").mean().alias("acc"))
    adj = None
    if table.has_groups:
        train = table.split("train").frame.group_by(S.GROUP).len()
        w = per_group.join(train, on=S.GROUP, how="left").fill_null(0)
        shares = w["len"].to_numpy().astype(float)
        if shares.sum() > 0:
            adj = float((w["acc"].to_numpy() * shares).sum() / shares.sum())
    groups = {str(g): float(a) for g, a in zip(per_group[S.GROUP], per_group["acc"], strict=True)}
    return EvalResult(
        split=split,
        n=j.height,
        acc_avg=float(j["correct"].mean()),  # type: ignore[arg-type]
        acc_wg=min(groups.values()),
        adj_acc_avg=adj,
        acc_worst_class=float(per_class["acc"].min()),  # type: ignore[arg-type]
        groups=groups,
        group_sizes={str(g): int(n) for g, n in zip(per_group[S.GROUP], per_group["n"], strict=True)},
        group_source=source,
        group_names=_group_names(table, per_group[S.GROUP].to_list(), source),
    )
