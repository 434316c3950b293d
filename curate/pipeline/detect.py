"""Stage 4b, detect: rank train samples by how likely they are bias-conflicting, infer
pseudo-groups, and keep each discovery (workspace or cache)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.cache import cached_stage
from curate._core.device import resolve_device
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.detect import CONFLICT, DETECTORS, Discovery, Signals
from curate.dynamics import DynamicsLog, ProxyConfig
from curate.embed import EmbeddingTable
from curate.eval import auroc, majority_per_label, minority_flags
from curate.pipeline._common import as_workspace

DEFAULT_DETECTOR = "auto"
# Each modality's bias-only model (tokens for text, embedding dimensions for images): the highest
# mean minority AUROC over the built-in benchmarks of its modality (benchmarks/detection.py; README).
AUTO_DETECTORS = {"text": "artifacts", "image": "features"}
DETECT_VERSION = 2
"""Version of the cached discoveries (2: keyed by every parameter of the detector, its defaults included)."""
MINORITY = "minority"
"""Column of ``scores.parquet``: the detector's minority flag (the sample's pseudo-group is not its class's largest)."""
TRUE_MINORITY = "true_minority"
"""Column of ``scores.parquet`` where true groups exist: the sample's true group is not its class's majority."""


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
        embeddings: from :func:`embed` (needed by ``features``, ``knn``, ``cluster``, ``spare``, ``ensemble``).
        dynamics: from :func:`record_dynamics` (needed by ``jtt``, ``el2n``, ``cluster``, ``spare``, ``ensemble``).
        detector: a name from :func:`list_detectors`, or ``auto``: ``artifacts`` for text,
            ``features`` for images (the best measured on the built-in benchmarks).
        proxy_config: the proxy settings the dynamics were recorded with (SPARE retrains the proxy to its
            epoch only for a recording made before curate kept its outputs).
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


def resolved_params(detector: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every parameter ``detector`` leaves at its default filled in: what a cached
    discovery is keyed by, so that a changed default (a new curate) is another result, not a stale one."""
    signature = inspect.signature(DETECTORS.get(detector))
    defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
    return defaults | params


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
    parts = (table.fingerprint(), emb.meta, dyn, detector, resolved_params(detector, params))

    def compute(folder: Path) -> None:
        write_discovery(
            folder,
            detect(table, embeddings=emb, dynamics=log, detector=detector, proxy_config=proxy, device=device, **params),
        )

    return read_discovery(cached_stage("detect", DETECT_VERSION, parts, compute, root=root))


ARTIFACT_TOKENS = 10
"""How many artifact tokens a text report lists."""


def artifact_tokens(table: SampleTable, discovery: Discovery | None = None) -> list[dict[str, Any]] | None:
    """The artifact tokens of a text dataset (Gardner et al.'s z-statistic, see
    :mod:`curate.detect.artifacts`): ``[{"token", "z", "class", "n"}]``, strongest first; the
    ``artifacts`` detector's own when ``discovery`` is its, else computed on the train split. None
    for images or when no token is frequent enough."""
    if table.modality != "text":
        return None
    from curate.detect.artifacts import MIN_COUNT, artifact_z

    rows = table.split("train").frame
    labels = rows[S.LABEL].to_numpy()
    try:
        tokens, z, x = artifact_z(rows[S.TEXT].to_list(), labels, min_count=min(MIN_COUNT, max(1, rows.height // 10)))
    except ValueError:  # no token frequent enough
        return None
    classes = sorted(set(labels.tolist()))
    counts = np.asarray(x.sum(axis=0)).ravel()
    wanted = None
    if discovery is not None and discovery.extra.get("artifacts"):
        wanted = [a["token"] for a in discovery.extra["artifacts"]]
    index = {t: i for i, t in enumerate(tokens)}
    order = (
        [index[t] for t in wanted if t in index]
        if wanted
        else list(np.argsort(-z.max(axis=1), kind="stable")[:ARTIFACT_TOKENS])
    )
    return [
        {
            "token": tokens[i],
            "z": round(float(z[i].max()), 2),
            "class": int(classes[int(np.argmax(z[i]))]),
            "n": int(counts[i]),
        }
        for i in order
    ]


def detection_auroc(table: SampleTable, discovery: Discovery) -> float:
    """AUROC of ``conflict_score`` for the true minority (bias-conflicting) train samples.

    Raises:
        InputDataError: the dataset has no true groups.
    """
    flags = minority_flags(table.frame)
    j = discovery.scores.select(S.SAMPLE_ID, CONFLICT).join(flags, on=S.SAMPLE_ID, how="left")
    return auroc(j[CONFLICT].to_numpy(), j["minority"].to_numpy())


def minority_of(scores: pl.DataFrame) -> pl.Series:
    """The detector's minority flag of each row of ``scores`` (``label``, ``pseudo_group``): True when
    the sample's pseudo-group is not the largest of its class (ties: the lowest pseudo-group is the
    majority)."""
    majority = majority_per_label(scores, S.PSEUDO_GROUP).rename({S.PSEUDO_GROUP: "_majority"})
    j = scores.select(S.LABEL, S.PSEUDO_GROUP).join(majority, on=S.LABEL, how="left", maintain_order="left")
    return (j[S.PSEUDO_GROUP] != j["_majority"]).alias(MINORITY)


def score_frame(discovery: Discovery, table: SampleTable | None = None) -> pl.DataFrame:
    """A discovery's per-sample scores as written to ``scores.parquet``: ``sample_id, label,
    conflict_score, pseudo_group, minority`` (the detector's flag: the pseudo-group is not its
    class's largest), and with ``table``'s true groups also ``group`` and ``true_minority``."""
    sc = discovery.scores
    out = sc.select(S.SAMPLE_ID, S.LABEL, CONFLICT, S.PSEUDO_GROUP).with_columns(minority_of(sc))
    if table is not None and table.has_groups:
        truth = table.frame.select(S.SAMPLE_ID, S.GROUP).join(
            minority_flags(table.frame).rename({"minority": TRUE_MINORITY}), on=S.SAMPLE_ID
        )
        out = out.join(truth, on=S.SAMPLE_ID, how="left", maintain_order="left")
    return out


def save_discovery(workspace: str | Path | Workspace, discovery: Discovery, **meta: Any) -> Path:
    """Store a discovery in ``WS/detect/<detector>/`` (scores, clusters, config; written as one
    folder) and record it as the workspace's current detection; ``meta`` goes into the record (who
    made it: ``by="curate run"``, ``run=...``)."""
    from curate._core.io import atomic_dir

    ws = as_workspace(workspace)
    folder = ws.path / "detect" / discovery.detector
    with atomic_dir(folder, overwrite=True) as tmp:
        write_discovery(tmp, discovery)
    ws.record("detect", discovery.detector, folder, **({"by": "curate detect"} | meta))
    return folder


def write_discovery(folder: Path, discovery: Discovery) -> None:
    """Write a discovery's scores (with the ``minority`` flag), clusters and config into ``folder``
    (each file atomic)."""
    from curate._core.io import atomic_path, write_json_atomic

    folder.mkdir(parents=True, exist_ok=True)
    scores = discovery.scores
    if MINORITY not in scores.columns:
        scores = scores.with_columns(minority_of(scores))
    for name, frame in (("scores", scores), ("clusters", discovery.clusters)):
        with atomic_path(folder / f"{name}.parquet") as tmp:
            frame.write_parquet(tmp)
    write_json_atomic(
        folder / "discovery.json",
        {"detector": discovery.detector, "config": discovery.config, "extra": discovery.extra},
    )


def current_detector(workspace: str | Path | Workspace, detector: str | None = None) -> str:
    """The name of the workspace's detection that ``detector`` names: itself when given, else the
    current one (the latest recorded, by ``curate detect`` or ``curate run``).

    Raises:
        InputDataError: the workspace holds no such detection (the message lists those it has).
    """
    ws = as_workspace(workspace)
    ws.lookup("detect", detector)  # raises, naming the ones there are
    return detector or str(ws.latest("detect"))


def load_discovery(workspace: str | Path | Workspace, detector: str | None = None) -> Discovery:
    """Read a discovery recorded in a workspace: ``detector``'s, or the current one (the latest
    recorded) when ``detector`` is None.

    Raises:
        InputDataError: the workspace holds no such detection.
    """
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
