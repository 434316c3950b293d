"""The selection methods: each a registered pure function ``(table, discovery, config) -> Manifest``.

* ``keep-all`` — ERM: every train sample once.
* ``oracle`` — balance by the TRUE groups (for evaluation only: it needs group labels).
* ``balance`` — balance the discovery's pseudo-groups (reweight ``N / n_group``, subsample, upsample).
* ``jtt`` — Just Train Twice (Liu et al., ICML 2021): upweight the error set by ``λ_up``.
* ``spare`` — SPARE (Yang et al., ICML 2023): sample each cluster ∝ 1/size^power, equal class totals.
* ``prune`` — "Severing Spurious Correlations with Data Pruning" (ICLR 2025): drop the hardest
  (highest early EL2N, eval-mode pass at 40% of training) fraction of each class's majority group,
  the samples that carry its spurious feature.
* ``mix`` — "Eliminating Spurious Correlations from Pre-trained Models via Data Mixing": a
  class-balanced set whose examples are, with probability ``α``, mixed with a partner of the same
  class drawn from a group-balanced set (``x̃ = s·x_partner + (1 − s)·x``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.seed import rng as make_rng
from curate.data.table import SampleTable
from curate.detect import Discovery
from curate.dynamics import SCORERS, DynamicsLog
from curate.dynamics.recorder import eval_epochs
from curate.errors import ConfigError, EmptySelectionError, InputDataError
from curate.manifest import MIX_LAMBDA, MIX_WITH, Manifest
from curate.select._base import MODES, SELECTORS, build_manifest, group_weights, need_discovery


@dataclass(frozen=True, kw_only=True)
class SelectConfig:
    """Parameters shared by every method; ``version`` is filled in by the API for provenance."""

    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (provenance)."""
        return asdict(self)


def _train(table: SampleTable) -> pl.DataFrame:
    rows = table.split("train").frame
    if rows.height == 0:
        raise InputDataError("the train split is empty", file=table.where, fix="add train rows")
    return rows


# --------------------------------------------------------------------------------------- keep-all
@SELECTORS.register("keep-all", aliases=("erm",), needs=(), description="ERM: every train sample, weight 1")
def keep_all(
    table: SampleTable, discovery: Discovery | None = None, cfg: SelectConfig | None = None, *, version: str = ""
) -> Manifest:
    """Every train sample once with weight 1."""
    cfg = cfg or SelectConfig()
    rows = _train(table).select(S.SAMPLE_ID).with_columns(pl.lit(1.0).alias(S.WEIGHT))
    return build_manifest(table, rows, method="keep-all", config=cfg.to_dict(), discovery=discovery, version=version)


# --------------------------------------------------------------------------------- balance/oracle
@dataclass(frozen=True, kw_only=True)
class BalanceConfig(SelectConfig):
    """``mode``: ``reweight`` (N / (G·n_g)), ``subsample`` or ``upsample``."""

    mode: str = "reweight"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError.bad_param("BalanceConfig()", "mode", f"one of {MODES}", self.mode)


def _balance_by(
    table: SampleTable,
    keys: pl.DataFrame,
    cfg: BalanceConfig,
    *,
    method: str,
    discovery: Discovery | None,
    version: str,
) -> Manifest:
    ids = keys[S.SAMPLE_ID].to_numpy()
    idx, w = group_weights(keys["_key"].to_numpy(), mode=cfg.mode, rng=make_rng(cfg.seed, method))
    rows = pl.DataFrame({S.SAMPLE_ID: ids[idx], S.WEIGHT: w})
    return build_manifest(table, rows, method=method, config=cfg.to_dict(), discovery=discovery, version=version)


@SELECTORS.register("oracle", needs=("true groups",), description="balance by TRUE groups (evaluation only)")
def oracle(
    table: SampleTable, discovery: Discovery | None = None, cfg: BalanceConfig | None = None, *, version: str = ""
) -> Manifest:
    """Group-balanced manifest from the dataset's true groups: an upper reference, not a label-free method.

    Raises:
        InputDataError: the dataset has no group labels.
    """
    if not table.has_groups:
        raise InputDataError(
            "oracle needs true group labels, which this dataset lacks",
            file=table.where,
            fix="use `balance` with pseudo-groups",
        )
    keys = _train(table).select(S.SAMPLE_ID, pl.col(S.GROUP).alias("_key"))
    return _balance_by(table, keys, cfg or BalanceConfig(), method="oracle", discovery=discovery, version=version)


@SELECTORS.register("balance", needs=("discovery",), description="balance pseudo-groups (reweight/subsample/upsample)")
def balance(
    table: SampleTable, discovery: Discovery | None = None, cfg: BalanceConfig | None = None, *, version: str = ""
) -> Manifest:
    """Group-balanced manifest over the discovery's pseudo-groups."""
    d = need_discovery(discovery, "balance")
    keys = d.scores.select(S.SAMPLE_ID, pl.col(S.PSEUDO_GROUP).alias("_key"))
    return _balance_by(table, keys, cfg or BalanceConfig(), method="balance", discovery=d, version=version)


# -------------------------------------------------------------------------------------------- jtt
@dataclass(frozen=True, kw_only=True)
class JTTConfig(SelectConfig):
    """``lambda_up``: weight of the error set (JTT: Waterbirds 100, CelebA 50, MultiNLI 6).
    ``upsample``: repeat error-set rows ``lambda_up`` times instead of weighting them."""

    lambda_up: float = 50.0
    upsample: bool = False

    def __post_init__(self) -> None:
        if not self.lambda_up >= 1:
            raise ConfigError.bad_param("JTTConfig()", "lambda_up", "a number >= 1", self.lambda_up)


@SELECTORS.register("jtt", needs=("discovery",), description="JTT: upweight the error set by lambda_up")
def jtt(
    table: SampleTable, discovery: Discovery | None = None, cfg: JTTConfig | None = None, *, version: str = ""
) -> Manifest:
    """Error set = the discovery's pseudo-minority (``cluster == 1``; the ``jtt`` detector's misclassified).

    Raises:
        EmptySelectionError: the error set is empty (the proxy fit every sample): JTT would be ERM.
    """
    cfg = cfg or JTTConfig()
    d = need_discovery(discovery, "jtt")
    s = d.scores
    err = (s["cluster"] == 1).to_numpy()
    if not err.any():
        raise EmptySelectionError(
            f"jtt(): the error set of discovery {d.detector!r} {d.config} is empty (every train sample fit): "
            "upweighting it would train plain ERM",
            fix="take the error set earlier in training (the jtt detector's epoch)",
        )
    if cfg.upsample:
        reps = np.where(err, round(cfg.lambda_up), 1)
        rows = pl.DataFrame({S.SAMPLE_ID: np.repeat(s[S.SAMPLE_ID].to_numpy(), reps), S.WEIGHT: 1.0})
    else:
        rows = pl.DataFrame({S.SAMPLE_ID: s[S.SAMPLE_ID], S.WEIGHT: np.where(err, cfg.lambda_up, 1.0)})
    return build_manifest(table, rows, method="jtt", config=cfg.to_dict(), discovery=d, version=version)


# ------------------------------------------------------------------------------------------ spare
@SELECTORS.register("spare", needs=("discovery",), description="SPARE: sample clusters ∝ 1/size^power")
def spare(
    table: SampleTable, discovery: Discovery | None = None, cfg: SelectConfig | None = None, *, version: str = ""
) -> Manifest:
    """Weight ∝ 1/|cluster|^power(class), normalised so every class has the same total (SPARE's code),
    scaled to a mean weight of 1. Powers come from the ``spare`` detector (1 without them)."""
    cfg = cfg or SelectConfig()
    d = need_discovery(discovery, "spare")
    powers = {int(k): float(v) for k, v in d.extra.get("sampling_powers", {}).items()}
    s = d.scores.with_columns(pl.len().over(S.PSEUDO_GROUP).alias("_size"))
    power = np.array([powers.get(int(y), 1.0) for y in s[S.LABEL]])
    w = 1.0 / s["_size"].to_numpy().astype(np.float64) ** power
    labels = s[S.LABEL].to_numpy()
    for y in np.unique(labels):
        w[labels == y] /= w[labels == y].sum()
    w *= len(w) / w.sum()
    rows = pl.DataFrame({S.SAMPLE_ID: s[S.SAMPLE_ID], S.WEIGHT: w})
    return build_manifest(
        table, rows, method="spare", config={**cfg.to_dict(), "sampling_powers": powers}, discovery=d, version=version
    )


# ------------------------------------------------------------------------------------------ prune
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
        mode = train.group_by(S.LABEL, attribute).len().sort("len", attribute, descending=[True, False])
        mode = mode.group_by(S.LABEL, maintain_order=True).first()
        return train.join(mode.select(S.LABEL, attribute), on=[S.LABEL, attribute]).select(S.SAMPLE_ID)
    d = need_discovery(discovery, "prune (identifiable setting)")
    sizes = d.scores.group_by(S.LABEL, S.PSEUDO_GROUP).len().sort("len", S.PSEUDO_GROUP, descending=[True, False])
    majority = sizes.group_by(S.LABEL, maintain_order=True).first()
    return d.scores.join(majority.select(S.PSEUDO_GROUP), on=S.PSEUDO_GROUP).select(S.SAMPLE_ID)


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
        else (log.epochs[0] if log is dynamics.eval_pass else min(eval_epochs(log.n_epochs, (PRUNE_EL2N_FRACTION,))))
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


# -------------------------------------------------------------------------------------------- mix
@dataclass(frozen=True, kw_only=True)
class MixConfig(SelectConfig):
    """Data mixing.

    Attributes:
        alpha: probability that a class-balanced example is mixed.
        s: weight of the group-balanced partner in the mix (the authors select from 1.0, 0.9, 0.8, 0.7).
    """

    alpha: float = 1.0  # DISPEL's default (its scripts' alpha grid is {1.0})
    s: float = 0.8

    def __post_init__(self) -> None:
        if not 0 <= self.alpha <= 1:
            raise ConfigError.bad_param("mix()", "alpha", "a float in [0, 1]", self.alpha)
        if not 0 < self.s <= 1:
            raise ConfigError.bad_param("mix()", "s", "a float in (0, 1]", self.s)


@SELECTORS.register(
    "mix", needs=("discovery",), description="data mixing: class-balanced set mixed with group-balanced partners"
)
def mix(
    table: SampleTable, discovery: Discovery | None = None, cfg: MixConfig | None = None, *, version: str = ""
) -> Manifest:
    """Class-balanced rows; each mixed with probability ``alpha`` with a same-class partner drawn from
    the group-balanced set (min pseudo-group size from every pseudo-group), ``mix_lambda = s``."""
    cfg = cfg or MixConfig()
    d = need_discovery(discovery, "mix")
    rng = make_rng(cfg.seed, "mix")
    s = d.scores.sort(S.SAMPLE_ID)
    ids = s[S.SAMPLE_ID].to_numpy()
    labels = s[S.LABEL].to_numpy()
    groups = s[S.PSEUDO_GROUP].to_numpy()
    gsizes = np.bincount(groups)
    gmin = gsizes[gsizes > 0].min()
    balanced = np.concatenate(
        [np.sort(rng.choice(np.flatnonzero(groups == g), size=gmin, replace=False)) for g in np.unique(groups)]
    )
    n_min = np.bincount(labels).min()
    cls_bal = np.concatenate(
        [np.sort(rng.choice(np.flatnonzero(labels == y), size=n_min, replace=False)) for y in np.unique(labels)]
    )
    mixed = rng.random(len(cls_bal)) < cfg.alpha
    partner: list[str | None] = [None] * len(cls_bal)
    for k in np.flatnonzero(mixed):
        pool = balanced[labels[balanced] == labels[cls_bal[k]]]
        partner[k] = str(ids[rng.choice(pool)])
    rows = pl.DataFrame(
        {
            S.SAMPLE_ID: ids[cls_bal],
            S.WEIGHT: np.ones(len(cls_bal)),
            MIX_WITH: pl.Series(partner, dtype=pl.String),
            MIX_LAMBDA: pl.Series([cfg.s if p is not None else None for p in partner], dtype=pl.Float64),
        }
    )
    return build_manifest(table, rows, method="mix", config=cfg.to_dict(), discovery=d, version=version)


def effective_group_shares(manifest: Manifest, table: SampleTable) -> pl.DataFrame:
    """Weighted share of each TRUE group, a mixed row counting ``1 − λ`` for its own group and ``λ``
    for its partner's: ``[group, share]``."""
    f = manifest.frame
    groups = table.frame.select(S.SAMPLE_ID, S.GROUP)
    own = f.select(S.SAMPLE_ID, (pl.col(S.WEIGHT) * (1 - pl.col(MIX_LAMBDA).fill_null(0.0))).alias("w"))
    part = f.filter(pl.col(MIX_WITH).is_not_null()).select(
        pl.col(MIX_WITH).alias(S.SAMPLE_ID), (pl.col(S.WEIGHT) * pl.col(MIX_LAMBDA)).alias("w")
    )
    contrib = pl.concat([own, part]).join(groups, on=S.SAMPLE_ID, how="left")
    return (
        contrib.group_by(S.GROUP)
        .agg(pl.col("w").sum())
        .with_columns((pl.col("w") / pl.col("w").sum()).alias("share"))
        .select(S.GROUP, "share")
        .sort(S.GROUP)
    )
