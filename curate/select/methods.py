"""The selection methods: each a registered pure function ``(table, discovery, config) -> Manifest``.

* ``keep-all`` — ERM: every train sample once.
* ``oracle`` — balance by the TRUE groups (for evaluation only: it needs group labels).
* ``balance`` — balance the discovery's pseudo-groups (reweight ``N / n_group``, subsample, upsample),
  optionally with each class's pseudo-minority cut to its top ``minority_share`` by conflict score.
* ``jtt`` — Just Train Twice (Liu et al., ICML 2021): upweight the error set by ``λ_up``.
* ``spare`` — SPARE (Yang et al., ICML 2023): sample each cluster ∝ 1/size^power, equal class totals.
* ``prune`` — "Severing Spurious Correlations with Data Pruning" (ICLR 2025): in
  :mod:`curate.select.prune`.
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
from curate.detect import Discovery, resplit
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
    """Group balancing.

    Attributes:
        mode: ``reweight`` (N / (G·n_g)), ``subsample`` or ``upsample``.
        minority_share: ``balance`` only: each class's pseudo-minority is its top ``minority_share``
            of rows by conflict score (:func:`curate.detect.resplit`) instead of the detector's own
            cut; None keeps the discovery's pseudo-groups. ``curate run`` picks it on validation.
    """

    mode: str = "reweight"
    minority_share: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError.bad_param("BalanceConfig()", "mode", f"one of {MODES}", self.mode)
        if self.minority_share is not None and not 0 < self.minority_share < 1:
            raise ConfigError.bad_param("BalanceConfig()", "minority_share", "a float in (0, 1)", self.minority_share)


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
        InputDataError: the dataset has no group labels. ConfigError: ``minority_share`` is set.
    """
    cfg = cfg or BalanceConfig()
    if cfg.minority_share is not None:
        raise ConfigError.bad_param(
            "oracle()", "minority_share", "None (the true groups are not cut)", cfg.minority_share
        )
    if not table.has_groups:
        raise InputDataError(
            "oracle needs true group labels, which this dataset lacks",
            file=table.where,
            fix="use `balance` with pseudo-groups",
        )
    keys = _train(table).select(S.SAMPLE_ID, pl.col(S.GROUP).alias("_key"))
    return _balance_by(table, keys, cfg, method="oracle", discovery=discovery, version=version)


@SELECTORS.register("balance", needs=("discovery",), description="balance pseudo-groups (reweight/subsample/upsample)")
def balance(
    table: SampleTable, discovery: Discovery | None = None, cfg: BalanceConfig | None = None, *, version: str = ""
) -> Manifest:
    """Group-balanced manifest over the discovery's pseudo-groups (each class's pseudo-minority its
    top ``minority_share`` by conflict score when that is set).

    Raises:
        ConfigError: ``minority_share`` with a discovery that groups by clusters (``cluster``, ``spare``).
    """
    cfg = cfg or BalanceConfig()
    d = need_discovery(discovery, "balance")
    cut = d if cfg.minority_share is None else resplit(d, cfg.minority_share)
    keys = cut.scores.select(S.SAMPLE_ID, pl.col(S.PSEUDO_GROUP).alias("_key"))
    return _balance_by(table, keys, cfg, method="balance", discovery=cut, version=version)


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
