"""Shared pieces of the selection methods: the registry, the manifest builder and its provenance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.registry import Registry
from curate.data.table import SampleTable
from curate.detect import Discovery
from curate.errors import ConfigError, InputDataError
from curate.manifest import Manifest, manifest_counts, manifest_frame

Selector = Callable[..., Manifest]
SELECTORS: Registry[Selector] = Registry("selector")
MODES = ("reweight", "subsample", "upsample")


def need_discovery(discovery: Discovery | None, who: str) -> Discovery:
    """The discovery result, or an error naming the method that needs it."""
    if discovery is None:
        raise ConfigError(f"{who}() needs pseudo-groups; run `curate detect` first (or pass a Discovery)")
    return discovery


def build_manifest(
    table: SampleTable,
    rows: pl.DataFrame,
    *,
    method: str,
    config: dict[str, Any],
    discovery: Discovery | None = None,
    version: str = "",
) -> Manifest:
    """Join ``rows`` (``sample_id``, ``weight``, optional ``mix_with``/``mix_lambda``) with the dataset
    and the discovery's pseudo-groups, and attach provenance (method, parameters, inputs, counts)."""
    src = S.PATH if S.PATH in table.frame.columns else S.TEXT
    meta_cols = [S.SAMPLE_ID, pl.col(src).alias(S.SOURCE), S.LABEL] + ([S.GROUP] if table.has_groups else [])
    frame = rows.join(table.frame.select(meta_cols), on=S.SAMPLE_ID, how="left", maintain_order="left")
    if frame[S.SOURCE].null_count():
        missing = frame.filter(pl.col(S.SOURCE).is_null())[S.SAMPLE_ID].to_list()
        from curate.errors import IdMismatchError

        raise IdMismatchError.from_ids(f"{method} rows", "dataset", missing)
    if discovery is not None:
        frame = frame.join(
            discovery.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP), on=S.SAMPLE_ID, how="left", maintain_order="left"
        )
    frame = manifest_frame(frame)
    train = table.split("train").frame
    counts = manifest_counts(frame, train=train.height)
    provenance = {
        "method": method,
        "config": config,
        "seed": config.get("seed"),
        "inputs": {
            "dataset": table.fingerprint(),
            "dataset_source": table.source,
            "discovery": None if discovery is None else {"detector": discovery.detector, "config": discovery.config},
        },
        "curate_version": version,
        "counts": counts,
    }
    return Manifest(frame, provenance)


def group_weights(keys: np.ndarray, *, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows and weights that balance the groups in ``keys``.

    ``reweight``: every row once, weight ``N / (G · n_g)`` (mean weight 1); ``subsample``: each group
    down to the smallest group's size, weight 1; ``upsample``: each group up to the largest size by
    repeating rows (all rows of a group, then a seeded draw), weight 1.

    Returns:
        Row indices into ``keys`` and their weights.
    """
    if mode not in MODES:
        raise ConfigError.bad_param("balance()", "mode", f"one of {MODES}", mode)
    groups, inverse, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    if len(groups) == 0:
        raise InputDataError("nothing to balance: no rows")
    if mode == "reweight":
        w = len(keys) / (len(groups) * sizes[inverse])
        return np.arange(len(keys)), w
    target = sizes.min() if mode == "subsample" else sizes.max()
    picked = []
    for g in range(len(groups)):
        idx = np.flatnonzero(inverse == g)
        if mode == "subsample":
            picked.append(np.sort(rng.choice(idx, size=target, replace=False)))
        else:
            extra = rng.choice(idx, size=target - len(idx), replace=True) if target > len(idx) else np.empty(0, int)
            picked.append(np.concatenate([idx, np.sort(extra)]))
    rows = np.concatenate(picked)
    return rows, np.ones(len(rows))
