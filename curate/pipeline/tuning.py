"""The choices the papers leave to validation worst-group accuracy, made by training a head on the
frozen embeddings for each candidate (fast on any device): which detector's pseudo-groups feed the
pseudo-group methods, and the selection's open parameters (prune's ``p`` and carriers, mix's
``α``/``s``, JTT's ``λ_up``). Validation groups are the true ones when the dataset has them, else
classes; the results say which."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import polars as pl

from curate._core.cache import cached_stage
from curate.data import SampleTable
from curate.detect import Discovery
from curate.dynamics import DynamicsLog, ProxyConfig
from curate.embed import EmbeddingTable
from curate.finetune import FinetuneConfig, TrainRequest, train
from curate.pipeline.detect import DETECT_VERSION, cached_detect
from curate.pipeline.select import select
from curate.select import SelectConfig

logger = logging.getLogger(__name__)

# Which discovery feeds the pseudo-group methods is left open by their papers: `curate run` picks,
# among these detectors, the one whose pseudo-group-balanced manifest trains the head with the best
# validation worst-group accuracy (when the dataset has val groups; else `auto`).
DETECTOR_CANDIDATES = {"image": ("ensemble", "knn", "jtt", "cluster"), "text": ("artifacts", "ensemble", "knn", "jtt")}
# prune's p (their scripts: 0.1-0.97) and which majority samples count as carriers (the confident
# half, or all of it); mix's alpha and s (DISPEL's s grid is 1, .9, .8, .7; two points of each here,
# to keep a run short); JTT's lambda_up (their values: 6, 20, 50, 100). A field set in [select] is
# not tuned.
RUN_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "prune": {"fraction": (0.5, 0.9, 0.97), "carrier_quantile": (0.5, 1.0)},
    "mix": {"alpha": (0.5, 1.0), "s": (1.0, 0.8)},
    "jtt": {"lambda_up": (6.0, 20.0, 50.0, 100.0)},
}


def _val_score(
    table: SampleTable, emb: EmbeddingTable, manifest: Any, head: FinetuneConfig, pseudo: Any, device: str
) -> tuple[float, float]:
    r = train("erm", TrainRequest(table, manifest, emb, pseudo, device), head)
    return r.val.acc_wg, r.val.acc_avg


def choose_detector(
    table: SampleTable,
    emb: EmbeddingTable,
    log: DynamicsLog,
    proxy: ProxyConfig,
    params: dict[str, Any],
    root: Path | None,
    head: FinetuneConfig,
    device: str = "cpu",
) -> tuple[Discovery, dict[str, Any]]:
    """The candidate discovery whose balanced manifest gives the best validation (WGA, mean accuracy)."""

    def compute(folder: Path) -> None:
        tried = {}
        for det in DETECTOR_CANDIDATES[table.modality]:
            d = cached_detect(table, emb, log, proxy, params | {"detector": det}, root, device)
            wg, avg = _val_score(table, emb, select("balance", table, d), head, None, device)
            tried[det] = {"val_acc_wg": wg, "val_acc_avg": avg}
            logger.info("detector %s: balanced head val acc_wg %.4f", det, wg)
        best = max(tried, key=lambda k: (tried[k]["val_acc_wg"], tried[k]["val_acc_avg"]))
        (folder / "choice.json").write_text(json.dumps({"chosen": best, "tried": tried}))

    parts = (
        table.fingerprint(),
        emb.meta,
        proxy.to_dict(),
        params,
        DETECTOR_CANDIDATES[table.modality],
        head.to_dict(),
    )
    folder = cached_stage("detector-choice", DETECT_VERSION, parts, compute, root=root)
    choice = json.loads((folder / "choice.json").read_text())
    return cached_detect(table, emb, log, proxy, params | {"detector": choice["chosen"]}, root, device), choice


def tune_selection(
    table: SampleTable,
    emb: EmbeddingTable,
    log: DynamicsLog,
    disc: Discovery,
    name: str,
    base: SelectConfig,
    grid: dict[str, tuple[float, ...]],
    head: FinetuneConfig,
    pseudo: pl.DataFrame,
    device: str = "cpu",
) -> tuple[SelectConfig, dict[str, Any]]:
    """The grid point whose manifest trains the head with the best validation (WGA, mean accuracy)."""
    keys = list(grid)
    tried = []
    best: tuple[tuple[float, float], SelectConfig] | None = None
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = type(base)(**(base.to_dict() | dict(zip(keys, values, strict=True))))
        score = _val_score(table, emb, select(name, table, disc, cfg, dynamics=log), head, pseudo, device)
        tried.append({**dict(zip(keys, values, strict=True)), "val_acc_wg": score[0], "val_acc_avg": score[1]})
        logger.info("tuning %s %s: val acc_wg %.4f", name, tried[-1], score[0])
        if best is None or score > best[0]:
            best = (score, cfg)
    if best is None:
        raise ValueError(f"tune_selection(): empty grid for {name!r}")
    chosen = {k: getattr(best[1], k) for k in keys}
    groups = "true" if table.has_groups else "classes (val has no groups)"
    return best[1], {
        "grid": {k: list(v) for k, v in grid.items()}, "tried": tried, "chosen": chosen, "groups": groups,
        "trained": "head on frozen embeddings",
    }  # fmt: skip
