"""Shared by every fine-tuning method: the one training loop with model selection on validation
worst-group accuracy, per-sample dynamics, and checkpoints that a rerun resumes from.

A run folder holds ``checkpoints/`` (the loop's last two epochs and ``best.pt``: the selected state
and its validation score) and ``dynamics/run=0/epoch=NNNN.parquet`` (the [2/6] recorder's shards
for the manifest's rows).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path, write_text_atomic
from curate.data.table import SampleTable
from curate.dynamics import DynamicsRecorder
from curate.errors import InputDataError
from curate.eval import PREDICTION, EvalResult, evaluate_predictions
from curate.finetune._base import FinetuneResult, TrainRequest
from curate.finetune.config import FinetuneConfig
from curate.finetune.dfr import dfr_predict
from curate.finetune.groupdro import GroupDRO
from curate.manifest import Manifest
from curate.train import ERM, TrainConfig, fit

BEST = "best.pt"
CHECKPOINTS = "checkpoints"
DYNAMICS = "dynamics"
RUN_KEY = "run.key"

logger = logging.getLogger(__name__)

_WARNED_MISSING: set[tuple[str, tuple[int, ...]]] = set()  # (dataset, groups): warned once per process


def missing_val_groups(table: SampleTable) -> list[int]:
    """Groups with train or test samples but none in val (ignored by val worst-group accuracy)."""
    if not table.has_groups:
        return []
    f = table.frame
    val = set(f.filter(pl.col(S.SPLIT) == "val")[S.GROUP].unique().to_list())
    other = set(f.filter(pl.col(S.SPLIT) != "val")[S.GROUP].unique().to_list())
    return sorted(other - val)


def warn_missing_val_groups(table: SampleTable) -> None:
    """Log once (per dataset and process, not per epoch or per grid point) that val lacks some
    groups, so that worst-group model selection on val groups cannot see them."""
    missing = missing_val_groups(table)
    key = (table.where, tuple(missing))
    if not missing or key in _WARNED_MISSING:
        return
    _WARNED_MISSING.add(key)
    names = ", ".join(f"{g} ({table.group_name(g)})" for g in missing)
    logger.warning(
        "%s: the val split has no samples of group(s) %s; worst-group accuracy on val (and model selection "
        "on val groups) ignores them: add val samples of every group, or select on classes "
        "(`curate run --select-on classes`)",
        table.where,
        names,
    )


def eval_ids(table: SampleTable) -> tuple[list[str], list[str]]:
    """The val and test sample ids every method selects and evaluates on (warns once when val lacks
    a group; see :func:`warn_missing_val_groups`).

    Raises:
        InputDataError: either split is empty.
    """
    val = table.split("val").frame[S.SAMPLE_ID].to_list()
    test = table.split("test").frame[S.SAMPLE_ID].to_list()
    if not val or not test:
        raise InputDataError("fine-tuning needs non-empty val and test splits", file=table.where)
    warn_missing_val_groups(table)
    return val, test


def prediction_frame(ids: list[str], pred: np.ndarray) -> pl.DataFrame:
    """``[sample_id, prediction]`` for :func:`curate.eval.evaluate_predictions`."""
    return pl.DataFrame({S.SAMPLE_ID: ids, PREDICTION: pred.astype(np.int64)})


def claim_run(folder: Path, key: str) -> None:
    """Make ``folder`` hold the run identified by ``key``: a run folder left by another run
    (other manifest or settings) loses its checkpoints and dynamics, so a rerun never mixes two runs."""
    stamp = folder / RUN_KEY
    if stamp.exists() and stamp.read_text() == key:
        return
    for sub in (CHECKPOINTS, DYNAMICS, "align"):
        if (folder / sub).exists():
            logger.warning("%s held another run (other manifest or settings): starting it over", folder)
            shutil.rmtree(folder / sub)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stamp, key)


class SelectBest:
    """Training hook: after each epoch, score validation and keep the state with the best
    (worst-group accuracy, mean accuracy) — with ``by_mean``, (mean accuracy, worst-group accuracy):
    plain ERM's selection; with ``folder``, the best state survives a restart."""

    def __init__(
        self, model: Any, score: Callable[[], EvalResult], folder: Path | None = None, *, by_mean: bool = False
    ) -> None:
        self.model = model
        self.score = score
        self.folder = folder
        self.by_mean = by_mean
        self.best: tuple[float, float] | None = None
        self.epoch = -1
        self.state: dict[str, Any] = {}
        if folder is not None and (folder / BEST).exists():
            import torch

            saved = torch.load(folder / BEST, map_location="cpu", weights_only=True)
            self.best, self.epoch, self.state = tuple(saved["best"]), int(saved["epoch"]), saved["state"]

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        import copy

        r = self.score()
        self.model.train()
        key = (r.acc_avg, r.acc_wg) if self.by_mean else (r.acc_wg, r.acc_avg)
        if self.best is None or key > self.best:
            self.best, self.epoch = key, epoch
            self.state = copy.deepcopy(self.model.state_dict())
            if self.folder is not None:
                import torch

                self.folder.mkdir(parents=True, exist_ok=True)
                with atomic_path(self.folder / BEST) as tmp:
                    torch.save({"best": list(self.best), "epoch": epoch, "state": self.state}, tmp)


def fit_selected(
    method: Any,
    batches: Any,
    cfg: TrainConfig,
    score: Callable[[], EvalResult],
    *,
    out: str | Path | None = None,
    record: tuple[list[str], Any, int] | None = None,
    desc: str = "fine-tune",
    device: str = "cpu",
    dynamics: tuple[Path | None, int] = (None, 0),
    hooks: tuple[Any, ...] = (),
    channels_last: bool = False,
    select_on: str = "val-groups",
) -> int:
    """Train with :func:`curate.train.fit`, load the best validation state into ``method.model``.

    Args:
        score: evaluates the current model on validation.
        out: run folder for checkpoints and dynamics (None: in memory only, nothing resumable).
        record: ``(ids, labels, n_classes)`` of the training rows, to record per-sample dynamics in ``out``.
        dynamics: ``(folder, run)`` the recorder writes to (folder None: ``out/dynamics``, run 0).
        device: the resolved device the loop trains on.
        hooks: more hooks, run after model selection and the recorder.
        channels_last: train in channels-last layout.
        select_on: the request's ``select_on``; ``mean`` ranks epochs by mean accuracy first.

    Returns:
        The selected epoch.
    """
    folder = None if out is None else Path(out)
    select = SelectBest(
        method.model, score, None if folder is None else folder / CHECKPOINTS, by_mean=select_on == "mean"
    )
    all_hooks: list[Any] = [select]
    dyn_folder = dynamics[0] or (None if folder is None else folder / DYNAMICS)
    if dyn_folder is not None and record is not None:
        ids, labels, n_classes = record
        all_hooks.append(DynamicsRecorder(dyn_folder, ids, labels, n_classes, run=dynamics[1], device=device))
    all_hooks.extend(hooks)
    fit(
        method,
        batches,
        cfg,
        hooks=all_hooks,
        checkpoint_dir=None if folder is None else folder / CHECKPOINTS,
        desc=desc,
        device=device,
        channels_last=channels_last,
    )
    if not select.state:  # the run was complete but its best.pt is gone: keep the final state
        select.on_epoch_end(cfg.epochs - 1)
    method.model.load_state_dict(select.state)
    method.model.eval()
    return select.epoch


def unique_rows(frame: pl.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The manifest's unique sample ids (first occurrence order), their labels, and each row's
    position among them: an upsampled sample is recorded once in the dynamics."""
    ids = frame[S.SAMPLE_ID].to_list()
    first: dict[str, int] = {}
    for sid in ids:
        first.setdefault(sid, len(first))
    labels = frame[S.LABEL].to_numpy()
    uniq = list(first)
    pos = {sid: k for k, sid in enumerate(ids)}  # any row of each sample: same label
    return uniq, np.array([labels[pos[s]] for s in uniq]), np.array([first[s] for s in ids], dtype=np.int64)


def make_method(model: Any, cfg: FinetuneConfig, manifest: Manifest) -> tuple[Any, np.ndarray | None]:
    """ERM (also for DFR's first stage) or GroupDRO over the manifest's true or pseudo groups.

    Returns:
        The method and, for GroupDRO, each manifest row's group (None otherwise).

    Raises:
        InputDataError: GroupDRO without the group column it needs.
    """
    if cfg.method != "groupdro":
        return ERM(model), None
    f = manifest.frame
    key = S.GROUP if cfg.groups == "true" else S.PSEUDO_GROUP
    if f[key].null_count():
        raise InputDataError(
            f"GroupDRO needs the manifest's {key!r} column filled",
            file=manifest.method,
            fix="use groups='pseudo' with a discovery, or a dataset with group labels",
        )
    groups = f[key].to_numpy().astype(np.int64)
    return GroupDRO(model, int(groups.max()) + 1, cfg.dro_eta), groups


def classifier_result(
    request: TrainRequest,
    cfg: FinetuneConfig,
    settings: dict[str, Any],
    outputs: dict[str, tuple[np.ndarray, np.ndarray]],
    best_epoch: int,
    extra: dict[str, Any] | None = None,
) -> FinetuneResult:
    """Evaluate the selected model's ``outputs`` (``{"val"|"test": (logits, features)}`` in
    :func:`eval_ids` order); DFR and DISPEL^val refit the last layer on the val features first."""
    table = request.table
    val_ids, test_ids = eval_ids(table)
    (lv, hv), (lt, ht) = outputs["val"], outputs["test"]
    extra = dict(extra or {})
    if cfg.method == "dfr":
        pred_v, pred_t, extra["dfr"] = dfr_predict(hv, ht, table, val_ids, cfg.seed)
    elif cfg.method == "dispel-val":
        from curate.finetune.dispel import dispel_val_predict  # dispel imports this module

        pred_v, pred_t, extra["dispel"] = dispel_val_predict(hv, ht, table, val_ids, cfg.seed)
    else:
        pred_v, pred_t = lv.argmax(1), lt.argmax(1)
    pv, pt = prediction_frame(val_ids, pred_v), prediction_frame(test_ids, pred_t)
    val = evaluate_predictions(table, pv, split="val", pseudo_groups=request.pseudo_groups)
    test = evaluate_predictions(table, pt, split="test", pseudo_groups=request.pseudo_groups)
    extra["selection"] = selection_score(request, pv)
    return FinetuneResult(val, test, best_epoch, pl.concat([pv, pt]), settings, extra)


def selection_score(request: TrainRequest, val_predictions: pl.DataFrame) -> dict[str, Any]:
    """The selected model's validation score over the groups model selection used (``select_on``)."""
    r = request.score_val(val_predictions)
    return {"acc_wg": r.acc_wg, "acc_avg": r.acc_avg, "groups": r.group_source, "select_on": request.select_on}
