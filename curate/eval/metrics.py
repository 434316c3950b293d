"""Pure metrics on ids, labels, groups and scores (no I/O).

Worst-group accuracy follows WILDS: the minimum over non-empty groups. A *minority* sample is one
whose group is not the largest group of its class in the train split (bias-conflicting).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.errors import InputDataError


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean ``positive`` (0.5 = chance).

    Raises:
        InputDataError: only one class present, or NaN scores.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if np.isnan(scores).any():
        raise InputDataError("scores hold NaN", file="auroc input", fix="score every sample")
    if positive.all() or not positive.any():
        raise InputDataError("AUROC needs both positives and negatives", file="auroc input")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(positive, scores))


def majority_per_label(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """Per label, the most common value of ``column`` in ``frame`` (ties: the lowest value):
    ``[label, column]``. The one rule for a class's majority group, true or pseudo, or attribute."""
    counts = frame.group_by(S.LABEL, column).len().sort(S.LABEL, "len", column, descending=[False, True, False])
    return counts.group_by(S.LABEL, maintain_order=True).first().select(S.LABEL, column)


def majority_groups(frame: pl.DataFrame) -> pl.DataFrame:
    """Per label, the group with the most train samples: ``[label, majority_group]``."""
    train = frame.filter(pl.col(S.SPLIT) == "train") if S.SPLIT in frame.columns else frame
    return majority_per_label(train, S.GROUP).rename({S.GROUP: "majority_group"})


def minority_flags(frame: pl.DataFrame) -> pl.DataFrame:
    """``[sample_id, minority]``: True when the sample's group is not its class's train majority.

    Raises:
        InputDataError: the frame has no ``group`` column.
    """
    if S.GROUP not in frame.columns:
        raise InputDataError("true groups are unknown", fix="use a dataset with group labels")
    maj = majority_groups(frame)
    return frame.join(maj, on=S.LABEL, how="left").select(
        S.SAMPLE_ID, (pl.col(S.GROUP) != pl.col("majority_group")).alias("minority")
    )


def group_accuracy(correct: pl.DataFrame) -> pl.DataFrame:
    """Accuracy per group from ``[group, correct]`` rows: ``[group, n, accuracy]``."""
    return (
        correct.group_by(S.GROUP)
        .agg(pl.len().alias("n"), pl.col("correct").cast(pl.Float64).mean().alias("accuracy"))
        .sort(S.GROUP)
    )


def worst_group_accuracy(correct: pl.DataFrame) -> float:
    """Minimum accuracy over non-empty groups (WILDS ``acc_wg``)."""
    return float(group_accuracy(correct)["accuracy"].min())  # type: ignore[arg-type]
