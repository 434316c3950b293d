"""The dataset, embeddings and dynamics a workspace holds, and one call from a dataset to scores."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from curate._core import schema as S
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.detect import CONFLICT
from curate.dynamics import DynamicsLog, ProxyConfig
from curate.embed import EmbeddingTable, default_encoder
from curate.errors import InputDataError
from curate.pipeline._common import as_workspace
from curate.pipeline.detect import DEFAULT_DETECTOR, detect
from curate.pipeline.dynamics import record_dynamics, score_dynamics
from curate.pipeline.embed import embed

logger = logging.getLogger(__name__)


def workspace_signals(
    workspace: str | Path | Workspace, encoder: str | None = None
) -> tuple[SampleTable, EmbeddingTable, DynamicsLog | None, ProxyConfig]:
    """The dataset, embeddings, dynamics (None if not recorded) and proxy config stored in a workspace.

    The dynamics are the latest recorded for these embeddings' encoder: a proxy head's, or the
    fine-tuned network's when ``curate dynamics --proxy network`` ran last (the proxy config is then
    the default linear one; SPARE reads the recording's own early outputs).
    """
    ws = as_workspace(workspace)
    table = ws.table()
    emb = EmbeddingTable.load(ws.lookup("embed", encoder))
    name = str(emb.meta.get("encoder"))
    dyn = ws.outputs("dynamics").get(name)
    if dyn is None:
        return table, emb, None, ProxyConfig()
    proxy = ProxyConfig() if dyn.get("proxy") == "network" else ProxyConfig(**dyn.get("config", {}))
    return table, emb, DynamicsLog.read(ws.path / dyn["path"]), proxy


def _workspace_embeddings(
    table: SampleTable, encoder: str | None, workspace: str | Path | Workspace | None
) -> EmbeddingTable | None:
    """The embeddings ``workspace`` already holds for ``table`` (``encoder``'s; by default the
    modality's default encoder's, or the only ones), or None when it holds none to reuse."""
    if workspace is None:
        return None
    ws = as_workspace(workspace)
    if not ws.exists:
        return None
    ws.check(table)  # another dataset: an error, not a silent re-embed
    have = ws.outputs("embed")
    name = encoder
    if name is None:
        name = default_encoder(table.modality) if default_encoder(table.modality) in have else None
        if name is None and len(have) == 1:
            name = next(iter(have))
    if name not in have:
        return None
    try:
        emb = EmbeddingTable.load(ws.lookup("embed", name))
    except InputDataError as e:  # damaged: embed() recomputes it
        logger.warning("the workspace's %s embeddings cannot be read (%s): recomputing them", name, e)
        return None
    logger.info("using the workspace's %s embeddings", name)
    return emb


def score(
    table: SampleTable,
    *,
    encoder: str | None = None,
    signals: list[str] | tuple[str, ...] = ("el2n", "forgetting", "aum", "conflict"),
    detector: str = DEFAULT_DETECTOR,
    proxy_config: ProxyConfig | None = None,
    device: str = "auto",
    workspace: str | Path | Workspace | None = None,
) -> pl.DataFrame:
    """One call from a dataset to per-sample scores: embed, record dynamics, score, detect.

    With a ``workspace`` that already holds embeddings of ``table``, those are used (no encoder
    runs); dynamics are cached in the workspace too, so a second call recomputes nothing.

    Args:
        encoder: an encoder spec; ``None``: the workspace's embeddings, else the default encoder
            for the table's modality (``efficientnet-lite0`` for images, ``minilm`` for text).
        signals: dynamics scorer names (see :func:`list_scorers`) and/or ``conflict`` (the
            detector's conflict score, with ``pseudo_group``).

    Returns:
        ``sample_id`` (train split) and one column per requested signal (``<name>_score``,
        ``conflict_score``, ``pseudo_group``).
    """
    emb = _workspace_embeddings(table, encoder, workspace)
    if emb is None:
        emb = embed(table, encoder, device=device, workspace=workspace)
    cfg = proxy_config or ProxyConfig()
    log = record_dynamics(table, emb, config=cfg, device=device, workspace=workspace)
    names = [s for s in signals if s != "conflict"]
    out = table.split("train").frame.select(S.SAMPLE_ID)
    if names:
        out = out.join(score_dynamics(log, names), on=S.SAMPLE_ID, how="left")
    if "conflict" in signals:
        d = detect(table, embeddings=emb, dynamics=log, detector=detector, proxy_config=cfg, device=device)
        out = out.join(d.scores.select(S.SAMPLE_ID, CONFLICT, S.PSEUDO_GROUP), on=S.SAMPLE_ID, how="left")
    return out
