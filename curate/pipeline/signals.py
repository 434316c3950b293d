"""The dataset, embeddings and dynamics a workspace holds, and one call from a dataset to scores."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from curate._core import schema as S
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.detect import CONFLICT
from curate.dynamics import DynamicsLog, ProxyConfig
from curate.embed import EmbeddingTable
from curate.pipeline._common import as_workspace
from curate.pipeline.detect import DEFAULT_DETECTOR, detect
from curate.pipeline.dynamics import record_dynamics, score_dynamics
from curate.pipeline.embed import embed


def workspace_signals(
    workspace: str | Path | Workspace, encoder: str | None = None
) -> tuple[SampleTable, EmbeddingTable, DynamicsLog | None, ProxyConfig]:
    """The dataset, embeddings, dynamics (None if not recorded) and proxy config stored in a workspace.

    The dynamics are the latest recorded for these embeddings' encoder: a proxy head's, or the
    fine-tuned network's when ``curate dynamics --proxy network`` ran last (the proxy config is then
    the default linear one, which SPARE retrains for its early outputs).
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


def score(
    table: SampleTable,
    *,
    encoder: str = "minilm",
    signals: list[str] | tuple[str, ...] = ("el2n", "forgetting", "aum", "conflict"),
    detector: str = DEFAULT_DETECTOR,
    proxy_config: ProxyConfig | None = None,
    device: str = "auto",
    workspace: str | Path | Workspace | None = None,
) -> pl.DataFrame:
    """One call from a dataset to per-sample scores: embed, record dynamics, score, detect.

    Args:
        signals: dynamics scorer names (see :func:`list_scorers`) and/or ``conflict`` (the
            detector's conflict score, with ``pseudo_group``).

    Returns:
        ``sample_id`` (train split) and one column per requested signal (``<name>_score``,
        ``conflict_score``, ``pseudo_group``).
    """
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
