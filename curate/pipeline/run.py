"""``curate run``: load → embed → dynamics → detect → select → fine-tune → evaluate → report, every
stage cached, every setting checked before the first expensive step."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.device import resolve_device
from curate._core.io import atomic_path, write_json_atomic
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.dynamics import ProxyConfig
from curate.embed import DEFAULT_ENCODERS, create_encoder
from curate.errors import ConfigError, InputDataError, UnknownNameError, did_you_mean
from curate.eval import write_report
from curate.finetune import ContrastiveConfig, DispelConfig, FinetuneConfig, MaskTuneConfig, TrainRequest, train
from curate.finetune.network import check_network
from curate.manifest import write_manifest
from curate.pipeline._run_config import build, check_run_config, own_fields
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
from curate.pipeline.dynamics import record_dynamics, record_network_dynamics
from curate.pipeline.embed import embed
from curate.pipeline.finetune import backbone_of
from curate.pipeline.select import CONFIGS, select
from curate.pipeline.tuning import (
    DETECT_GRIDS,
    RUN_GRIDS,
    SELECTION_LABELS,
    choose_detector,
    selection_groups,
    selection_label,
    tune_selection,
)
from curate.select import SELECTORS

logger = logging.getLogger(__name__)

NO_GROUPS = "none"
PSEUDO = "pseudo (inferred by the detector)"
TRUE_TRAIN = "true train groups"
TRUE_VAL = "true val groups (DFR's last-layer set)"
TRUE_ATTR = "pseudo (balanced manifest) + true train attributes (the spurious-class term)"
RUN_METHODS: dict[str, tuple[str, str, str]] = {
    # method: (selection, trainer, the groups it trains with)
    "erm": ("keep-all", "erm", NO_GROUPS),
    "prune": ("prune", "erm", PSEUDO),
    "mix": ("mix", "dispel", PSEUDO),  # a network backbone trains ERM on the mixing manifest instead
    "mix-val": ("keep-all", "dispel", "true val groups (DISPEL's group-labelled set)"),
    "balance": ("balance", "erm", PSEUDO),
    "jtt": ("jtt", "erm", PSEUDO),
    "spare": ("spare", "erm", PSEUDO),
    "dfr": ("keep-all", "dfr", TRUE_VAL),
    "groupdro": ("keep-all", "groupdro", TRUE_TRAIN),
    "masktune": ("keep-all", "masktune", NO_GROUPS),
    "contrastive": ("balance", "contrastive", TRUE_ATTR),
    "oracle": ("oracle", "erm", TRUE_TRAIN),
}
LABEL_FREE_TRAINING = (NO_GROUPS, PSEUDO)
RUN_DETECTORS = {"jtt": "jtt", "spare": "spare"}  # methods defined on their own discovery; the rest: auto
PSEUDO_GROUP_SELECTIONS = ("balance", "prune", "mix")
RUN_STAGES = ("load", "embed", "dynamics", "detect", "select", "finetune", "report")
BACKBONES = ("auto", "network", "head")
METRICS_FILE = "metrics.json"
TIMING_FILE = "timing.json"  # wall times, apart from metrics.json so that reruns are byte-equal


def read_run_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """A ``curate run --config`` TOML file: tables ``[embed]``, ``[dynamics]``, ``[detect]``,
    ``[select]``, ``[finetune]`` whose keys are the fields of that stage's config.

    Raises:
        InputDataError: the file cannot be read. ConfigError: it is not TOML (names the file and line).
        ConfigError: an unknown section or key (with the closest valid name), or a bad value, named by
            section and key: ``[select] fraction: expected a float in (0, 1), got "half"``.
    """
    import tomllib

    file = Path(path)
    try:
        text = file.read_text()
    except OSError as e:
        raise InputDataError(f"cannot read the run config ({e.strerror or e})", file=file, fix="check the path") from e
    try:
        cfg = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:  # a configuration error: exit 2
        raise ConfigError(f"{file}: not valid TOML ({e}); fix the file (see README, `curate run`)") from e
    return check_run_config(cfg, str(file))


def check_sections(cfg: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Every section of a run config, empty where absent, each key and value checked
    (see :func:`curate.pipeline._run_config.check_run_config`)."""
    return check_run_config(cfg, where)


def _make(cls: Any, section: str, fields: dict[str, Any], **defaults: Any) -> Any:
    return build(cls, section, fields, "run config", **defaults)


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`RUN_METHODS`.

    Raises:
        UnknownNameError: not a run method (with the closest one and the list).
    """
    if method not in RUN_METHODS:
        raise UnknownNameError(
            f"unknown method {method!r}{did_you_mean(method, RUN_METHODS)} (valid: {', '.join(RUN_METHODS)})"
        )
    return method


def resolve_backbone(backbone: str, device: str) -> str:
    """``auto`` → ``network`` on CUDA, ``head`` on the CPU (a fine-tuned network is hours per run there).

    Raises:
        ConfigError: not one of ``auto``, ``network``, ``head``.
    """
    if backbone not in BACKBONES:
        raise ConfigError.bad_param("run()", "backbone", f"one of {', '.join(BACKBONES)}", backbone)
    if backbone == "auto":
        return "network" if device.startswith("cuda") else "head"
    return backbone


def trainer_config(trainer: str, fields: dict[str, Any], *, seed: int, encoder: str, backbone: str) -> Any:
    """The config of ``trainer`` from the ``[finetune]`` fields; ``network`` fine-tunes ``encoder``.

    MaskTune always fine-tunes the network (it masks the network's saliency); the contrastive
    method trains projections over the frozen towers. A ``[finetune]`` field of another trainer's
    config (``epochs`` for DISPEL, say, in a run of several methods) is left to that trainer; a name
    no trainer knows is an error.
    """
    configs = {"masktune": MaskTuneConfig, "contrastive": ContrastiveConfig, "dispel": DispelConfig}
    fields = own_fields(configs.get(trainer, FinetuneConfig), "finetune", fields)
    if trainer == "masktune":
        return _make(MaskTuneConfig, "finetune", fields, seed=seed, backbone=encoder)
    if trainer == "contrastive":
        return _make(ContrastiveConfig, "finetune", fields, seed=seed)
    if trainer == "dispel":
        return _make(DispelConfig, "finetune", fields, seed=seed)
    # GroupDRO runs only on datasets with true groups (checked by run): FinetuneConfig's default groups="true"
    net = {"backbone": encoder} if backbone == "network" else {}
    return _make(FinetuneConfig, "finetune", fields, method=trainer, seed=seed, **net)


@dataclass(frozen=True)
class _Plan:
    """What one method's run will do, every config built (and so checked)."""

    method: str
    seed: int
    selection: str
    trainer: str
    train_groups: str
    kind: str
    encoder: str
    proxy: ProxyConfig
    sel_name: str
    sel_cfg: Any
    train_cfg: Any
    head_cfg: FinetuneConfig


def _plan(
    method: str,
    sections: dict[str, dict[str, Any]],
    *,
    dev: str,
    backbone: str,
    seed: int,
    encoder: str | None,
    table: SampleTable | None,
) -> _Plan:
    """Build every config of ``method``'s run; with ``table``, also check the dataset fits it."""
    check_method(method)
    selection, trainer, train_groups = RUN_METHODS[method]
    kind = resolve_backbone(backbone, dev)
    if trainer == "dispel" and kind == "network":
        trainer = "erm"  # the network mixes the manifest's pairs at the input level
    if table is not None and train_groups not in LABEL_FREE_TRAINING and not table.has_groups:
        raise InputDataError(
            f"method {method!r} needs true group labels, and this dataset has none",
            file=table.where,
            fix="pick a label-free method: "
            + ", ".join(m for m, v in RUN_METHODS.items() if v[2] in LABEL_FREE_TRAINING),
        )
    modality = "image" if table is None else table.modality  # before loading: any network will do
    enc = encoder or DEFAULT_ENCODERS[modality]
    proxy = _make(ProxyConfig, "dynamics", sections["dynamics"], seed=seed)
    sel_name = SELECTORS.entry(selection).name
    sel_cls = CONFIGS[sel_name]
    sel_cfg = _make(sel_cls, "select", own_fields(sel_cls, "select", sections["select"]), seed=seed)
    fields = sections["finetune"] | ({"source": "val"} if method == "mix-val" else {})
    train_cfg = trainer_config(trainer, fields, seed=seed, encoder=enc, backbone=kind)
    if table is not None and isinstance(train_cfg, FinetuneConfig) and train_cfg.is_network:
        check_network(train_cfg, table, dev)
    head_cfg = replace(train_cfg, method="erm", backbone="head") if type(train_cfg) is FinetuneConfig else None
    return _Plan(
        method, seed, selection, trainer, train_groups, kind, enc, proxy, sel_name, sel_cfg, train_cfg,
        head_cfg or FinetuneConfig(seed=seed),
    )  # fmt: skip


def check_run(
    methods: Sequence[str],
    *,
    config: Mapping[str, Any] | None = None,
    encoder: str | None = None,
    device: str = "auto",
    backbone: str = "auto",
    select_on: str = "val-groups",
    seed: int = 0,
    table: SampleTable | None = None,
    outs: Sequence[str | Path] = (),
) -> str:
    """Check every input of :func:`run` for ``methods`` before any work: each method name, the
    config's sections, keys and values, ``select_on``, ``backbone``, ``device``, the encoder's
    name and each run folder in ``outs``; with ``table``, also that the dataset fits each method
    (group labels, the encoder's modality, a network's needs). Cheap: nothing is loaded, embedded
    or written.

    Returns:
        The resolved device.

    Raises:
        UnknownNameError: an unknown method or encoder (with the closest name). ConfigError: a bad
            setting or option. DeviceUnavailableError: the device is absent. InputDataError: the
            dataset does not fit a method. OutputExistsError: a folder of ``outs`` holds files that
            are not a run.
    """
    twice = sorted({m for m in methods if list(methods).count(m) > 1})
    if twice:
        raise ConfigError(f"run: method {twice[0]!r} given more than once; give each method once")
    for m in methods:
        check_method(m)
    sections = check_run_config(config or {}, "run config")
    if select_on not in SELECTION_LABELS:
        raise ConfigError.bad_param("run()", "select_on", f"one of {', '.join(SELECTION_LABELS)}", select_on)
    if backbone not in BACKBONES:
        raise ConfigError.bad_param("run()", "backbone", f"one of {', '.join(BACKBONES)}", backbone)
    if encoder is not None:
        enc = create_encoder(encoder)
        if table is not None:
            enc.check_modality(table.modality)
    for folder in outs:
        check_out(Path(folder))
    dev = resolve_device(device)
    for m in methods:
        _plan(m, sections, dev=dev, backbone=backbone, seed=seed, encoder=encoder, table=table)
    return dev


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
    plan = _plan(method, sections, dev=dev, backbone=backbone, seed=seed, encoder=encoder, table=table)
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
    plan: _Plan,
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
    # dynamics of the model the run trains: the fine-tuned network, or a proxy head on the embeddings
    network = train_cfg if isinstance(train_cfg, FinetuneConfig) and train_cfg.is_network else None
    if network is not None:
        net_cfg = replace(network, method="erm")
        log = record_network_dynamics(table, config=net_cfg, device=dev, workspace=workspace)
        dyn_key: Any = {"proxy": "network", **net_cfg.to_dict()}
        stage(
            "dynamics",
            f"ERM fine-tuning of {network.backbone} (early-training scores read at {net_cfg.eval_fraction:.0%} of it)",
        )
    else:
        log = record_dynamics(table, emb, config=proxy, device=dev, workspace=workspace)
        dyn_key = proxy.to_dict()
        stage(
            "dynamics",
            f"{proxy.epochs} epochs of a {proxy.head} proxy head (early-training scores read at {proxy.eval_fraction:.0%})",
        )
    root = None if workspace is None else Workspace(workspace).path
    detect_params = {"detector": RUN_DETECTORS.get(method, DEFAULT_DETECTOR)} | sections["detect"]
    chosen_by: dict[str, Any] | None = None
    if sel_name in PSEUDO_GROUP_SELECTIONS and "detector" not in sections["detect"]:
        disc, chosen_by = choose_detector(
            table, emb, log, proxy, sections["detect"], root, head_cfg, dev, dyn_key, select_on
        )
    else:
        disc = cached_detect(table, emb, log, proxy, detect_params, root, dev, dyn_key)
    stage("detect", f"{disc.detector}: {disc.scores[S.PSEUDO_GROUP].n_unique()} pseudo-groups")
    tuning: dict[str, Any] | None = None
    grid = {k: v for k, v in RUN_GRIDS.get(sel_name, {}).items() if k not in sections["select"]}
    det_grid = {k: v for k, v in DETECT_GRIDS.get(disc.detector, {}).items() if k not in sections["detect"]}
    if (grid or det_grid) and trainer == "erm":

        def discover(extra: dict[str, Any]) -> Any:
            params = {"detector": disc.detector} | sections["detect"] | extra  # the chosen detector, re-run
            return disc if not extra else cached_detect(table, emb, log, proxy, params, root, dev, dyn_key)

        disc, sel_cfg, tuning = tune_selection(
            table, emb, log, discover, sel_name, sel_cfg, grid, head_cfg, dev, det_grid, select_on
        )
    pseudo = selection_groups(table, emb, disc, select_on)
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
        "model_selection": selection_label(table, select_on),
        "label_free": train_groups in LABEL_FREE_TRAINING and not selection_label(table, select_on).startswith("true"),
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
