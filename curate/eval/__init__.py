"""Layer 1: evaluation metrics (worst-group accuracy, per-group accuracy, detection AUROC) and reports."""

from curate.eval.evaluate import PREDICTION, EvalResult, evaluate_predictions
from curate.eval.metrics import (
    auroc,
    group_accuracy,
    majority_groups,
    majority_per_label,
    minority_flags,
    worst_group_accuracy,
)
from curate.eval.report import read_runs, write_report

__all__ = [
    "PREDICTION",
    "EvalResult",
    "auroc",
    "evaluate_predictions",
    "group_accuracy",
    "majority_groups",
    "majority_per_label",
    "minority_flags",
    "read_runs",
    "worst_group_accuracy",
    "write_report",
]
