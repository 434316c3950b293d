"""Stage 4b, detect: rank train samples by how likely they are bias-conflicting, infer
pseudo-groups, and keep each discovery (workspace or cache)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.cache import cached_stage
from curate._core.device import resolve_device
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.detect import CONFLICT, DETECTORS, Discovery, Signals
from curate.dynamics import DynamicsLog, ProxyConfig
from curate.embed import EmbeddingTable
from curate.eval import auroc, minority_flags
from curate.pipeline._common import as_workspace

DEFAULT_DETECTOR = "auto"
AUTO_DETECTORS = {"text": "artifacts", "image": "ensemble"}  # the best measured per modality (benchmarks/detection.py)
DETECT_VERSION = 1


def detect(
    table: SampleTable,
    *,
    embeddings: EmbeddingTable | None = None,
    dynamics: DynamicsLog | None = None,
    detector: str = DEFAULT_DETECTOR,
    proxy_config: ProxyConfig | None = None,
    device: str = "auto",
    **params: Any,
) -> Discovery:
    """Rank train samples by how likely they are bias-conflicting and infer pseudo-groups.

    Args:
        table: the dataset.
        embeddings: from :func:`embed` (needed by ``knn``, ``cluster``, ``spare``, ``ensemble``).
        dynamics: from :func:`record_dynamics` (needed by ``jtt``, ``el2n``, ``cluster``, ``spare``, ``ensemble``).
        detector: a name from :func:`list_detectors`, or ``auto``: ``artifacts`` for text,
            ``ensemble`` for images (the best measured on the built-in benchmarks).
        proxy_config: the proxy settings the dynamics were recorded with (SPARE retrains to its early epoch).
        device: where a detector that trains (SPARE's proxy) runs: ``auto``, ``cpu``, ``cuda``.
        **params: the detector's own parameters (``k``, ``epoch``, ...).

    Returns:
        A :class:`Discovery` (``scores``: ``sample_id, label, conflict_score, cluster, pseudo_group``;
        ``clusters``: per-pseudo-group summary).
    """
    if detector == "auto":
        detector = AUTO_DETECTORS[table.modality]
    fn = DETECTORS.get(detector)
    if embeddings is not None:
        embeddings.check_finite(str(embeddings.meta.get("source", "embeddings")))
    signals = Signals(embeddings, dynamics, (proxy_config or ProxyConfig()).to_dict(), device=resolve_device(device))
    return fn(table, signals, **params)


def cached_detect(
    table: SampleTable,
    emb: EmbeddingTable,
    log: DynamicsLog,
    proxy: ProxyConfig,
    params: dict[str, Any],
    root: Path | None,
    device: str = "cpu",
    dynamics_key: Any = None,
) -> Discovery:
    """:func:`detect` with ``params`` (``detector`` among them), cached by its inputs under ``root``;
    ``dynamics_key`` identifies the recording (default: the proxy's config, from which it follows)."""
    params = dict(params)
    detector = params.pop("detector", DEFAULT_DETECTOR)
    if detector == "auto":
        detector = AUTO_DETECTORS[table.modality]
    dyn = proxy.to_dict() if dynamics_key is None else dynamics_key
    parts = (table.fingerprint(), emb.meta, dyn, detector, params)

    def compute(folder: Path) -> None:
        write_discovery(
            folder,
            detect(table, embeddings=emb, dynamics=log, detector=detector, proxy_config=proxy, device=device, **params),
        )

    return read_discovery(cached_stage("detect", DETECT_VERSION, parts, compute, root=root))


def detection_auroc(table: SampleTable, discovery: Discovery) -> float:
    """AUROC of ``conflict_score`` for the true minority (bias-conflicting) train samples.

    Raises:
        InputDataError: the dataset has no true groups.
    """
    flags = minority_flags(table.frame)
    j = discovery.scores.join(flags, on=S.SAMPLE_ID, how="left")
    return auroc(j[CONFLICT].to_numpy(), j["minority"].to_numpy())


def save_discovery(workspace: str | Path | Workspace, discovery: Discovery) -> Path:
    """Store a discovery in ``WS/detect/<detector>/`` (scores, clusters, config; each file atomic)."""
    ws = as_workspace(workspace)
    folder = ws.path / "detect" / discovery.detector
    write_discovery(folder, discovery)
    ws.record("detect", discovery.detector, folder)
    return folder


def write_discovery(folder: Path, discovery: Discovery) -> None:
    """Write a discovery's scores, clusters and config into ``folder`` (each file atomic)."""
    from curate._core.io import atomic_path, write_json_atomic

    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("scores", discovery.scores), ("clusters", discovery.clusters)):
        with atomic_path(folder / f"{name}.parquet") as tmp:
            frame.write_parquet(tmp)
    write_json_atomic(
        folder / "discovery.json",
        {"detector": discovery.detector, "config": discovery.config, "extra": discovery.extra},
    )


def load_discovery(workspace: str | Path | Workspace, detector: str | None = None) -> Discovery:
    """Read a discovery saved by :func:`save_discovery` (the only one when ``detector`` is None)."""
    ws = as_workspace(workspace)
    return read_discovery(ws.lookup("detect", detector))


def read_discovery(folder: Path) -> Discovery:
    """Read a discovery written by :func:`write_discovery`."""

    meta = json.loads((folder / "discovery.json").read_text())
    extra = meta.get("extra", {})
    if "sampling_powers" in extra:
        extra["sampling_powers"] = {int(k): v for k, v in extra["sampling_powers"].items()}
    return Discovery(
        pl.read_parquet(folder / "scores.parquet"),
        pl.read_parquet(folder / "clusters.parquet"),
        meta["detector"],
        meta.get("config", {}),
        extra,
    )
