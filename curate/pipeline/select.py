"""Stage 5, select: turn a discovery into a manifest (prune, mix, balance, JTT, SPARE, keep-all,
oracle), apply a reviewer's decisions to it, and move manifests between formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.detect import Discovery
from curate.dynamics import DynamicsLog
from curate.errors import ConfigError
from curate.manifest import Manifest, apply_review, check_review, read_manifest, read_review, review_of, write_manifest
from curate.manifest.review import DECISION
from curate.pipeline._common import as_workspace, version
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


REVIEW_FILE = "decisions.parquet"


def review(
    manifest: Manifest,
    table: SampleTable,
    discovery: Discovery | None = None,
    *,
    keep: str | Path | None = None,
    drop: str | Path | None = None,
    review_file: str | Path | None = None,
) -> Manifest:
    """Apply a reviewer's decisions to ``manifest`` (see :mod:`curate.manifest.review`): ids in
    ``drop`` leave it, ids in ``keep`` stay (re-added with weight 1 when the method removed them);
    ``review_file`` is a CSV ``sample_id,decision``. Returns ``manifest`` itself when no file is given.

    Raises:
        InputDataError: an unreadable file, a bad decision, an id both kept and dropped.
        IdMismatchError: an id that is not one of the dataset's train samples (names the file and line).
    """
    rev = read_review(keep=keep, drop=drop, review=review_file)
    if not rev:
        return manifest
    check_review(rev, table.frame)
    src = S.source_column(table.frame)
    train = table.split("train").frame
    cols = [S.SAMPLE_ID, pl.col(src).alias(S.SOURCE), S.LABEL] + ([S.GROUP] if table.has_groups else [])
    rows = train.select(cols)
    if discovery is not None:
        rows = rows.join(
            discovery.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP), on=S.SAMPLE_ID, how="left", maintain_order="left"
        )
    return apply_review(manifest, rev, rows, train=train.height)


def record_review(workspace: str | Path | Workspace, manifest: Manifest, path: str | Path) -> Path | None:
    """Record a reviewed manifest's decisions in the workspace (``WS/review/decisions.parquet``:
    ``sample_id, decision``), which ``curate inspect`` shows; nothing when it holds none."""
    decisions = review_of(manifest)
    if decisions.height == 0:
        return None
    from curate._core.io import atomic_path

    ws = as_workspace(workspace)
    folder = ws.path / "review"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / REVIEW_FILE) as tmp:
        decisions.write_parquet(tmp)
    ws.record("review", "decisions", folder, manifest=str(Path(path).resolve()), method=manifest.method)
    return folder / REVIEW_FILE


def review_decisions(workspace: str | Path | Workspace, manifest: str | Path | Manifest | None = None) -> pl.DataFrame:
    """A reviewer's decisions, ``[sample_id, decision]``: those recorded in ``manifest`` when given,
    else the workspace's latest (empty when there are none)."""
    if manifest is not None:
        return review_of(manifest if isinstance(manifest, Manifest) else read_manifest(manifest))
    ws = as_workspace(workspace)
    if not ws.outputs("review"):
        return pl.DataFrame(schema={S.SAMPLE_ID: pl.String(), DECISION: pl.String()})
    return pl.read_parquet(ws.lookup("review") / REVIEW_FILE)
