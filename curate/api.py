"""The stable programmatic surface of curate; the CLI is a thin shell over these functions.

Every function takes plain values and returns polars frames, tables or paths; devices and
backends are resolved here, once.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.cache import cached_stage, fingerprint, resumable_stage
from curate._core.device import resolve_device
from curate._core.engine import check_engine
from curate._core.registry import Registry
from curate.data import (
    BENCHMARKS,
    DATASET_FORMATS,
    BenchmarkConfig,
    LoadReport,
    SampleTable,
    write_benchmark,
)
from curate.data import load_dataset as _load_dataset
from curate.data.workspace import Workspace
from curate.detect import CONFLICT, DETECTORS, Discovery, Signals
from curate.dynamics import SCORERS, DynamicsLog, ProxyConfig, train_proxy
from curate.embed import ENCODERS, EmbeddingTable, create_encoder
from curate.embed.shards import SHARD_SIZE, embed_sharded
from curate.errors import ConfigError, InputDataError
from curate.eval import auroc, minority_flags, write_report
from curate.finetune import (
    ContrastiveConfig,
    FinetuneConfig,
    FinetuneResult,
    MaskTuneConfig,
    MaskTuneResult,
    train_head,
)
from curate.index import INDEX_BACKENDS, KMeansConfig, KnnIndex, cluster_per_class, get_backend
from curate.manifest import MANIFEST_FORMATS, Manifest, read_manifest, write_manifest
from curate.select import (
    SELECTORS,
    BalanceConfig,
    JTTConfig,
    MixConfig,
    PruneConfig,
    SelectConfig,
    effective_group_shares,
)

EMBED_VERSION = 1
DYNAMICS_VERSION = 1
CLUSTER_VERSION = 1

logger = logging.getLogger(__name__)

__all__ = [
    "RUN_METHODS",
    "RUN_STAGES",
    "BalanceConfig",
    "ContrastiveConfig",
    "Discovery",
    "EmbeddingTable",
    "FinetuneConfig",
    "JTTConfig",
    "KMeansConfig",
    "Manifest",
    "MaskTuneConfig",
    "MixConfig",
    "ProxyConfig",
    "PruneConfig",
    "SelectConfig",
    "Signals",
    "Workspace",
    "balance",
    "check_dataset",
    "cluster",
    "detect",
    "detection_auroc",
    "embed",
    "env_info",
    "export_manifest",
    "finetune",
    "group_balance",
    "group_counts",
    "knn",
    "list_benchmarks",
    "list_detectors",
    "list_encoders",
    "list_formats",
    "list_scorers",
    "list_selectors",
    "load_dataset",
    "load_discovery",
    "make_benchmark",
    "masktune",
    "mix",
    "prune",
    "read_manifest",
    "read_run_config",
    "record_dynamics",
    "registries",
    "report",
    "run",
    "save_discovery",
    "score",
    "score_dynamics",
    "select",
    "summarize_by_group",
    "workspace_signals",
    "write_manifest",
    "write_scores",
]


def version() -> str:
    """The installed curate version."""
    try:
        return importlib.metadata.version("curate")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def load_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    check_files: bool = True,
    **options: Any,
) -> SampleTable:
    """Read and check a dataset in any supported layout (see :func:`curate.data.load_dataset`).

    Raises:
        InputDataError: a bad row (unless ``skip_bad``), an empty split or an unknown layout.
    """
    table, _ = _load_dataset(
        path, format=format, columns=columns, skip_bad=skip_bad, check_files=check_files, **options
    )
    return table


def check_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> tuple[SampleTable, LoadReport]:
    """Like :func:`load_dataset`, also returning which layout was used and which rows were dropped."""
    return _load_dataset(path, format=format, columns=columns, skip_bad=skip_bad, **options)


def make_benchmark(
    name: str,
    out: str | Path,
    *,
    seed: int = 0,
    spurious_strength: float = 0.95,
    n_train: int | None = None,
    n_val_per_group: int | None = None,
    n_test_per_group: int | None = None,
    overwrite: bool = False,
) -> SampleTable:
    """Write built-in benchmark ``name`` to ``out`` (SubpopBench layout) and load it back.

    Args:
        name: a name from :func:`list_benchmarks`.
        out: folder to create (must be absent or empty unless ``overwrite``).
        seed: seeds every draw; the same seed gives a byte-identical ``metadata.csv``.
        spurious_strength: share of each class's train samples in its majority group.
        n_train: train size (default: the benchmark's).
        n_val_per_group: val size per group (default: the benchmark's).
        n_test_per_group: test size per group (default: the benchmark's).
        overwrite: replace an existing ``out``.

    Raises:
        UnknownNameError: no such benchmark.
        MissingDependencyError: its source data is not installed.
        ConfigError: a bad size or strength.
    """
    bench = BENCHMARKS.get(name)
    cfg = BenchmarkConfig(
        seed=seed,
        spurious_strength=spurious_strength,
        n_train=n_train,
        n_val_per_group=n_val_per_group,
        n_test_per_group=n_test_per_group,
    )
    meta = write_benchmark(bench, out, cfg, overwrite=overwrite, version=version())
    return load_dataset(meta, format="subpopbench", check_files=False)


def list_benchmarks() -> pl.DataFrame:
    """Built-in benchmarks: ``name``, ``modality``, default sizes and a description."""
    rows = []
    for n in BENCHMARKS.names():
        b = BENCHMARKS.get(n)
        rows.append(
            {
                "name": n,
                "modality": b.modality,
                "n_train": b.defaults[0],
                "n_val_per_group": b.defaults[1],
                "n_test_per_group": b.defaults[2],
                "description": b.description,
            }
        )
    return pl.DataFrame(rows)


def list_formats() -> pl.DataFrame:
    """Dataset layouts ``load_dataset`` reads: ``name`` and ``description``."""
    return pl.DataFrame(
        [{"name": n, "description": DATASET_FORMATS.get(n).description} for n in DATASET_FORMATS.names()]
    )


def group_counts(table: SampleTable) -> pl.DataFrame:
    """Samples per group (or label) × split, with each group's share of its class in train."""
    return table.group_counts()


def registries() -> dict[str, Registry[Any]]:
    """Every registry by its listing name (``curate list NAME``)."""
    get_backend("faiss-cpu")  # registers faiss-gpu as available or not
    return {
        "benchmarks": BENCHMARKS,
        "formats": DATASET_FORMATS,
        "encoders": ENCODERS,
        "scorers": SCORERS,
        "index-backends": INDEX_BACKENDS,
        "detectors": DETECTORS,
        "selectors": SELECTORS,
        "manifest-formats": MANIFEST_FORMATS,
    }


def _meta_frame(reg: Registry[Any], keys: tuple[str, ...]) -> pl.DataFrame:
    return pl.DataFrame([{"name": n, **{k: str(reg.meta(n).get(k, "")) for k in keys}} for n in reg.names()])


def list_encoders() -> pl.DataFrame:
    """Registered encoders: ``name``, ``modality``, ``description``."""
    return _meta_frame(ENCODERS, ("modality", "description"))


def list_scorers() -> pl.DataFrame:
    """Registered scorers: ``name``, ``needs`` and the meaning of a ``higher`` score."""
    return _meta_frame(SCORERS, ("needs", "higher"))


# ----------------------------------------------------------------------------------------- signals
def _stage_root(workspace: str | Path | Workspace | None, table: SampleTable) -> tuple[Path | None, Workspace | None]:
    if workspace is None:
        return None, None
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    ws.attach(table)
    return ws.path, ws


def embed(
    table: SampleTable,
    encoder: str = "minilm",
    *,
    device: str = "auto",
    batch_size: int = 64,
    num_workers: int = 0,
    cache: bool = True,
    workspace: str | Path | Workspace | None = None,
    float16: bool = False,
    engine: str = "local",
    shard_size: int = SHARD_SIZE,
    mmap: bool = False,
) -> EmbeddingTable:
    """Embed every sample of ``table`` with a registered encoder, cached by content.

    The cache key is (dataset fingerprint, encoder identity and preprocessing, precision); a second
    call with the same inputs loads the stored matrix. With ``workspace`` the entry lives in that
    folder (``WS/embed/<key>/``), otherwise under ``$CURATE_CACHE_DIR``. Rows are embedded in
    shards of ``shard_size`` written as they finish: an interrupted call (even ``kill -9``) resumes
    from the finished shards with an identical result.

    Args:
        table: the dataset.
        encoder: an encoder spec (``minilm``, ``efficientnet-lite0``, ``hf-text:PATH``, ...).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: samples per forward pass.
        num_workers: DataLoader workers for image decoding.
        cache: reuse a stored result (``False`` recomputes and overwrites it).
        workspace: a workspace folder to store the result in (and record it under the encoder spec).
        float16: store the matrix as float16 on disk (loaded back as float32 unless ``mmap``).
        engine: ``local`` or ``ray`` (Ray Data actors; GPU actors where GPUs exist; extra ``dist``).
        shard_size: rows per resumable shard.
        mmap: return the matrix memory-mapped from the cache (for data larger than memory).

    Returns:
        An :class:`EmbeddingTable` aligned to the table's ids.

    Raises:
        UnknownNameError: unknown encoder. ConfigError: the encoder cannot embed this modality.
        DeviceUnavailableError: CUDA asked for but absent. InputDataError: an unreadable sample.
    """
    check_engine(engine, "embed()")
    dev = resolve_device(device)
    enc = create_encoder(encoder)
    enc.check_modality(table.modality)
    precision = "fp16-autocast" if dev.startswith("cuda") else "fp32"
    root, ws = _stage_root(workspace, table)
    parts = (table.fingerprint(), enc.describe(), precision, float16)

    def compute(folder: Path) -> None:
        embed_sharded(
            table,
            enc,
            folder,
            device=dev,
            batch_size=batch_size,
            num_workers=num_workers,
            shard_size=shard_size,
            float16=float16,
            engine=engine,
            meta={"dataset": table.fingerprint(), "precision": precision},
        )

    folder = resumable_stage("embed", EMBED_VERSION, parts, compute, enabled=cache, root=root)
    if ws is not None:
        ws.record("embed", encoder, folder)
    return EmbeddingTable.load(folder, mmap=mmap)


def record_dynamics(
    table: SampleTable,
    embeddings: EmbeddingTable,
    *,
    config: ProxyConfig | None = None,
    device: str = "auto",
    cache: bool = True,
    workspace: str | Path | Workspace | None = None,
) -> DynamicsLog:
    """Train proxy heads on the train split's embeddings and record their training dynamics.

    Shards are written epoch by epoch; an interrupted call resumes from the last finished epoch, and
    a finished one is a cache hit (key: dataset, embeddings, config).

    Returns:
        The :class:`DynamicsLog` (``run, epoch, sample_id, loss, margin, correct, prob_true, el2n, feat_norm``).
    """
    cfg = config or ProxyConfig()
    dev = resolve_device(device)
    embeddings.check_finite(str(embeddings.meta.get("source", "embeddings")))
    root, ws = _stage_root(workspace, table)
    parts = (table.fingerprint(), fingerprint(embeddings.matrix), cfg.to_dict())
    folder = resumable_stage(
        "dynamics",
        DYNAMICS_VERSION,
        parts,
        lambda f: train_proxy(embeddings, table, cfg, f, device=dev),
        enabled=cache,
        root=root,
    )
    if ws is not None:
        ws.record("dynamics", str(embeddings.meta.get("encoder", "embeddings")), folder, config=cfg.to_dict())
    return DynamicsLog.read(folder)


def score_dynamics(log: DynamicsLog, scorers: list[str] | tuple[str, ...] | None = None, **params: Any) -> pl.DataFrame:
    """Apply registered dynamics scorers and join them on ``sample_id``.

    Args:
        log: a recorded :class:`DynamicsLog`.
        scorers: names from :func:`list_scorers` (default: all that this log supports).
        **params: passed to every scorer that takes them (e.g. ``epoch=3``).

    Returns:
        ``sample_id`` and one ``<name>_score`` column per scorer (directions: :func:`list_scorers`).
    """
    import inspect

    names = list(scorers) if scorers is not None else SCORERS.names()
    if scorers is None and log.frame["feat_norm"].null_count():
        names.remove("grand")
    out: pl.DataFrame | None = None
    for name in names:
        fn = SCORERS.get(name)
        accepted = {k: v for k, v in params.items() if k in inspect.signature(fn).parameters}
        frame = fn(log, **accepted).rename({S.SCORE: S.score_column(name)})
        out = frame if out is None else out.join(frame, on=S.SAMPLE_ID, how="full", coalesce=True)
    if out is None:
        raise InputDataError("no scorers requested", fix="pass at least one scorer name")
    return out.sort(S.SAMPLE_ID)


def cluster(
    table: SampleTable,
    embeddings: EmbeddingTable,
    *,
    config: KMeansConfig | None = None,
    split: str = "train",
    index_backend: str = "auto",
    cache: bool = True,
    workspace: str | Path | Workspace | None = None,
    engine: str = "local",
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Spherical k-means within each class of ``split`` (FAISS; GPU when available; ``engine="ray"``:
    one Ray task per class, same result).

    Returns:
        ``assignments`` ``[sample_id, label, cluster_in_class, cluster]`` and the per-cluster
        ``summary`` ``[cluster, label, cluster_in_class, size, share_of_class, silhouette]``.
    """
    cfg = config or KMeansConfig()
    backend = get_backend(index_backend)
    rows = table.split(split).frame
    if rows.height == 0:
        raise InputDataError(f"the {split!r} split is empty", file=table.where, fix="pick another split")
    x = embeddings.select(rows[S.SAMPLE_ID], what=f"{split} split").check_finite().matrix
    root, ws = _stage_root(workspace, table)
    parts = (table.fingerprint(), fingerprint(x), cfg.to_dict(), split)

    def compute(folder: Path) -> None:
        assign, summary = cluster_per_class(
            x, rows[S.SAMPLE_ID], rows[S.LABEL].to_numpy(), cfg, backend=backend, engine=engine
        )
        assign.write_parquet(folder / "assignments.parquet")
        summary.write_parquet(folder / "summary.parquet")

    folder = cached_stage("cluster", CLUSTER_VERSION, parts, compute, enabled=cache, root=root)
    if ws is not None:
        ws.record("cluster", str(embeddings.meta.get("encoder", "embeddings")), folder, config=cfg.to_dict())
    return pl.read_parquet(folder / "assignments.parquet"), pl.read_parquet(folder / "summary.parquet")


def knn(embeddings: EmbeddingTable, k: int = 10, *, kind: str = "auto", index_backend: str = "auto") -> pl.DataFrame:
    """The ``k`` nearest neighbours (cosine) of every sample, itself excluded.

    Returns:
        ``[sample_id, neighbor_id, rank, similarity]``, ``rank`` 1 = most similar.
    """
    index = KnnIndex(kind=kind, backend=get_backend(index_backend)).fit(embeddings.check_finite().matrix)
    sims, idx = index.search(embeddings.matrix, min(k + 1, len(embeddings)))
    n = len(embeddings)
    ids = embeddings.ids.to_numpy()
    rows = pl.DataFrame(
        {
            S.SAMPLE_ID: np.repeat(ids, idx.shape[1]),
            "neighbor_id": ids[np.clip(idx, 0, n - 1)].reshape(-1),
            "similarity": sims.reshape(-1),
            "_self": (idx == np.arange(n)[:, None]).reshape(-1),
        }
    )
    return (
        rows.filter(~pl.col("_self"))
        .with_columns(pl.int_range(1, pl.len() + 1).over(S.SAMPLE_ID).alias("rank"))
        .filter(pl.col("rank") <= k)
        .select(S.SAMPLE_ID, "neighbor_id", "rank", "similarity")
    )


def env_info() -> dict[str, str]:
    """Versions of curate, Python and the key libraries, and the devices visible here."""
    from curate._core.device import cuda_available, faiss_gpu_count

    info = {"curate": version(), "python": platform.python_version(), "platform": platform.platform()}
    for pkg in (
        "torch",
        "torchvision",
        "faiss-cpu",
        "faiss-gpu-cu12",
        "polars",
        "numpy",
        "transformers",
        "scikit-learn",
        "typer",
        "rich",
    ):
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    info["cuda"] = "available" if cuda_available() else "not available"
    info["faiss_gpus"] = str(faiss_gpu_count())
    return info


def write_scores(workspace: str | Path | Workspace, name: str, scores: pl.DataFrame) -> Path:
    """Write a ``[sample_id, <name>_score...]`` frame to ``WS/scores/<name>.parquet`` atomically."""
    from curate._core.io import atomic_path

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    S.validate_frame(scores, required=(S.SAMPLE_ID,), where=f"{name} scores")
    out = ws.path / "scores" / f"{name}.parquet"
    with atomic_path(out) as tmp:
        scores.write_parquet(tmp)
    return out


def summarize_by_group(table: SampleTable, scores: pl.DataFrame, *, split: str = "train") -> pl.DataFrame:
    """Mean of every score column per true group (per label when groups are unknown) on ``split``."""
    key = S.GROUP if table.has_groups else S.LABEL
    rows = table.split(split).frame.select(S.SAMPLE_ID, key)
    cols = [c for c in scores.columns if c != S.SAMPLE_ID]
    out = (
        rows.join(scores, on=S.SAMPLE_ID, how="inner")
        .group_by(key)
        .agg(pl.len().alias("n"), *[pl.col(c).mean() for c in cols])
        .sort(key)
    )
    names = [table.group_name(int(g)) if key == S.GROUP else str(g) for g in out[key]]
    return out.with_columns(pl.Series("name", names)).select(key, "name", "n", *cols)


# ------------------------------------------------------------------------------ discovery, curation
DEFAULT_DETECTOR = "auto"
AUTO_DETECTORS = {"text": "artifacts", "image": "ensemble"}  # the best measured per modality (benchmarks/detection.py)
CONFIGS: dict[str, type[SelectConfig]] = {
    "keep-all": SelectConfig,
    "oracle": BalanceConfig,
    "balance": BalanceConfig,
    "jtt": JTTConfig,
    "spare": SelectConfig,
    "prune": PruneConfig,
    "mix": MixConfig,
}


def list_detectors() -> pl.DataFrame:
    """Registered detectors: ``name``, ``needs``, ``description``."""
    return _meta_frame(DETECTORS, ("needs", "description"))


def list_selectors() -> pl.DataFrame:
    """Registered selection methods: ``name``, ``needs``, ``description``."""
    return _meta_frame(SELECTORS, ("needs", "description"))


def detect(
    table: SampleTable,
    *,
    embeddings: EmbeddingTable | None = None,
    dynamics: DynamicsLog | None = None,
    detector: str = DEFAULT_DETECTOR,
    proxy_config: ProxyConfig | None = None,
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
    signals = Signals(embeddings, dynamics, (proxy_config or ProxyConfig()).to_dict())
    return fn(table, signals, **params)


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
        d = detect(table, embeddings=emb, dynamics=log, detector=detector, proxy_config=cfg)
        out = out.join(d.scores.select(S.SAMPLE_ID, CONFLICT, S.PSEUDO_GROUP), on=S.SAMPLE_ID, how="left")
    return out


def detection_auroc(table: SampleTable, discovery: Discovery) -> float:
    """AUROC of ``conflict_score`` for the true minority (bias-conflicting) train samples.

    Raises:
        InputDataError: the dataset has no true groups.
    """
    flags = minority_flags(table.frame)
    j = discovery.scores.join(flags, on=S.SAMPLE_ID, how="left")
    return auroc(j[CONFLICT].to_numpy(), j["minority"].to_numpy())


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


def save_discovery(workspace: str | Path | Workspace, discovery: Discovery) -> Path:
    """Store a discovery in ``WS/detect/<detector>/`` (scores, clusters, config; each file atomic)."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    folder = ws.path / "detect" / discovery.detector
    _write_discovery(folder, discovery)
    ws.record("detect", discovery.detector, folder)
    return folder


def _write_discovery(folder: Path, discovery: Discovery) -> None:
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
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    return _read_discovery(ws.lookup("detect", detector))


def _read_discovery(folder: Path) -> Discovery:
    import json

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


def workspace_signals(
    workspace: str | Path | Workspace, encoder: str | None = None
) -> tuple[SampleTable, EmbeddingTable, DynamicsLog | None, ProxyConfig]:
    """The dataset, embeddings, dynamics (None if not recorded) and proxy config stored in a workspace."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    table = ws.table()
    emb = EmbeddingTable.load(ws.lookup("embed", encoder))
    name = str(emb.meta.get("encoder"))
    dyn = ws.outputs("dynamics").get(name)
    if dyn is None:
        return table, emb, None, ProxyConfig()
    return table, emb, DynamicsLog.read(ws.path / dyn["path"]), ProxyConfig(**dyn.get("config", {}))


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


def finetune(
    table: SampleTable,
    embeddings: EmbeddingTable | None,
    manifest: Manifest,
    config: FinetuneConfig | None = None,
    *,
    discovery: Discovery | None = None,
    out: str | Path | None = None,
) -> FinetuneResult:
    """Train on the manifest's rows (ERM, GroupDRO or DFR; a head on ``embeddings`` or a CNN on the
    images, see :class:`FinetuneConfig`), select the epoch by validation worst-group accuracy and
    evaluate on test.

    With ``out``: checkpoints (a rerun resumes), per-sample dynamics, ``metrics.json`` (val and test:
    acc_avg, acc_wg, adj_acc_avg, groups, ...) and ``predictions.parquet``, written atomically.
    """

    pseudo = None if discovery is None else discovery.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP)
    result = train_head(manifest, table, embeddings, config or FinetuneConfig(), pseudo_groups=pseudo, out=out)
    if out is not None:
        _write_run(out, result, manifest)
    return result


def _write_run(out: str | Path, result: FinetuneResult, manifest: Manifest) -> None:
    from curate._core.io import atomic_path, write_json_atomic

    folder = Path(out)
    write_json_atomic(
        folder / "metrics.json",
        {
            "method": result.config["method"],
            "manifest": manifest.provenance,
            "config": result.config,
            "best_epoch": result.best_epoch,
            "val": result.val.to_dict(),
            "test": result.test.to_dict(),
        },
    )
    with atomic_path(folder / "predictions.parquet") as tmp:
        result.predictions.write_parquet(tmp)


def contrastive(
    table: SampleTable,
    embeddings: EmbeddingTable,
    manifest: Manifest,
    config: ContrastiveConfig | None = None,
    *,
    text_encoder: str | None = None,
    discovery: Discovery | None = None,
    out: str | Path | None = None,
    device: str = "auto",
) -> FinetuneResult:
    """The multi-modal contrastive method (Yang et al., ICML 2023) on the manifest's rows.

    The input tower is the one that made ``embeddings``; the prompt tower is ``text_encoder``
    (default: the same ``clip:`` model when the embeddings are CLIP's, whose projections then start
    aligned, else ``minilm``). Spurious attributes in words come from ``config.spurious`` or the
    dataset's attribute names. With ``out``: as :func:`finetune`.
    """
    import torch

    from curate.finetune import train_contrastive

    source = str(embeddings.meta.get("encoder", ""))
    is_clip = source.startswith("clip:")
    spec = text_encoder or (source if is_clip else "minilm")
    encoder = create_encoder(spec)
    encoder.check_modality("text")
    dev = resolve_device(device)

    def encode_text(texts: list[str]) -> np.ndarray:
        encoder.load(dev)
        with torch.inference_mode():
            return encoder.encode_text(texts).float().cpu().numpy()

    pseudo = None if discovery is None else discovery.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP)
    result = train_contrastive(
        manifest,
        table,
        embeddings,
        encode_text,
        config or ContrastiveConfig(),
        identity=is_clip and spec == source,
        pseudo_groups=pseudo,
        out=out,
    )
    if out is not None:
        _write_run(out, result, manifest)
    return result


def masktune(
    manifest: Manifest, table: SampleTable, config: MaskTuneConfig | None = None, *, out: str | Path | None = None
) -> MaskTuneResult:
    """MaskTune (NeurIPS 2022) on the manifest's images: ERM CNN, xGradCAM masks above mean + 2·std,
    one fine-tuning epoch on the masked images, selective classification. With ``out``: ``metrics.json``."""
    from curate.finetune import masktune as _masktune

    result = _masktune(manifest, table, config)
    if out is not None:
        from curate._core.io import write_json_atomic

        write_json_atomic(
            Path(out) / "metrics.json",
            {
                "method": "masktune",
                "manifest": manifest.provenance,
                "config": result.config,
                "best_epoch": None,
                "val": result.val.to_dict(),
                "test": result.test.to_dict(),
                "erm_test": result.erm_test.to_dict(),
                "selective": {"coverage": result.coverage, "accuracy": result.selective_accuracy},
                "masked_share": result.masked_share,
            },
        )
    return result


def report(runs: list[str | Path], out: str | Path, *, workspace: str | Path | None = None) -> Path:
    """Markdown report of fine-tune runs with PNG plots; with ``workspace``, also the discovery's score
    histograms by true group and a 2-D map of the train embeddings by pseudo-group and true group."""
    table = scores = matrix = ids = None
    if workspace is not None:
        ws = Workspace(workspace)
        table = ws.table()
        if ws.outputs("detect"):
            scores = load_discovery(ws, next(iter(ws.outputs("detect")))).scores
            emb = EmbeddingTable.load(ws.lookup("embed", next(iter(ws.outputs("embed")))))
            ids = scores[S.SAMPLE_ID].to_list()
            matrix = emb.select(ids, what="discovery").matrix
    return write_report([Path(r) for r in runs], out, table=table, scores=scores, embeddings=matrix, embedding_ids=ids)


# --------------------------------------------------------------------------------------- curate run
LABEL_FREE = "none (label-free)"
TRAIN_GROUPS = "true train groups"
RUN_METHODS: dict[str, tuple[str, str, str]] = {
    # method: (selection, trainer, true group labels it uses)
    "erm": ("keep-all", "erm", LABEL_FREE),
    "prune": ("prune", "erm", LABEL_FREE),
    "mix": ("mix", "erm", LABEL_FREE),
    "balance": ("balance", "erm", LABEL_FREE),
    "jtt": ("jtt", "erm", LABEL_FREE),
    "spare": ("spare", "erm", LABEL_FREE),
    "dfr": ("keep-all", "dfr", "true val groups (last-layer retraining set)"),
    "groupdro": ("keep-all", "groupdro", TRAIN_GROUPS),
    "masktune": ("keep-all", "masktune", LABEL_FREE),
    "contrastive": ("balance", "contrastive", LABEL_FREE),
    "oracle": ("oracle", "erm", TRAIN_GROUPS),
}
RUN_DETECTORS = {"jtt": "jtt", "spare": "spare"}  # methods defined on their own discovery; the rest: auto
# Choices the papers leave to validation worst-group accuracy (true val groups when known):
# prune's p (their scripts: 0.1-0.97) and which majority samples count as carriers (the confident
# half, or all of it); mix's alpha and s (DISPEL's s grid is 1, .9, .8, .7; two points of each here,
# to keep a run short); JTT's lambda_up (their values: 6, 20, 50, 100). A field set in [select] is
# not tuned.
RUN_GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "prune": {"fraction": (0.5, 0.9, 0.97), "carrier_quantile": (0.5, 1.0)},
    "mix": {"alpha": (0.5, 1.0), "s": (1.0, 0.8)},
    "jtt": {"lambda_up": (6.0, 20.0, 50.0, 100.0)},
}
RUN_SECTIONS = ("embed", "dynamics", "detect", "select", "finetune")
# Which discovery feeds the pseudo-group methods is left open by their papers: `curate run` picks,
# among these detectors, the one whose pseudo-group-balanced manifest trains the head with the best
# validation worst-group accuracy (when the dataset has val groups; else `auto`).
PSEUDO_GROUP_SELECTIONS = ("balance", "prune", "mix")
DETECTOR_CANDIDATES = {"image": ("ensemble", "knn", "jtt", "cluster"), "text": ("artifacts", "ensemble", "knn", "jtt")}
RUN_STAGES = ("load", "embed", "dynamics", "detect", "select", "finetune", "report")
DEFAULT_ENCODERS = {"image": "efficientnet-lite0", "text": "minilm"}
DETECT_VERSION = 1


def read_run_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """A ``curate run --config`` TOML file: tables ``[embed]``, ``[dynamics]``, ``[detect]``,
    ``[select]``, ``[finetune]`` whose keys are the fields of that stage's config."""
    import tomllib

    file = Path(path)
    try:
        cfg = tomllib.loads(file.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputDataError(f"cannot read the run config ({e})", file=file, fix="write a valid TOML file") from e
    return _check_sections(cfg, str(file))


def _check_sections(cfg: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    for key, value in cfg.items():
        if key not in RUN_SECTIONS or not isinstance(value, Mapping):
            raise ConfigError(f"{where}: unknown section [{key}]; the sections are {', '.join(RUN_SECTIONS)}")
    return {k: dict(cfg.get(k, {})) for k in RUN_SECTIONS}


def _make(cls: Any, section: str, fields: dict[str, Any], **defaults: Any) -> Any:
    try:
        return cls(**(defaults | fields))
    except TypeError as e:
        raise ConfigError(f"[{section}]: {e} (the fields are those of {cls.__name__})") from e


def _cached_detect(
    table: SampleTable,
    emb: EmbeddingTable,
    log: DynamicsLog,
    proxy: ProxyConfig,
    params: dict[str, Any],
    root: Path | None,
) -> Discovery:
    params = dict(params)
    detector = params.pop("detector", DEFAULT_DETECTOR)
    if detector == "auto":
        detector = AUTO_DETECTORS[table.modality]
    parts = (table.fingerprint(), emb.meta, proxy.to_dict(), detector, params)  # the dynamics follow from these

    def compute(folder: Path) -> None:
        _write_discovery(
            folder, detect(table, embeddings=emb, dynamics=log, detector=detector, proxy_config=proxy, **params)
        )

    return _read_discovery(cached_stage("detect", DETECT_VERSION, parts, compute, root=root))


def _choose_detector(
    table: SampleTable,
    emb: EmbeddingTable,
    log: DynamicsLog,
    proxy: ProxyConfig,
    params: dict[str, Any],
    root: Path | None,
    head: FinetuneConfig,
) -> tuple[Discovery, dict[str, Any]]:
    """The candidate discovery whose balanced manifest gives the best validation (WGA, mean accuracy)."""
    import json

    def compute(folder: Path) -> None:
        tried = {}
        for det in DETECTOR_CANDIDATES[table.modality]:
            d = _cached_detect(table, emb, log, proxy, params | {"detector": det}, root)
            r = train_head(select("balance", table, d), table, emb, head)
            tried[det] = {"val_acc_wg": r.val.acc_wg, "val_acc_avg": r.val.acc_avg}
            logger.info("detector %s: balanced head val acc_wg %.4f", det, r.val.acc_wg)
        best = max(tried, key=lambda k: (tried[k]["val_acc_wg"], tried[k]["val_acc_avg"]))
        (folder / "choice.json").write_text(json.dumps({"chosen": best, "tried": tried}))

    parts = (
        table.fingerprint(),
        emb.meta,
        proxy.to_dict(),
        params,
        DETECTOR_CANDIDATES[table.modality],
        head.to_dict(),
    )
    folder = cached_stage("detector-choice", DETECT_VERSION, parts, compute, root=root)
    choice = json.loads((folder / "choice.json").read_text())
    return _cached_detect(table, emb, log, proxy, params | {"detector": choice["chosen"]}, root), choice


def _tune_selection(
    table: SampleTable,
    emb: EmbeddingTable,
    log: DynamicsLog,
    disc: Discovery,
    name: str,
    base: SelectConfig,
    grid: dict[str, tuple[float, ...]],
    train_cfg: FinetuneConfig,
    pseudo: pl.DataFrame,
) -> tuple[SelectConfig, dict[str, Any]]:
    """The grid point whose manifest trains the head with the best validation (WGA, mean accuracy)."""
    import itertools

    keys = list(grid)
    tried = []
    best: tuple[tuple[float, float], SelectConfig] | None = None
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = type(base)(**(base.to_dict() | dict(zip(keys, values, strict=True))))
        r = train_head(select(name, table, disc, cfg, dynamics=log), table, emb, train_cfg, pseudo_groups=pseudo)
        tried.append({**dict(zip(keys, values, strict=True)), "val_acc_wg": r.val.acc_wg, "val_acc_avg": r.val.acc_avg})
        logger.info("tuning %s %s: val acc_wg %.4f", name, tried[-1], r.val.acc_wg)
        if best is None or (r.val.acc_wg, r.val.acc_avg) > best[0]:
            best = ((r.val.acc_wg, r.val.acc_avg), cfg)
    assert best is not None
    chosen = {k: getattr(best[1], k) for k in keys}
    groups = "true" if table.has_groups else "classes (val has no groups)"
    return best[1], {"grid": {k: list(v) for k, v in grid.items()}, "tried": tried, "chosen": chosen, "groups": groups}


def run(
    data: str | Path | SampleTable,
    *,
    method: str,
    out: str | Path,
    encoder: str | None = None,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    workspace: str | Path | None = None,
    device: str = "auto",
    on_stage: Any = None,
) -> dict[str, Any]:
    """The whole pipeline: embed → dynamics → detect → select → fine-tune → evaluate → report.

    Every stage is cached (embeddings, dynamics and discovery by content in ``workspace`` or
    ``$CURATE_CACHE_DIR``; the training run resumes from its checkpoints in ``out/train``), so a rerun
    after a crash resumes after the last finished stage. Writes ``out/metrics.json`` (test
    ``acc_avg``, ``acc_wg``, ``adj_acc_avg``, ``groups``, plus full val/test results),
    ``out/manifest.parquet`` (+ ``manifest.json`` provenance), ``out/scores.parquet``
    (``sample_id, conflict_score, pseudo_group``), ``out/predictions.parquet`` and ``out/report.md``.

    Args:
        method: one of :data:`RUN_METHODS`; ``dfr``, ``groupdro`` and ``oracle`` use true group labels
            (the metrics say so).
        encoder: default ``efficientnet-lite0`` for images, ``minilm`` for text.
        config: per-stage settings (see :func:`read_run_config`).
        on_stage: called as ``on_stage(index, name, detail)`` when a stage finishes (progress).

    Returns:
        The metrics written to ``out/metrics.json``.
    """
    import time

    from curate._core.io import atomic_path, write_json_atomic

    started = time.perf_counter()
    if method not in RUN_METHODS:
        raise ConfigError.bad_param("run()", "method", f"one of {', '.join(RUN_METHODS)}", method)
    sections = _check_sections(config or {}, "run config")
    selection, trainer, group_labels = RUN_METHODS[method]
    out = Path(out)

    def stage(name: str, detail: str) -> None:
        k = RUN_STAGES.index(name) + 1
        logger.info("[%d/%d] %s: %s", k, len(RUN_STAGES), name, detail)
        if on_stage is not None:
            on_stage(k, name, detail)

    table = data if isinstance(data, SampleTable) else load_dataset(data)
    if group_labels != LABEL_FREE and not table.has_groups:
        raise InputDataError(
            f"method {method!r} needs true group labels, and this dataset has none",
            file=table.where,
            fix="pick a label-free method: " + ", ".join(m for m, v in RUN_METHODS.items() if v[2] == LABEL_FREE),
        )
    # every setting is checked before any work starts
    proxy = _make(ProxyConfig, "dynamics", sections["dynamics"], seed=seed)
    sel_name = SELECTORS.entry(selection).name
    sel_cfg = _make(CONFIGS[sel_name], "select", sections["select"], seed=seed)
    fields = sections["finetune"]
    train_cfg: Any
    if trainer == "masktune":
        train_cfg = _make(MaskTuneConfig, "finetune", fields, seed=seed)
    elif trainer == "contrastive":
        train_cfg = _make(ContrastiveConfig, "finetune", fields, seed=seed)
    else:
        # GroupDRO runs only on datasets with true groups (checked above): FinetuneConfig's default groups="true"
        train_cfg = _make(FinetuneConfig, "finetune", fields, method=trainer, seed=seed)
    stage("load", f"{table.name}: {len(table)} samples ({table.modality})")
    encoder = encoder or DEFAULT_ENCODERS[table.modality]
    emb = embed(table, encoder, device=device, workspace=workspace, **sections["embed"])
    stage("embed", f"{encoder}: {emb.dim}-d")
    log = record_dynamics(table, emb, config=proxy, device=device, workspace=workspace)
    stage("dynamics", f"{proxy.epochs} epochs of a {proxy.head} proxy")
    root = None if workspace is None else Workspace(workspace).path
    detect_params = {"detector": RUN_DETECTORS.get(method, DEFAULT_DETECTOR)} | sections["detect"]
    chosen_by: dict[str, Any] | None = None
    if sel_name in PSEUDO_GROUP_SELECTIONS and "detector" not in sections["detect"] and table.has_groups:
        head_cfg = train_cfg if isinstance(train_cfg, FinetuneConfig) else FinetuneConfig(seed=seed)
        disc, chosen_by = _choose_detector(table, emb, log, proxy, sections["detect"], root, head_cfg)
    else:
        disc = _cached_detect(table, emb, log, proxy, detect_params, root)
    stage("detect", f"{disc.detector}: {disc.scores[S.PSEUDO_GROUP].n_unique()} pseudo-groups")
    pseudo = disc.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP)
    tuning: dict[str, Any] | None = None
    grid = {k: v for k, v in RUN_GRIDS.get(sel_name, {}).items() if k not in sections["select"]}
    if grid and trainer == "erm":
        sel_cfg, tuning = _tune_selection(table, emb, log, disc, sel_name, sel_cfg, grid, train_cfg, pseudo)
        stage("select", f"tuned {tuning['chosen']} on validation worst-group accuracy ({tuning['groups']} groups)")
    manifest = select(sel_name, table, disc, sel_cfg, dynamics=log)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, out / "manifest.parquet")
    with atomic_path(out / "scores.parquet") as tmp:
        disc.scores.select(S.SAMPLE_ID, CONFLICT, S.PSEUDO_GROUP).write_parquet(tmp)
    stage("select", f"{sel_name}: {manifest.frame.height} rows")
    extra: dict[str, Any] = {}
    preds: pl.DataFrame | None = None
    if trainer == "masktune":
        mt = masktune(manifest, table, train_cfg)
        val, test, best, config_used = mt.val, mt.test, None, mt.config
        extra = {
            "erm_test": mt.erm_test.to_dict(),
            "selective": {"coverage": mt.coverage, "accuracy": mt.selective_accuracy},
        }
    elif trainer == "contrastive":
        r = contrastive(table, emb, manifest, train_cfg, discovery=disc, device=device, out=out / "train")
        val, test, best, config_used, preds = r.val, r.test, r.best_epoch, r.config, r.predictions
    else:
        r = train_head(manifest, table, emb, train_cfg, pseudo_groups=pseudo, out=out / "train")
        val, test, best, config_used, preds = r.val, r.test, r.best_epoch, r.config, r.predictions
    stage("finetune", f"{trainer}: test acc_wg {test.acc_wg:.4f}, acc_avg {test.acc_avg:.4f}")
    metrics = {
        "method": method,
        "dataset": table.name,
        "encoder": encoder,
        "seed": seed,
        "group_labels": group_labels,
        "acc_avg": test.acc_avg,
        "acc_wg": test.acc_wg,
        "adj_acc_avg": test.adj_acc_avg,
        "groups": test.groups,
        "group_names": test.group_names,
        "detector": disc.detector,
        "detection_auroc": detection_auroc(table, disc) if table.has_groups else None,
        "best_epoch": best,
        "config": config_used,
        "tuning": tuning,
        "detector_choice": chosen_by,
        "manifest": manifest.provenance,
        "val": val.to_dict(),
        "test": test.to_dict(),
        **extra,
    }
    if preds is not None:
        with atomic_path(out / "predictions.parquet") as tmp:
            preds.write_parquet(tmp)
    write_json_atomic(out / "metrics.json", metrics)
    matrix = emb.select(disc.scores[S.SAMPLE_ID], what="discovery").matrix
    write_report(
        [out], out, table=table, scores=disc.scores, embeddings=matrix, embedding_ids=disc.scores[S.SAMPLE_ID].to_list()
    )
    stage("report", str(out / "report.md"))
    metrics["wall_s"] = round(time.perf_counter() - started, 1)
    write_json_atomic(out / "metrics.json", metrics)
    return metrics
