"""``curate finetune`` and ``curate evaluate``: train on a manifest, report worst-group accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import typer

from cli._render import console, show
from curate import api


def _check_method(method: str) -> None:
    """Refuse an unknown ``--method`` before any work, with the closest name and every valid one.

    Raises:
        UnknownNameError: not a fine-tune method (a ``curate run`` method is pointed there).
    """
    names = api.FINETUNE_METHODS.names()
    if method in names:
        return
    from curate.errors import UnknownNameError, did_you_mean

    hint = f"; {method!r} is a `curate run -m {method}` method" if method in api.RUN_METHODS else ""
    raise UnknownNameError(
        f"unknown fine-tune method {method!r}{did_you_mean(method, names)}{hint} (valid: {', '.join(names)})"
    )


def finetune(
    workspace: Path = typer.Argument(..., help="workspace (holds the dataset; heads also need `curate embed`)"),
    manifest: Path = typer.Option(..., "--manifest", "-m", help="manifest to train on"),
    method: str = typer.Option("erm", help="a fine-tune method: " + ", ".join(api.FINETUNE_METHODS.names())),
    out: Path = typer.Option(..., "--out", "-o", help="run folder (metrics, predictions, checkpoints, dynamics)"),
    backbone: str = typer.Option(
        "head",
        help="head: a head on the frozen embeddings; or a network to fine-tune: efficientnet-lite0, minilm, "
        "torchvision:<arch>:<weights>, hf-text:<model>, clip:<model>, small-cnn (see `curate list backbones`)",
    ),
    train_from: str = typer.Option("all", help="network: the stage from which layers train (others frozen)"),
    image_size: int | None = typer.Option(None, help="network: input size (default: 96 on CPU, native on GPU)"),
    head: str = typer.Option("linear", help="head backbone: linear or mlp"),
    epochs: int | None = typer.Option(None, help="epochs (default: the backbone's; the best by val WGA is kept)"),
    lr: float | None = typer.Option(None, help="learning rate (default: the backbone's, from the papers)"),
    batch_size: int | None = typer.Option(None, help="batch size (default: the backbone's)"),
    augment: bool = typer.Option(False, help="network: random resized crops and flips"),
    groups: str | None = typer.Option(
        None,
        help="GroupDRO's groups: true (default) or pseudo; dispel's group-labelled set: pseudo (the train "
        "pseudo-groups, default), train (true train groups) or val (true val groups)",
    ),
    spurious: list[str] = typer.Option(
        [], "--spurious", help="contrastive: a spurious attribute in words (repeatable; default: the dataset's)"
    ),
    text_encoder: str | None = typer.Option(None, help="contrastive: prompt tower (default: CLIP's own, else minilm)"),
    encoder: str | None = typer.Option(None, "--encoder", "-e", help="which embeddings (default: the latest recorded)"),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N"),
    seed: int = typer.Option(0, help="seed"),
) -> None:
    """Train on a manifest's rows (a head, or the pretrained network fine-tuned) and evaluate it on val and test."""
    _check_method(method)
    needs_embeddings = method in ("contrastive", "dispel") or (backbone == "head" and method != "masktune")
    if needs_embeddings:
        table, emb, _, _ = api.workspace_signals(workspace, encoder)
    else:
        table, emb = api.Workspace(workspace).table(), None
    m = api.read_manifest(manifest, dataset_ids=table.ids)
    common = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed}
    common = {k: v for k, v in common.items() if v is not None}
    cfg: object
    if method == "contrastive":
        cfg = api.ContrastiveConfig(spurious=tuple(spurious), text_encoder=text_encoder, **common)
    elif method == "dispel":
        cfg = api.DispelConfig(source=groups or "pseudo", seed=seed)
    elif method == "masktune":
        net = backbone if backbone != "head" else "efficientnet-lite0"
        cfg = api.MaskTuneConfig(backbone=net, train_from=train_from, image_size=image_size, augment=augment, **common)
    else:
        cfg = api.FinetuneConfig(
            method=method, backbone=backbone, head=head, train_from=train_from, image_size=image_size,
            augment=augment, groups=groups or "true", **common,
        )  # fmt: skip
    ws = api.Workspace(workspace)
    discovery = api.load_discovery(ws) if ws.outputs("detect") else None  # the current (latest) detection
    r = api.finetune(table, emb, m, cfg, method=method, discovery=discovery, out=out, device=device)
    extra = ""
    if method == "masktune":
        erm = r.extra["erm_test"]["acc_wg"]
        extra = f" (its ERM: {erm:.4f}); masked pixels {r.extra['masked_share']:.3f}"
    console.print(
        f"{method} ({api.backbone_of(cfg)}) on {m.method} manifest: best epoch {r.best_epoch}; "
        f"test acc_wg {r.test.acc_wg:.4f}{extra}, acc_avg {r.test.acc_avg:.4f} ({r.test.group_source} groups) -> {out}"
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
    out: Path = typer.Option(..., "--out", "-o", help="report folder (report.md + PNG plots, report.html)"),
    workspace: Path | None = typer.Option(
        None, help="workspace: adds its detection (pseudo-groups, flagged samples, score histograms, embedding map)"
    ),
    detector: str | None = typer.Option(
        None, "--detector", help="which of the workspace's detections to show (default: the workspace's current one)"
    ),
) -> None:
    """Write a Markdown report and a self-contained HTML report comparing runs and showing the discovery."""
    md = api.report(list(runs), out, workspace=workspace, detector=detector)
    console.print(f"wrote {md} and {md.with_name('report.html')}")
