"""The stable programmatic surface of curate; the CLI is a thin shell over these functions.

Every function takes plain values and returns polars frames, tables or paths; devices and backends
are resolved once, at this edge (``device="auto"|"cpu"|"cuda"``). The stages themselves live in
:mod:`curate.pipeline` (one module per stage); this module re-exports them with the config classes,
and lists what each registry holds.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path
from typing import Any

import polars as pl

from curate._core.registry import Registry
from curate.data import BENCHMARKS, DATASET_FORMATS, SampleTable
from curate.data.workspace import Workspace
from curate.detect import DETECTORS, Discovery, Signals
from curate.dynamics import SCORERS, DynamicsLog, ProxyConfig
from curate.embed import BACKBONES, ENCODERS, EmbeddingTable
from curate.eval.findings import DEFAULT_TOP, top_flagged
from curate.finetune import (
    FINETUNE_METHODS,
    ContrastiveConfig,
    DispelConfig,
    FinetuneConfig,
    FinetuneResult,
    MaskTuneConfig,
)
from curate.index import INDEX_BACKENDS, KMeansConfig, get_backend
from curate.manifest import MANIFEST_FORMATS, Manifest, Review, read_manifest, read_review, write_manifest
from curate.pipeline import (
    AUTO_DETECTORS,
    CONFIGS,
    DEFAULT_DETECTOR,
    DETECTOR_CANDIDATES,
    RUN_GRIDS,
    RUN_METHODS,
    RUN_STAGES,
    backbone_of,
    balance,
    check_dataset,
    check_run,
    cluster,
    contrastive,
    detect,
    detection_auroc,
    embed,
    eval_dynamics,
    export_manifest,
    finetune,
    group_balance,
    group_counts,
    knn,
    list_benchmarks,
    list_formats,
    load_dataset,
    load_discovery,
    make_benchmark,
    masktune,
    mix,
    prune,
    read_run_config,
    record_dynamics,
    record_network_dynamics,
    report,
    run,
    run_lock,
    run_table,
    save_discovery,
    score,
    score_dynamics,
    select,
    summarize_by_group,
    version,
    workspace_signals,
    write_scores,
)
from curate.pipeline.detect import artifact_tokens, current_detector, score_frame
from curate.pipeline.select import record_review, review, review_decisions
from curate.select import SELECTORS as SELECTORS_REGISTRY
from curate.select import BalanceConfig, JTTConfig, MixConfig, PruneConfig, SelectConfig

__all__ = [
    "AUTO_DETECTORS",
    "CONFIGS",
    "DEFAULT_DETECTOR",
    "DETECTOR_CANDIDATES",
    "FINETUNE_METHODS",
    "REVIEW_COLUMN",
    "RUN_GRIDS",
    "RUN_METHODS",
    "RUN_STAGES",
    "BalanceConfig",
    "ContrastiveConfig",
    "Discovery",
    "DispelConfig",
    "DynamicsLog",
    "EmbeddingTable",
    "FinetuneConfig",
    "FinetuneResult",
    "JTTConfig",
    "KMeansConfig",
    "Manifest",
    "MaskTuneConfig",
    "MixConfig",
    "ProxyConfig",
    "PruneConfig",
    "Review",
    "SampleTable",
    "SelectConfig",
    "Signals",
    "Workspace",
    "artifact_tokens",
    "backbone_of",
    "balance",
    "check_dataset",
    "check_run",
    "cluster",
    "contrastive",
    "current_detector",
    "detect",
    "detection_auroc",
    "embed",
    "env_info",
    "eval_dynamics",
    "export_manifest",
    "finetune",
    "group_balance",
    "group_counts",
    "inspect",
    "knn",
    "list_backbones",
    "list_benchmarks",
    "list_detectors",
    "list_encoders",
    "list_finetune_methods",
    "list_formats",
    "list_scorers",
    "list_selectors",
    "load_dataset",
    "load_discovery",
    "make_benchmark",
    "masktune",
    "mix",
    "prune",
    "read_manifest",
    "read_review",
    "read_run_config",
    "record_dynamics",
    "record_network_dynamics",
    "record_review",
    "registries",
    "report",
    "review",
    "review_decisions",
    "run",
    "run_lock",
    "run_table",
    "save_discovery",
    "score",
    "score_dynamics",
    "score_frame",
    "select",
    "summarize_by_group",
    "top_flagged",
    "version",
    "workspace_signals",
    "write_manifest",
    "write_scores",
]  # fmt: skip


def registries() -> dict[str, Registry[Any]]:
    """Every registry by its listing name (``curate list NAME``)."""
    get_backend("faiss-cpu")  # registers faiss-gpu as available or not
    return {
        "benchmarks": BENCHMARKS,
        "formats": DATASET_FORMATS,
        "encoders": ENCODERS,
        "backbones": BACKBONES,
        "scorers": SCORERS,
        "index-backends": INDEX_BACKENDS,
        "detectors": DETECTORS,
        "selectors": SELECTORS_REGISTRY,
        "finetune-methods": FINETUNE_METHODS,
        "manifest-formats": MANIFEST_FORMATS,
    }


def _meta_frame(reg: Registry[Any], keys: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame([{"name": n, **{k: str(reg.meta(n).get(k, "")) for k in keys}} for n in reg.names()])


def list_encoders() -> pl.DataFrame:
    """Registered encoders: ``name``, ``modality``, ``description``."""
    return _meta_frame(ENCODERS, ("modality", "description"))


def list_backbones() -> pl.DataFrame:
    """Registered trainable backbones: ``name``, ``modality``, ``description``."""
    return _meta_frame(BACKBONES, ("modality", "description"))


def list_scorers() -> pl.DataFrame:
    """Registered scorers: ``name``, ``needs`` and the meaning of a ``higher`` score."""
    return _meta_frame(SCORERS, ("needs", "higher"))


def list_detectors() -> pl.DataFrame:
    """Registered detectors: ``name``, ``needs``, ``description``."""
    return _meta_frame(DETECTORS, ("needs", "description"))


def list_selectors() -> pl.DataFrame:
    """Registered selection methods: ``name``, ``needs``, ``description``."""
    return _meta_frame(SELECTORS_REGISTRY, ("needs", "description"))


def list_finetune_methods() -> pl.DataFrame:
    """Registered fine-tune methods: ``name``, the group labels they train with, ``description``."""
    return _meta_frame(FINETUNE_METHODS, ("group_labels", "description"))


def env_info() -> dict[str, str]:
    """Versions of curate, Python and the key libraries, and the devices visible here."""
    from curate._core.device import cuda_available, faiss_gpu_count

    info = {"curate": version(), "python": platform.python_version(), "platform": platform.platform()}
    for pkg in (
        "torch", "torchvision", "faiss-cpu", "faiss-gpu-cu12", "polars", "numpy", "transformers", "scikit-learn",
        "typer", "rich",
    ):  # fmt: skip
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    info["cuda"] = "available" if cuda_available() else "not available"
    info["faiss_gpus"] = str(faiss_gpu_count())
    return info


REVIEW_COLUMN = "review"
"""Column of :func:`inspect`'s frame: the reviewer's decision (keep, drop; null when none)."""


def inspect(
    workspace: str | Path,
    *,
    top: int = DEFAULT_TOP,
    group: int | None = None,
    detector: str | None = None,
    manifest: str | Path | None = None,
) -> tuple[str, pl.DataFrame]:
    """The top-flagged train samples of a workspace's detection, with what a manifest and a
    reviewer decided about each.

    Args:
        workspace: the workspace folder.
        top: how many samples to list.
        group: only this pseudo-group's samples.
        detector: which recorded detection (default: the current one, the latest recorded by
            ``curate detect`` or ``curate run``).
        manifest: a manifest of this dataset: ``action`` says what it did to each sample, and
            ``review`` shows the decisions recorded in it (default: the workspace's latest review).

    Returns:
        The detection's name and ``[sample_id, label, class (when the dataset names its classes),
        pseudo_group, score, path | text, action, review]``, highest ``score`` first (higher = more
        likely bias-conflicting).

    Raises:
        InputDataError: not a workspace, or no such detection. ConfigError: a bad ``top`` or ``group``.
    """
    ws = Workspace(workspace)
    table = ws.table()
    name = current_detector(ws, detector)
    scores = load_discovery(ws, name).scores
    m = None if manifest is None else read_manifest(manifest, dataset_ids=table.ids)
    frame = top_flagged(scores, table, top=top, group=group, manifest=None if m is None else m.frame)
    decisions = review_decisions(ws, m).rename({"decision": REVIEW_COLUMN})
    frame = frame.join(decisions, on="sample_id", how="left", maintain_order="left")
    if m is not None:  # a row the reviewer dropped was not pruned by the method
        dropped = (pl.col("action") == "pruned") & (pl.col(REVIEW_COLUMN) == "drop")
        frame = frame.with_columns(
            pl.when(dropped).then(pl.lit("dropped (review)")).otherwise("action").alias("action")
        )
    if table.label_names is not None:  # the class's name next to its index
        names = {i: str(n) for i, n in enumerate(table.label_names)}
        frame = frame.insert_column(
            frame.columns.index("label") + 1,
            frame["label"].replace_strict(names, default=None, return_dtype=pl.String).alias("class"),
        )
    return name, frame
