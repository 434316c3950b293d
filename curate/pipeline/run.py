"""``curate run``: load → embed → dynamics → detect → select → fine-tune → evaluate → report, every
stage cached, every setting checked before the first expensive step."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path, write_json_atomic
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.detect import CLUSTERING_DETECTORS
from curate.embed import create_encoder
from curate.eval import write_report
from curate.finetune import FinetuneConfig, TrainRequest, train
from curate.manifest import write_manifest
from curate.pipeline._run_config import check_run_config
from curate.pipeline._run_folder import building, check_out, run_lock
from curate.pipeline.data import load_dataset
from curate.pipeline.detect import (
    DEFAULT_DETECTOR,
    artifact_tokens,
    cached_detect,
    detection_auroc,
    save_discovery,
    score_frame,
)
from curate.pipeline.dynamics import (
    DYNAMICS_VERSION,
    NETWORK_DYNAMICS_VERSION,
    record_dynamics,
    record_network_dynamics,
)
from curate.pipeline.embed import embed
from curate.pipeline.finetune import backbone_of
from curate.pipeline.run_plan import (
    LABEL_FREE_TRAINING,
    MEAN_SELECTED,
    METRICS_FILE,
    PSEUDO_GROUP_SELECTIONS,
    RUN_DETECTORS,
    RUN_STAGES,
    TIMING_FILE,
    RunPlan,
    check_run,
    plan_method,
)
from curate.pipeline.select import select
from curate.pipeline.tuning import (
    DETECT_GRIDS,
    EPOCH_OF_SHARE,
    RUN_GRIDS,
    choose_detector,
    reference_groups,
    selection_groups,
    selection_label,
    tune_selection,
)

logger = logging.getLogger(__name__)

TRAINERS_READING_PSEUDO_GROUPS = ("dispel",)
"""Trainers that build their training set from the pseudo-groups themselves (DISPEL's group-balanced
set B) rather than from the manifest: each scores the candidate detectors itself."""


def discovery_feeds_training(selection: str, trainer: str) -> bool:
    """Whether the run's training set depends on the detector's discovery (its manifest is neither
    ``keep-all`` nor the true groups' ``oracle``, or its trainer reads the pseudo-groups itself)."""
    return selection not in ("keep-all", "oracle") or trainer in TRAINERS_READING_PSEUDO_GROUPS


def run(
    data: str | Path | SampleTable,
    *,
    method: str,
    out: str | Path,
    encoder: str | None = None,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    workspace: str | Path | None = None,
    device: str = "auto",
    backbone: str = "auto",
    select_on: str = "val-groups",
    on_stage: Any = None,
) -> dict[str, Any]:
    """The whole pipeline: embed → dynamics → detect → select → fine-tune → evaluate → report.

    Every setting, name and the dataset's fit to the method are checked before the first expensive
    step. Every stage is cached (embeddings, dynamics and discovery by content in ``workspace`` or
    ``$CURATE_CACHE_DIR``). The run folder is written as one piece: it is built beside ``out`` in
    ``.NAME.incomplete/NAME`` and replaces ``out`` only once complete, so a crash leaves the
    previous run whole, and a rerun resumes the unfinished training from its checkpoints. A second
    run into the same ``out`` while one is going fails at once. Writes ``out/metrics.json`` (test
    ``acc_avg``, ``acc_wg``, ``adj_acc_avg``, ``groups``, the backbone, plus full val/test
    results), ``out/timing.json`` (wall seconds, apart so that reruns are byte-equal),
    ``out/manifest.parquet`` (+ its provenance), ``out/scores.parquet``
    (``sample_id, label, conflict_score, pseudo_group, minority``, and ``group, true_minority``
    where true groups exist; see :func:`~curate.pipeline.detect.score_frame`), ``out/predictions.parquet`` and ``out/report.md``.

    Args:
        method: one of :data:`RUN_METHODS`; ``dfr``, ``groupdro`` and ``oracle`` use true group labels
            (the metrics say so).
        encoder: default ``efficientnet-lite0`` for images, ``minilm`` for text.
        workspace: where embeddings, dynamics and detections are cached; the run's detection is
            recorded there as the workspace's current one (``WS/detect/<detector>/``).
        config: per-stage settings (see :func:`read_run_config`).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; every stage runs there.
        backbone: ``network`` fine-tunes the encoder's network as a classifier, ``head`` trains a head
            on its frozen embeddings, ``auto`` = network on CUDA, head on the CPU.
        select_on: what model selection (the epoch, the detector, the grid) takes worst-group
            accuracy over on val: ``val-groups`` (true groups, as the papers), ``pseudo-groups``
            (inferred for val, no group labels) or ``classes`` (worst-class accuracy).
        on_stage: called as ``on_stage(index, name, detail)`` when a stage finishes (progress).

    Returns:
        The metrics written to ``out/metrics.json``.

    Raises:
        UnknownNameError: an unknown method or encoder. ConfigError: a bad setting (by section and
            key). InputDataError: the method needs group labels the dataset lacks, or another run
            holds ``out``. OutputExistsError: ``out`` holds files that are not a run.
    """
    started = time.perf_counter()
    options: dict[str, Any] = {
        "encoder": encoder,
        "device": device,
        "backbone": backbone,
        "select_on": select_on,
        "seed": seed,
    }
    out = Path(out)
    dev = check_run([method], config=config, **options, outs=[out])
    sections = check_run_config(config or {}, "run config")
    table = data if isinstance(data, SampleTable) else load_dataset(data)
    plan = plan_method(method, sections, dev=dev, backbone=backbone, seed=seed, encoder=encoder, table=table)
    create_encoder(plan.encoder).check_modality(table.modality)
    with run_lock(out):
        check_out(out)
        with building(out) as work:
            metrics, timing = _run(table, plan, sections, work, out, dev, workspace, select_on, on_stage)
            timing["wall_s"] = round(time.perf_counter() - started, 1)
            write_json_atomic(work / TIMING_FILE, timing)
    return metrics


def _run(
    table: SampleTable,
    plan: RunPlan,
    sections: dict[str, dict[str, Any]],
    work: Path,
    out: Path,
    dev: str,
    workspace: str | Path | None,
    select_on: str,
    on_stage: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stages of :func:`run`, writing into ``work`` (``out`` once swapped in); returns the
    metrics and the stages' wall seconds."""
    method, seed, trainer, train_groups = plan.method, plan.seed, plan.trainer, plan.train_groups
    encoder, proxy, sel_name, sel_cfg = plan.encoder, plan.proxy, plan.sel_name, plan.sel_cfg
    train_cfg, head_cfg = plan.train_cfg, plan.head_cfg
    if method in MEAN_SELECTED:  # plain ERM picks its epoch by mean val accuracy, whatever select_on says
        select_on = "mean"
    selection = selection_label(table, select_on)
    if (
        trainer == "dfr"
        or getattr(train_cfg, "method", None) == "dispel-val"
        or getattr(train_cfg, "source", "") == "val"
    ):
        selection += "; the last layer's grid on true val groups (a half split, as DFR/DISPEL)"
    elif getattr(train_cfg, "source", "") == "train":
        selection += "; the last layer's grid on true train groups (a half split)"
    timing: dict[str, Any] = {"stages_s": {}}
    last = [time.perf_counter()]

    def stage(name: str, detail: str) -> None:
        k = RUN_STAGES.index(name) + 1
        now = time.perf_counter()
        timing["stages_s"][name] = round(timing["stages_s"].get(name, 0.0) + now - last[0], 1)
        last[0] = now
        logger.info("[%d/%d] %s: %s", k, len(RUN_STAGES), name, detail)
        if on_stage is not None:
            on_stage(k, name, detail)

    stage("load", f"{table.name}: {len(table)} samples ({table.modality})")
    emb = embed(table, encoder, device=dev, workspace=workspace, **sections["embed"])
    stage("embed", f"{encoder}: {emb.dim}-d")
    # dynamics of the model the run trains: the fine-tuned network, or a proxy head on the embeddings.
    # A run whose training set ignores the discovery (keep-all or oracle, a trainer that reads no
    # pseudo-groups: erm, masktune, dfr, groupdro, oracle, contrastive) uses it only to report it: the proxy head's dynamics serve, rather
    # than a second fine-tuning of the network as long as the one the run trains.
    fine_tuned = isinstance(train_cfg, FinetuneConfig) and train_cfg.is_network
    network = train_cfg if fine_tuned and discovery_feeds_training(sel_name, trainer) else None
    if network is not None:
        net_cfg = replace(network, method="erm")
        log = record_network_dynamics(table, config=net_cfg, device=dev, workspace=workspace)
        # the recording's version too: cached discoveries of an older recording are not reused
        dyn_key: Any = {"proxy": "network", "version": NETWORK_DYNAMICS_VERSION, **net_cfg.to_dict()}
        stage(
            "dynamics",
            f"ERM fine-tuning of {network.backbone} (early-training scores read at {net_cfg.eval_fraction:.0%} of it)",
        )
    else:
        log = record_dynamics(table, emb, config=proxy, device=dev, workspace=workspace)
        dyn_key = {"version": DYNAMICS_VERSION, **proxy.to_dict()}
        stage(
            "dynamics",
            f"{proxy.epochs} epochs of a {proxy.head} proxy head (early-training scores read at {proxy.eval_fraction:.0%})",
        )
    root = None if workspace is None else Workspace(workspace).path
    detect_params = {"detector": RUN_DETECTORS.get(method, DEFAULT_DETECTOR)} | sections["detect"]
    chosen_by: dict[str, Any] | None = None
    # without group labels, every choice is scored on one val partition, fixed before any candidate
    reference = (
        reference_groups(table, emb, log, proxy, sections["detect"], root, dev, dyn_key)
        if select_on == "pseudo-groups"
        else None
    )
    reads_pseudo = trainer in TRAINERS_READING_PSEUDO_GROUPS and getattr(train_cfg, "source", None) == "pseudo"
    # prune's carriers named by a column ([select] attribute): no discovery feeds the training set, so none
    # is chosen or tuned; the default one is only reported
    named = getattr(sel_cfg, "attribute", None) is not None
    if (sel_name in PSEUDO_GROUP_SELECTIONS or reads_pseudo) and "detector" not in sections["detect"] and not named:
        scorer = (trainer, train_cfg) if reads_pseudo else None
        disc, chosen_by = choose_detector(
            table, emb, log, proxy, sections["detect"], root, head_cfg, dev, dyn_key, select_on, reference, scorer
        )
    else:
        disc = cached_detect(table, emb, log, proxy, detect_params, root, dev, dyn_key)
    stage("detect", f"{disc.detector}: {disc.scores[S.PSEUDO_GROUP].n_unique()} pseudo-groups")
    tuning: dict[str, Any] | None = None
    grid = {k: v for k, v in RUN_GRIDS.get(sel_name, {}).items() if k not in sections["select"]}
    if disc.detector in CLUSTERING_DETECTORS:  # clusters have no score to cut at another share
        grid.pop("minority_share", None)
    det_grid = {
        k: v for k, v in DETECT_GRIDS.get(disc.detector, {}).items() if k not in sections["detect"] and not named
    }
    if (grid or det_grid) and trainer == "erm":

        def discover(extra: dict[str, Any]) -> Any:
            params = {"detector": disc.detector} | sections["detect"] | extra  # the chosen detector, re-run
            return disc if not extra else cached_detect(table, emb, log, proxy, params, root, dev, dyn_key)

        disc, sel_cfg, tuning = tune_selection(
            table, emb, log, discover, sel_name, sel_cfg, grid, head_cfg, dev, det_grid, select_on, reference,
            EPOCH_OF_SHARE.get(disc.detector),
        )  # fmt: skip
    pseudo = selection_groups(disc, select_on, reference)
    manifest = select(sel_name, table, disc, sel_cfg, dynamics=log)
    write_manifest(manifest, work / "manifest.parquet")
    with atomic_path(work / "scores.parquet") as tmp:
        score_frame(disc, table).write_parquet(tmp)
    if workspace is not None:  # the run's detection becomes the workspace's current one
        save_discovery(workspace, disc, by="curate run", run=str(out), method=method)
    stage("select", f"{sel_name}: {manifest.frame.height} rows")
    request = TrainRequest(table, manifest, emb, pseudo, dev, work / "train", select_on=select_on)
    result = train(trainer, request, train_cfg)
    val, test = result.val, result.test
    stage(
        "finetune", f"{trainer} ({backbone_of(train_cfg)}): test acc_wg {test.acc_wg:.4f}, acc_avg {test.acc_avg:.4f}"
    )
    metrics = {
        "method": method,
        "dataset": table.name,
        "encoder": encoder,
        "backbone": backbone_of(train_cfg),
        "device": dev,
        "seed": seed,
        "train_groups": train_groups,
        "model_selection": selection,
        "label_free": train_groups in LABEL_FREE_TRAINING and not selection.startswith("true"),
        "acc_avg": test.acc_avg,
        "acc_wg": test.acc_wg,
        "adj_acc_avg": test.adj_acc_avg,
        "groups": test.groups,
        "group_names": test.group_names,
        "detector": disc.detector,
        "detection_auroc": detection_auroc(table, disc) if table.has_groups else None,
        "best_epoch": result.best_epoch,
        "config": result.config,
        "tuning": tuning,
        "detector_choice": chosen_by,
        "manifest": manifest.provenance,
        "val": val.to_dict(),
        "test": test.to_dict(),
        **result.extra,
    }
    with atomic_path(work / "predictions.parquet") as tmp:
        result.predictions.write_parquet(tmp)
    write_json_atomic(work / METRICS_FILE, metrics)
    matrix = emb.select(disc.scores[S.SAMPLE_ID], what="discovery").matrix
    write_report(
        [work],
        work,
        table=table,
        scores=disc.scores,
        embeddings=matrix,
        embedding_ids=disc.scores[S.SAMPLE_ID].to_list(),
        detector=disc.detector,
        artifacts=artifact_tokens(table, disc),
    )
    stage("report", str(out / "report.md"))
    return metrics, timing


def run_table(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """The summary table of several runs' metrics (``curate run -m A -m B``)."""
    return pl.DataFrame(
        [
            {
                "method": m["method"],
                "acc_wg": m["acc_wg"],
                "acc_avg": m["acc_avg"],
                "adj_acc_avg": m["adj_acc_avg"],
                "backbone": m["backbone"],
                "train groups": m["train_groups"],
                "model selection": m["model_selection"],
            }
            for m in rows
        ]
    )
