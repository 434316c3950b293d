"""Stage 5, select: turn a discovery into a manifest (prune, mix, balance, JTT, SPARE, keep-all,
oracle), and move manifests between formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from curate._core import schema as S
from curate.data import SampleTable
from curate.detect import Discovery
from curate.dynamics import DynamicsLog
from curate.errors import ConfigError
from curate.manifest import Manifest, read_manifest, write_manifest
from curate.pipeline._common import version
from curate.select import (
    SELECTORS,
    BalanceConfig,
    JTTConfig,
    MixConfig,
    PruneConfig,
    SelectConfig,
    effective_group_shares,
)

CONFIGS: dict[str, type[SelectConfig]] = {
    "keep-all": SelectConfig,
    "oracle": BalanceConfig,
    "balance": BalanceConfig,
    "jtt": JTTConfig,
    "spare": SelectConfig,
    "prune": PruneConfig,
    "mix": MixConfig,
}


def select(
    method: str,
    table: SampleTable,
    discovery: Discovery | None = None,
    config: SelectConfig | None = None,
    *,
    dynamics: DynamicsLog | None = None,
) -> Manifest:
    """Build the manifest of selection ``method`` (``keep-all``, ``oracle``, ``balance``, ``jtt``,
    ``spare``, ``prune``, ``mix``); ``config`` is that method's config class (defaults otherwise).

    Raises:
        UnknownNameError: unknown method. ConfigError: a missing input or a bad parameter.
    """
    fn = SELECTORS.get(method)
    name = SELECTORS.entry(method).name
    cfg = config or CONFIGS[name]()
    if not isinstance(cfg, CONFIGS[name]):
        raise ConfigError(f"select(): method {name!r} takes a {CONFIGS[name].__name__}, got {type(cfg).__name__}")
    if name == "prune":
        return fn(table, discovery, cfg, dynamics=dynamics, version=version())
    return fn(table, discovery, cfg, version=version())


def group_balance(manifest: Manifest, table: SampleTable) -> dict[str, float]:
    """Distance from balanced of a manifest's weighted TRUE-group shares (mixing counted by λ),
    next to the input train split's: ``{"manifest_tv": ..., "input_tv": ...}`` (total variation
    distance to the uniform distribution over groups; 0 = balanced)."""
    shares = effective_group_shares(manifest, table)
    train = table.split("train").frame.group_by(S.GROUP).len()
    n_groups = train.height
    uniform = 1.0 / n_groups
    all_groups = train.select(S.GROUP).join(shares, on=S.GROUP, how="left").fill_null(0.0)
    manifest_tv = 0.5 * float(np.abs(all_groups["share"].to_numpy() - uniform).sum())
    input_tv = 0.5 * float(np.abs(train["len"].to_numpy() / train["len"].sum() - uniform).sum())
    return {"manifest_tv": manifest_tv, "input_tv": input_tv}


def export_manifest(path: str | Path, out: str | Path, *, format: str | None = None) -> Path:
    """Re-write a manifest in another format (parquet, csv, jsonl), atomically, with its sidecar."""
    return write_manifest(read_manifest(path), out, format=format)


def prune(table: SampleTable, discovery: Discovery | None, dynamics: DynamicsLog, **config: Any) -> Manifest:
    """The data-pruning manifest (ICLR 2025); ``config`` fields: see :class:`PruneConfig`."""
    return select("prune", table, discovery, PruneConfig(**config), dynamics=dynamics)


def mix(table: SampleTable, discovery: Discovery, **config: Any) -> Manifest:
    """The data-mixing manifest; ``config`` fields: see :class:`MixConfig`."""
    return select("mix", table, discovery, MixConfig(**config))


def balance(table: SampleTable, discovery: Discovery | None, *, groups: str = "pseudo", **config: Any) -> Manifest:
    """A group-balanced manifest over pseudo-groups (``groups="pseudo"``) or the true groups
    (``groups="true"``: the oracle, for evaluation); ``config`` fields: see :class:`BalanceConfig`."""
    if groups not in ("pseudo", "true"):
        raise ConfigError.bad_param("balance()", "groups", "'pseudo' or 'true'", groups)
    return select("oracle" if groups == "true" else "balance", table, discovery, BalanceConfig(**config))
