"""``curate finetune`` and ``curate evaluate``: train on a manifest, report worst-group accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import typer

from cli._render import console, show
from curate import api


def finetune(
    workspace: Path = typer.Argument(..., help="workspace (after `curate embed`)"),
    manifest: Path = typer.Option(..., "--manifest", "-m", help="manifest to train on"),
    method: str = typer.Option(
        "erm",
        help="erm, groupdro, dfr; masktune (small CNN on images); contrastive (CLIP-style pair, attributes in words)",
    ),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (metrics, predictions, checkpoints, dynamics)"),
    backbone: str = typer.Option("head", help="head: on the frozen embeddings; cnn: a small CNN on the images"),
    head: str = typer.Option("linear", help="linear or mlp head on the frozen embeddings"),
    epochs: int = typer.Option(30, help="epochs (the best by validation worst-group accuracy is kept)"),
    lr: float = typer.Option(1e-3, help="AdamW learning rate"),
    groups: str = typer.Option("true", help="GroupDRO groups: true or pseudo"),
    spurious: list[str] = typer.Option(
        [], "--spurious", help="contrastive: a spurious attribute in words (repeatable; default: the dataset's)"
    ),
    text_encoder: str | None = typer.Option(None, help="contrastive: prompt tower (default: CLIP's own, else minilm)"),
    encoder: str | None = typer.Option(None, "--encoder", "-e", help="which embeddings (default: the only ones)"),
    seed: int = typer.Option(0, help="seed"),
) -> None:
    """Train a head on a manifest's rows and evaluate it (WILDS metrics) on val and test."""
    table, emb, _, _ = api.workspace_signals(workspace, encoder)
    m = api.read_manifest(manifest, dataset_ids=table.ids)
    if method == "masktune":
        mt = api.masktune(m, table, api.MaskTuneConfig(epochs=epochs, lr=lr, seed=seed), out=out)
        console.print(
            f"masktune on {m.method} manifest: test acc_wg {mt.test.acc_wg:.4f} (ERM {mt.erm_test.acc_wg:.4f}), "
            f"acc_avg {mt.test.acc_avg:.4f}; selective: coverage {mt.coverage:.3f}, accuracy {mt.selective_accuracy:.4f} -> {out}"
        )
        return
    if method == "contrastive":
        ccfg = api.ContrastiveConfig(spurious=tuple(spurious), epochs=epochs, seed=seed)
        r = api.contrastive(table, emb, m, ccfg, text_encoder=text_encoder, out=out)
    else:
        cfg = api.FinetuneConfig(
            method=method, backbone=backbone, head=head, epochs=epochs, lr=lr, groups=groups, seed=seed
        )
        r = api.finetune(table, emb, m, cfg, out=out)
    console.print(
        f"{method} on {m.method} manifest: best epoch {r.best_epoch}; "
        f"test acc_wg {r.test.acc_wg:.4f}, acc_avg {r.test.acc_avg:.4f} ({r.test.group_source} groups) -> {out}"
    )


def evaluate(run: Path = typer.Argument(..., help="run folder written by `curate finetune`")) -> None:
    """Print a run's validation and test metrics."""
    path = run / "metrics.json"
    if not path.exists():
        from curate.errors import InputDataError

        raise InputDataError("no metrics.json", file=run, fix="run `curate finetune ... --out RUN` first")
    metrics = json.loads(path.read_text())
    rows = []
    for split in ("val", "test"):
        r = metrics[split]
        rows.append(
            {
                "split": split,
                "acc_avg": r["acc_avg"],
                "acc_wg": r["acc_wg"],
                "adj_acc_avg": r["adj_acc_avg"],
                "acc_worst_class": r["acc_worst_class"],
                "groups": r["group_source"],
            }
        )
    show(
        pl.DataFrame(rows),
        f"{metrics['method']} on {metrics['manifest'].get('method')} (best epoch {metrics['best_epoch']})",
    )
    groups = metrics["test"]["groups"]
    names = metrics["test"].get("group_names", {})
    show(
        pl.DataFrame(
            {"group": list(groups), "name": [names.get(g, "") for g in groups], "test accuracy": list(groups.values())}
        )
    )


def report(
    runs: list[Path] = typer.Argument(..., help="run folders written by `curate finetune`"),
    out: Path = typer.Option(..., "--out", "-o", help="report folder (report.md + PNG plots)"),
    workspace: Path | None = typer.Option(None, help="workspace: adds score histograms and an embedding map"),
) -> None:
    """Write a Markdown report comparing runs, with per-group accuracy bars and discovery plots."""
    console.print(f"wrote {api.report(list(runs), out, workspace=workspace)}")
