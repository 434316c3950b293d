"""Stage 3, dynamics: per-sample training signals from a proxy head on the embeddings, or from the
pretrained network fine-tuned on the train split (same ``DynamicsLog`` shards either way), and the
scorers over them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.cache import fingerprint, resumable_stage
from curate._core.device import resolve_device
from curate._core.seed import derive_seed
from curate.data import SampleTable
from curate.data.workspace import Workspace
from curate.dynamics import SCORERS, DynamicsLog, ProxyConfig, train_proxy
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError
from curate.finetune import FinetuneConfig, TrainRequest, train
from curate.pipeline._common import as_workspace, stage_root, version
from curate.select import SELECTORS, SelectConfig

# 2: a recording keeps eval-mode outputs at the early epoch (outputs/: SPARE); 3: at each of SPARE's
# candidate epochs (curate.dynamics.log.output_epochs), which `curate run` tunes on validation
DYNAMICS_VERSION = 3
NETWORK_DYNAMICS_VERSION = 3


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
    root, ws = stage_root(workspace, table)
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
        name = str(embeddings.meta.get("encoder", "embeddings"))
        ws.record("dynamics", name, folder, config=cfg.to_dict(), proxy=cfg.head)
    return DynamicsLog.read(folder)


def record_network_dynamics(
    table: SampleTable,
    *,
    config: FinetuneConfig,
    runs: int = 1,
    device: str = "auto",
    cache: bool = True,
    workspace: str | Path | Workspace | None = None,
) -> DynamicsLog:
    """Fine-tune ``config.backbone`` (ERM) on the whole train split and record its dynamics.

    The log has the same shards as the proxy head's (``run=R/epoch=E.parquet``: logits seen during
    training), plus an eval-mode pass over the train split at ``config.eval_fraction`` of training
    in ``eval/run=R/`` (read it with :func:`eval_dynamics`; EL2N as the data-pruning authors take
    it) and the eval-mode softmax outputs at SPARE's candidate epochs in ``outputs/run=R/``
    (:attr:`DynamicsLog.outputs`: SPARE clusters them). Each of ``runs`` independent runs has its
    own seed. Cached and resumable like every stage.

    Returns:
        The in-training :class:`DynamicsLog` of every run.

    Raises:
        ConfigError: ``config`` is not a network backbone, or ``runs`` < 1.
    """
    if not config.is_network:
        raise ConfigError("record_network_dynamics(): config.backbone must be a network (e.g. efficientnet-lite0)")
    if runs < 1:
        raise ConfigError.bad_param("record_network_dynamics()", "runs", "an integer >= 1", runs)
    dev = resolve_device(device)
    cfg = replace(config, method="erm")
    manifest = SELECTORS.get("keep-all")(table, None, SelectConfig(), version=version())
    root, ws = stage_root(workspace, table)
    parts = (table.fingerprint(), cfg.to_dict(), runs, dev.split(":")[0])

    def compute(folder: Path) -> None:
        for r in range(runs):
            run_cfg = cfg if r == 0 else replace(cfg, seed=derive_seed(cfg.seed, "proxy-run", r) % 2**31)
            request = TrainRequest(
                table, manifest, device=dev, out=folder / "train" / f"run{r}", dynamics_dir=folder, dynamics_run=r
            )
            train("erm", request, run_cfg)

    folder = resumable_stage("network-dynamics", NETWORK_DYNAMICS_VERSION, parts, compute, enabled=cache, root=root)
    if ws is not None:
        ws.record("dynamics", cfg.backbone, folder, config=cfg.to_dict(), proxy="network", runs=runs)
    return DynamicsLog.read(folder)


def eval_dynamics(folder: str | Path) -> DynamicsLog:
    """The eval-mode pass of a dynamics recording (``folder/eval``).

    Raises:
        InputDataError: the recording has no eval pass.
    """
    log = DynamicsLog.read(folder).eval_pass
    if log is None:
        raise InputDataError("this dynamics recording has no eval-mode pass", file=folder, fix="record it again")
    return log


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


def write_scores(workspace: str | Path | Workspace, name: str, scores: pl.DataFrame) -> Path:
    """Write a ``[sample_id, <name>_score...]`` frame to ``WS/scores/<name>.parquet`` atomically."""
    from curate._core.io import atomic_path

    ws = as_workspace(workspace)
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
