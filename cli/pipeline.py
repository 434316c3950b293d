"""``curate run``: the whole pipeline (embed → dynamics → detect → select → fine-tune → evaluate → report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def run(
    data: Path = typer.Argument(..., help="dataset: a SubpopBench metadata.csv, a folder, or any supported layout"),
    method: list[str] = typer.Option(
        ..., "--method", "-m", help=f"repeatable: {', '.join(api.RUN_METHODS)} (several: one sub-folder each)"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (metrics.json, manifest, scores, report.md)"),
    encoder: str | None = typer.Option(
        None, "--encoder", "-e", help="default: efficientnet-lite0 for images, minilm for text"
    ),
    seed: int = typer.Option(0, help="seed of every stage"),
    config: Path | None = typer.Option(None, help="TOML with [embed] [dynamics] [detect] [select] [finetune] tables"),
    workspace: Path | None = typer.Option(None, help="where cached stages live (default: $CURATE_CACHE_DIR)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    backbone: str = typer.Option(
        "auto",
        help="network: fine-tune the encoder's network as the classifier; head: a head on its frozen embeddings "
        "(fast); auto: network where a GPU is found, head on the CPU",
    ),
    select_on: str = typer.Option(
        "val-groups",
        help="model selection's worst-group accuracy on val over: val-groups (true, as the papers), "
        "pseudo-groups (the default detector's, one partition for every candidate) or classes "
        "(both: no group labels anywhere)",
    ),
    format: FormatOpt = "auto",
    columns: ColumnsOpt = None,
    target: TargetOpt = None,
    spurious: SpuriousOpt = None,
    skip_bad: SkipBadOpt = False,
    allow_outside_root: AllowOutsideOpt = False,
) -> None:
    """Run curation end to end and report worst-group accuracy on the test split."""
    settings = api.read_run_config(config) if config is not None else None
    # every name and option is checked before the dataset is read, and the dataset before any work
    options: dict[str, Any] = {
        "encoder": encoder,
        "device": device,
        "backbone": backbone,
        "select_on": select_on,
        "seed": seed,
    }
    folders = [out / m if len(method) > 1 else out for m in method]
    api.check_run(method, config=settings, **options, outs=folders)
    opts = DatasetOptions(
        format=format,
        columns=columns,
        target=target,
        spurious=spurious,
        skip_bad=skip_bad,
        allow_outside_root=allow_outside_root,
    )
    table, _ = load_data(data, opts)
    api.check_run(method, config=settings, **options, table=table)
    with api.run_lock(out):  # a second run into --out fails here, at once
        rows = [_run_one(table, m, f, settings, workspace, options) for m, f in zip(method, folders, strict=True)]
    show(api.run_table(rows), f"{table.name}: test worst-group accuracy (seed {seed})")


def _run_one(
    table: Any,
    m: str,
    folder: Path,
    settings: dict[str, dict[str, Any]] | None,
    workspace: Path | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    """One method's run into ``folder``: its metrics."""
    console.print(f"{m} -> {folder}", style="bold")
    return api.run(table, method=m, out=folder, config=settings, workspace=workspace, **options)
