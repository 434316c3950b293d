"""``curate embed``, ``curate dynamics``, ``curate cluster``: the signal stages on a workspace."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import typer

from cli._options import (
    AllowOutsideOpt,
    ColumnsOpt,
    DatasetOptions,
    FormatOpt,
    SkipBadOpt,
    SpuriousOpt,
    TargetOpt,
    load_data,
)
from cli._render import console, show
from curate import api


def _table(data: Path, opts: DatasetOptions) -> api.SampleTable:
    """The workspace's dataset when ``data`` is a workspace, else the dataset read with ``opts``."""
    ws = api.Workspace(data)
    return ws.table() if ws.exists else load_data(data, opts)[0]


def embed(
    data: Path = typer.Argument(..., help="dataset (metadata.csv, table, folder) or an existing workspace"),
    encoder: str | None = typer.Option(
        None,
        "--encoder",
        "-e",
        help="encoder spec (see `curate list encoders`); default: efficientnet-lite0 for images, minilm for text",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="workspace folder"),
    format: FormatOpt = "auto",
    columns: ColumnsOpt = None,
    target: TargetOpt = None,
    spurious: SpuriousOpt = None,
    skip_bad: SkipBadOpt = False,
    allow_outside_root: AllowOutsideOpt = False,
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    batch_size: int = typer.Option(64, help="samples per forward pass"),
    num_workers: int = typer.Option(0, help="DataLoader workers for image decoding"),
    float16: bool = typer.Option(False, help="store float16 on disk"),
    cache: bool = typer.Option(True, help="reuse a cached result (--no-cache recomputes)"),
    engine: str = typer.Option("local", help="local, or ray (Ray Data actors; RAY_ADDRESS or a local cluster)"),
) -> None:
    """Embed every sample with a pretrained encoder into the workspace (cached by content)."""
    opts = DatasetOptions(
        format=format,
        columns=columns,
        target=target,
        spurious=spurious,
        skip_bad=skip_bad,
        allow_outside_root=allow_outside_root,
    )
    table = _table(data, opts)
    emb = api.embed(
        table,
        encoder,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        cache=cache,
        workspace=out,
        float16=float16,
        engine=engine,
    )
    console.print(f"{len(emb)} x {emb.dim} embeddings ({emb.meta['encoder']}) in workspace {out}")


def dynamics(
    workspace: Path = typer.Argument(..., help="workspace folder (from `curate embed`)"),
    encoder: str | None = typer.Option(None, "--encoder", "-e", help="which embeddings (default: the latest recorded)"),
    proxy: str = typer.Option(
        "linear", help="linear or mlp: a head on the embeddings; network: the backbone fine-tuned on the train split"
    ),
    backbone: str | None = typer.Option(None, help="network proxy: backbone (default: the embeddings' encoder)"),
    train_from: str = typer.Option("all", help="network proxy: the stage from which layers train"),
    image_size: int | None = typer.Option(None, help="network proxy: input size (default: 96 on CPU, native on GPU)"),
    hidden: int = typer.Option(256, help="MLP hidden width"),
    epochs: int | None = typer.Option(
        None, help="training epochs (default: 30 for a head, as a run's final head; the backbone's for network)"
    ),
    lr: float | None = typer.Option(None, help="learning rate (default: 1e-3 for a head, the backbone's for network)"),
    weight_decay: float | None = typer.Option(None, help="weight decay (default: 1e-4 for a head)"),
    batch_size: int | None = typer.Option(None, help="batch size (default: 128 for a head)"),
    runs: int = typer.Option(1, help="independent runs (EL2N is averaged over them)"),
    seed: int = typer.Option(0, help="seed"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    cache: bool = typer.Option(True, help="reuse a finished recording"),
) -> None:
    """Record per-sample training dynamics (a proxy head on the embeddings, or the fine-tuned network) and
    write every dynamics score."""
    given = {"epochs": epochs, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size}
    given = {k: v for k, v in given.items() if v is not None}
    if proxy == "network":
        ws = api.Workspace(workspace)
        table = ws.table()
        if backbone is None:
            _, emb, _, _ = api.workspace_signals(workspace, encoder)
            backbone = str(emb.meta.get("encoder"))
        cfg = api.FinetuneConfig(backbone=backbone, train_from=train_from, image_size=image_size, seed=seed, **given)
        log = api.record_network_dynamics(table, config=cfg, runs=runs, device=device, cache=cache, workspace=ws)
        folder = api.Workspace(workspace).lookup("dynamics", backbone)
        what = f"fine-tuned {backbone}; eval-mode passes in {folder}/eval (EL2N) and {folder}/outputs (SPARE)"
    else:
        table, emb, _, _ = api.workspace_signals(workspace, encoder)
        pcfg = api.ProxyConfig(head=proxy, hidden=hidden, runs=runs, seed=seed, **given)
        log = api.record_dynamics(table, emb, config=pcfg, device=device, cache=cache, workspace=workspace)
        what = f"{proxy} proxy"
    scores = api.score_dynamics(log)
    out = api.write_scores(workspace, "dynamics", scores)
    console.print(
        f"{log.frame.height} records ({len(log.runs)} run(s) x {log.n_epochs} epochs, {what}); scores in {out}"
    )
    show(api.summarize_by_group(table, scores), "mean score by group (train split)")


def cluster(
    workspace: Path = typer.Argument(..., help="workspace folder (from `curate embed`)"),
    encoder: str | None = typer.Option(None, "--encoder", "-e", help="which embeddings (default: the latest recorded)"),
    k: int | None = typer.Option(None, help="clusters per class (default: chosen by silhouette)"),
    k_max: int = typer.Option(8, help="largest k tried by silhouette"),
    seed: int = typer.Option(0, help="seed"),
    index_backend: str = typer.Option("auto", help="auto, faiss-cpu or faiss-gpu"),
    cache: bool = typer.Option(True, help="reuse a cached result"),
    engine: str = typer.Option("local", help="local, or ray (one task per class)"),
) -> None:
    """Spherical k-means within each class of the train split (FAISS); print the cluster summary."""
    table, emb, _, _ = api.workspace_signals(workspace, encoder)
    assign, summary = api.cluster(
        table,
        emb,
        config=api.KMeansConfig(k=k, k_max=k_max, seed=seed),
        index_backend=index_backend,
        cache=cache,
        workspace=workspace,
        engine=engine,
    )
    if table.has_groups:
        comp = (
            assign.join(table.frame.select("sample_id", "group"), on="sample_id")
            .group_by("cluster")
            .agg(
                pl.col("group").mode().first().alias("main_group"),
                (pl.col("group") == pl.col("group").mode().first()).mean().alias("purity"),
            )
        )
        summary = summary.join(comp, on="cluster").sort("cluster")
    show(summary, f"clusters of {len(assign)} train samples")
