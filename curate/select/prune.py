"""``prune`` — "Severing Spurious Correlations with Data Pruning" (ICLR 2025): drop the hardest
(highest early EL2N, eval-mode pass at 40% of training) fraction of each class's majority group, the
samples that carry its spurious feature; the paper's ablation orders (easiest, random) and its
unidentifiable setting (the hardest of every class)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.seed import rng as make_rng
from curate.data.table import SampleTable
from curate.detect import Discovery
from curate.dynamics import SCORERS, DynamicsLog
from curate.dynamics.log import epoch_at_fraction
from curate.errors import ConfigError, EmptySelectionError
from curate.eval import majority_per_label
from curate.manifest import Manifest
from curate.select._base import SELECTORS, build_manifest, need_discovery
from curate.select.methods import SelectConfig, _train

PRUNE_ORDERS = ("hardest", "easiest", "random")
PRUNE_EL2N_FRACTION = 0.4  # the data-pruning authors' EL2N epoch: index 9 of 25


@dataclass(frozen=True, kw_only=True)
class PruneConfig(SelectConfig):
    """Data pruning ("Severing Spurious Correlations with Data Pruning", ICLR 2025).

    Attributes:
        fraction: share ``p`` of each class's carriers to prune (their scripts: 0.1 to 0.97).
        setting: ``identifiable`` — the carriers of the spurious feature are **all** samples of each
            class's majority group (the class's largest pseudo-group, or its most common value of
            ``attribute``); ``unidentifiable`` — the hardest ``p`` of every class, equal counts.
        attribute: a dataset column naming the spurious attribute (identifiable, no discovery needed).
        order: which carriers go: ``hardest`` (highest EL2N: the method), or ``easiest`` / ``random``
            (the authors' ablation; not the method).
        epoch: EL2N epoch (default: the recording's eval-mode pass, else 40% into training).
    """

    fraction: float = 0.5
    setting: str = "identifiable"
    attribute: str | None = None
    order: str = "hardest"
    epoch: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction < 1:
            raise ConfigError.bad_param("prune()", "fraction", "a float in (0, 1)", self.fraction)
        if self.setting not in ("identifiable", "unidentifiable"):
            raise ConfigError.bad_param("prune()", "setting", "'identifiable' or 'unidentifiable'", self.setting)
        if self.order not in PRUNE_ORDERS:
            raise ConfigError.bad_param("prune()", "order", f"one of {PRUNE_ORDERS}", self.order)


def _ranked(rows: pl.DataFrame, order: str, rng: np.random.Generator) -> pl.DataFrame:
    """``rows`` (``sample_id``, ``score``) in pruning order: hardest first, easiest first, or shuffled."""
    if order == "random":
        return rows.sort(S.SAMPLE_ID)[rng.permutation(rows.height).tolist()]
    return rows.sort(S.SCORE, S.SAMPLE_ID, descending=[order == "hardest", False])


def prune_ids(table: SampleTable, el2n: pl.DataFrame, carriers: pl.DataFrame | None, cfg: PruneConfig) -> list[str]:
    """Ids to prune: per class, the first ``round(p · |carriers of the class|)`` carriers in
    ``cfg.order`` of EL2N (identifiable), or the first ``round(p · smallest class)`` of every class
    (unidentifiable)."""
    train = _train(table).select(S.SAMPLE_ID, S.LABEL).join(el2n, on=S.SAMPLE_ID, how="left")
    if train[S.SCORE].null_count():
        from curate.errors import IdMismatchError

        raise IdMismatchError.from_ids(
            "dataset train split", "EL2N scores", train.filter(pl.col(S.SCORE).is_null())[S.SAMPLE_ID].to_list()
        )
    rng = make_rng(cfg.seed, "prune", cfg.order)
    pruned: list[str] = []
    if cfg.setting == "unidentifiable":
        n = round(cfg.fraction * min(train.group_by(S.LABEL).len()["len"].to_list()))
        for y in sorted(train[S.LABEL].unique()):
            pruned += _ranked(train.filter(pl.col(S.LABEL) == y), cfg.order, rng).head(n)[S.SAMPLE_ID].to_list()
        return pruned
    if carriers is None:
        raise ConfigError("prune(): the identifiable setting needs the carriers of the spurious feature")
    pool = train.join(carriers, on=S.SAMPLE_ID, how="inner")
    for y in sorted(pool[S.LABEL].unique()):
        cls = _ranked(pool.filter(pl.col(S.LABEL) == y), cfg.order, rng)
        pruned += cls.head(round(cfg.fraction * cls.height))[S.SAMPLE_ID].to_list()
    return pruned


def carriers_of(table: SampleTable, discovery: Discovery | None, attribute: str | None) -> pl.DataFrame:
    """``[sample_id]`` of the train samples that carry their class's spurious feature: every sample of
    the class's majority group — its most common value of ``attribute``, or else its largest
    pseudo-group (the paper prunes the hardest of the whole majority group, with no pre-filter).

    Raises:
        ConfigError: ``attribute`` is not a column, or neither it nor a discovery is given.
    """
    if attribute is not None:
        if attribute not in table.frame.columns:
            raise ConfigError(
                f"prune(): attribute {attribute!r} is not a column of the dataset ({table.frame.columns})"
            )
        train = _train(table)
        return train.join(majority_per_label(train, attribute), on=[S.LABEL, attribute]).select(S.SAMPLE_ID)
    d = need_discovery(discovery, "prune (identifiable setting)")
    majority = majority_per_label(d.scores, S.PSEUDO_GROUP)
    return d.scores.join(majority, on=[S.LABEL, S.PSEUDO_GROUP]).select(S.SAMPLE_ID)


def el2n_for_pruning(dynamics: DynamicsLog, epoch: int | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """EL2N as the data-pruning authors take it: from the recording's eval-mode pass (its epoch, 40%
    of training by default), else from the in-training logits at 40% of training.

    Returns:
        ``[sample_id, score]`` and where it came from (``{"source", "epoch"}``).
    """
    log, source = (
        (dynamics.eval_pass, "eval-mode pass") if dynamics.eval_pass is not None else (dynamics, "in-training logits")
    )
    e = (
        epoch
        if epoch is not None
        else (log.epochs[0] if log is dynamics.eval_pass else epoch_at_fraction(log.n_epochs, PRUNE_EL2N_FRACTION))
    )  # in-training logits: the same epoch index as the eval pass's (9 of 25)
    return SCORERS.get("el2n")(log, epoch=e), {"source": source, "epoch": e}


@SELECTORS.register(
    "prune",
    needs=("dynamics", "discovery or attribute"),
    description="ICLR 2025 data pruning: the hardest p (early EL2N) of each class's majority group",
)
def prune(
    table: SampleTable,
    discovery: Discovery | None = None,
    cfg: PruneConfig | None = None,
    *,
    dynamics: DynamicsLog | None = None,
    version: str = "",
) -> Manifest:
    """Drop the hardest ``fraction`` of the spurious-feature carriers (by early EL2N), keep the rest at weight 1.

    Raises:
        ConfigError: no dynamics, or neither discovery nor ``attribute`` in the identifiable setting.
        EmptySelectionError: ``fraction`` of the carriers rounds to no sample in every class.
    """
    cfg = cfg or PruneConfig()
    if dynamics is None:
        raise ConfigError("prune() needs training dynamics (EL2N); run `curate dynamics` first")
    el2n, source = el2n_for_pruning(dynamics, cfg.epoch)
    carriers = carriers_of(table, discovery, cfg.attribute) if cfg.setting == "identifiable" else None
    drop = set(prune_ids(table, el2n, carriers, cfg))
    if not drop:
        raise EmptySelectionError(
            f"prune(): fraction {cfg.fraction} of the carriers is no sample in any class: the manifest would be "
            "every train row (plain ERM)",
            fix="raise the fraction",
        )
    rows = (
        _train(table)
        .select(S.SAMPLE_ID)
        .filter(~pl.col(S.SAMPLE_ID).is_in(list(drop)))
        .with_columns(pl.lit(1.0).alias(S.WEIGHT))
    )
    config = {**cfg.to_dict(), "el2n": source, "carriers": "attribute" if cfg.attribute else "majority pseudo-group"}
    if cfg.setting == "unidentifiable":
        config["carriers"] = "every sample of its class"
    return build_manifest(table, rows, method="prune", config=config, discovery=discovery, version=version)
