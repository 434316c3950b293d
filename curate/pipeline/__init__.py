"""Layer 6: each stage as a cached, device-aware function (one module per stage), the choices
made on validation (detector, selection grid) and ``run``, the whole pipeline."""

from curate.pipeline._common import version
from curate.pipeline._run_config import RUN_SECTIONS
from curate.pipeline._run_folder import run_lock
from curate.pipeline.data import (
    check_dataset,
    group_counts,
    list_benchmarks,
    list_formats,
    load_dataset,
    make_benchmark,
)
from curate.pipeline.detect import (
    AUTO_DETECTORS,
    DEFAULT_DETECTOR,
    detect,
    detection_auroc,
    load_discovery,
    save_discovery,
)
from curate.pipeline.dynamics import (
    eval_dynamics,
    record_dynamics,
    record_network_dynamics,
    score_dynamics,
    summarize_by_group,
    write_scores,
)
from curate.pipeline.embed import embed
from curate.pipeline.finetune import backbone_of, contrastive, finetune, masktune
from curate.pipeline.index import cluster, knn
from curate.pipeline.report import report
from curate.pipeline.run import run, run_table
from curate.pipeline.run_plan import BACKBONES, DEFAULT_ENCODERS, RUN_METHODS, RUN_STAGES, check_run, read_run_config
from curate.pipeline.select import CONFIGS, balance, export_manifest, group_balance, mix, prune, select
from curate.pipeline.signals import score, workspace_signals
from curate.pipeline.tuning import DETECTOR_CANDIDATES, RUN_GRIDS

__all__ = [
    "AUTO_DETECTORS",
    "BACKBONES",
    "CONFIGS",
    "DEFAULT_DETECTOR",
    "DEFAULT_ENCODERS",
    "DETECTOR_CANDIDATES",
    "RUN_GRIDS",
    "RUN_METHODS",
    "RUN_SECTIONS",
    "RUN_STAGES",
    "backbone_of",
    "balance",
    "check_dataset",
    "check_run",
    "cluster",
    "contrastive",
    "detect",
    "detection_auroc",
    "embed",
    "eval_dynamics",
    "export_manifest",
    "finetune",
    "group_balance",
    "group_counts",
    "knn",
    "list_benchmarks",
    "list_formats",
    "load_dataset",
    "load_discovery",
    "make_benchmark",
    "masktune",
    "mix",
    "prune",
    "read_run_config",
    "record_dynamics",
    "record_network_dynamics",
    "report",
    "run",
    "run_lock",
    "run_table",
    "save_discovery",
    "score",
    "score_dynamics",
    "select",
    "summarize_by_group",
    "version",
    "workspace_signals",
    "write_scores",
]
