"""``curate detect``, the selection commands (``prune``, ``mix``, ``balance``, ``select``) and ``export``."""

from __future__ import annotations

from pathlib import Path

import typer

from cli._render import console, show
from curate import api
from curate.errors import ConfigError


def detect(
    workspace: Path = typer.Argument(..., help="workspace (after `curate embed` and `curate dynamics`)"),
    detector: str = typer.Option(api.DEFAULT_DETECTOR, "--detector", "-d", help="see `curate list detectors`"),
    encoder: str | None = typer.Option(None, "--encoder", "-e", help="which embeddings (default: the latest recorded)"),
) -> None:
    """Score every train sample's chance of being bias-conflicting and infer pseudo-groups."""
    table, emb, log, cfg = api.workspace_signals(workspace, encoder)
    d = api.detect(table, embeddings=emb, dynamics=log, detector=detector, proxy_config=cfg)
    folder = api.save_discovery(workspace, d)
    show(d.clusters, f"{d.detector}: pseudo-groups of {d.scores.height} train samples (saved in {folder})")
    if table.has_groups:
        console.print(f"minority-detection AUROC against the true groups: {api.detection_auroc(table, d):.4f}")


def _select(
    method: str,
    workspace: Path,
    out: Path,
    detector: str | None,
    config: api.SelectConfig | None,
    format: str | None,
    review: tuple[Path | None, Path | None, Path | None] = (None, None, None),
) -> None:
    table, _, log, _ = api.workspace_signals(workspace)
    needs_discovery = method not in ("keep-all", "oracle") and not (
        isinstance(config, api.PruneConfig) and (config.attribute is not None or config.setting == "unidentifiable")
    )
    discovery = None
    if needs_discovery:
        name = api.current_detector(workspace, detector)
        discovery = api.load_discovery(workspace, name)
        console.print(f"using detection {name!r}")
    m = api.select(method, table, discovery, config, dynamics=log)
    keep, drop, review_file = review
    m = api.review(m, table, discovery, keep=keep, drop=drop, review_file=review_file)
    path = api.write_manifest(m, out, format=format)
    console.print(
        f"{method}: {len(m)} rows ({m.provenance['counts']['dropped']} train samples left out, "
        f"{m.provenance['counts']['mixed']} mixed) -> {path}"
    )
    if "review" in m.provenance:
        c = m.provenance["review"]["counts"]
        api.record_review(workspace, m, path)
        console.print(
            f"review: {c['kept']} kept ({c['re_added']} re-added), {c['dropped']} dropped "
            f"({c['rows_removed']} rows removed, {c['unmixed']} unmixed); recorded in the provenance"
        )
    if table.has_groups:
        bal = api.group_balance(m, table)
        console.print(
            f"distance from group balance (total variation): input {bal['input_tv']:.3f} -> manifest {bal['manifest_tv']:.3f}"
        )


OUT = typer.Option(
    ..., "--out", "-o", help="manifest path (.parquet; or .csv / .jsonl, with the provenance in PATH.json)"
)
DETECTOR = typer.Option(
    None, "--detector", "-d", help="which recorded detection (default: the current one, the latest recorded)"
)
KEEP = typer.Option(None, "--keep", help="reviewer's decision: ids to keep (one a line; re-added with weight 1)")
DROP = typer.Option(None, "--drop", help="reviewer's decision: ids to leave out of the manifest (one a line)")
REVIEW = typer.Option(None, "--review", help="a review CSV with the columns sample_id,decision (keep or drop)")
FORMAT = typer.Option(None, "--format", help="parquet, csv or jsonl (default: from the suffix)")
SEED = typer.Option(0, help="seed")


def prune(
    workspace: Path = typer.Argument(..., help="workspace"),
    out: Path = OUT,
    fraction: float = typer.Option(0.5, help="share p of each class's carriers to prune, hardest first"),
    setting: str = typer.Option(
        "identifiable",
        help="identifiable: the carriers are each class's majority group (its largest pseudo-group, or its most "
        "common value of --attribute); unidentifiable: every sample of the class (equal counts per class)",
    ),
    attribute: str | None = typer.Option(None, help="dataset column naming the spurious attribute (no discovery)"),
    order: str = typer.Option("hardest", help="hardest (the method); easiest or random (the paper's ablation)"),
    epoch: int | None = typer.Option(None, help="EL2N epoch (default: the eval-mode pass at 40% of training)"),
    detector: str | None = DETECTOR,
    format: str | None = FORMAT,
    seed: int = SEED,
    keep: Path | None = KEEP,
    drop: Path | None = DROP,
    review: Path | None = REVIEW,
) -> None:
    """Data pruning (ICLR 2025): drop the hardest p of each class's spurious-feature carriers (early EL2N)."""
    cfg = api.PruneConfig(fraction=fraction, setting=setting, attribute=attribute, order=order, epoch=epoch, seed=seed)
    _select("prune", workspace, out, detector, cfg, format, (keep, drop, review))


def mix(
    workspace: Path = typer.Argument(..., help="workspace"),
    out: Path = OUT,
    alpha: float = typer.Option(1.0, help="probability that an example is mixed (DISPEL's default: 1.0)"),
    s: float = typer.Option(0.8, help="weight of the group-balanced partner"),
    detector: str | None = DETECTOR,
    format: str | None = FORMAT,
    seed: int = SEED,
    keep: Path | None = KEEP,
    drop: Path | None = DROP,
    review: Path | None = REVIEW,
) -> None:
    """Data mixing: class-balanced rows mixed with same-class partners from a group-balanced set."""
    _select("mix", workspace, out, detector, api.MixConfig(alpha=alpha, s=s, seed=seed), format, (keep, drop, review))


def balance(
    workspace: Path = typer.Argument(..., help="workspace"),
    out: Path = OUT,
    mode: str = typer.Option("reweight", help="reweight, subsample or upsample"),
    groups: str = typer.Option("pseudo", help="pseudo (discovered) or true (the oracle, evaluation only)"),
    minority_share: float | None = typer.Option(
        None,
        "--minority-share",
        help="each class's pseudo-minority = its top share by conflict score (default: the detector's cut; "
        "`curate run` picks it on validation)",
    ),
    detector: str | None = DETECTOR,
    format: str | None = FORMAT,
    seed: int = SEED,
    keep: Path | None = KEEP,
    drop: Path | None = DROP,
    review: Path | None = REVIEW,
) -> None:
    """Balance pseudo-groups (or the true groups with --groups true) by weights or resampling."""
    if groups not in ("pseudo", "true"):
        raise ConfigError.bad_param("balance", "--groups", "'pseudo' or 'true'", groups)
    _select(
        "oracle" if groups == "true" else "balance",
        workspace,
        out,
        detector,
        api.BalanceConfig(mode=mode, minority_share=minority_share, seed=seed),
        format,
        (keep, drop, review),
    )


def select(
    method: str = typer.Argument(..., help="keep-all, oracle, balance, jtt, spare, prune or mix (defaults)"),
    workspace: Path = typer.Argument(..., help="workspace"),
    out: Path = OUT,
    lambda_up: float = typer.Option(50.0, help="jtt: weight of the error set"),
    detector: str | None = DETECTOR,
    format: str | None = FORMAT,
    seed: int = SEED,
    keep: Path | None = KEEP,
    drop: Path | None = DROP,
    review: Path | None = REVIEW,
) -> None:
    """Any registered selection method with its defaults (see `curate list selectors`)."""
    cfg: api.SelectConfig | None = api.JTTConfig(lambda_up=lambda_up, seed=seed) if method == "jtt" else None
    _select(method, workspace, out, detector, cfg, format, (keep, drop, review))


def export(
    manifest: Path = typer.Argument(..., help="a manifest written by curate"),
    out: Path = typer.Option(..., "--out", "-o", help="target path"),
    format: str | None = FORMAT,
) -> None:
    """Re-write a manifest as Parquet, CSV or JSONL with its provenance (checked against its rows first)."""
    console.print(f"wrote {api.export_manifest(manifest, out, format=format)}")
