"""``curate inspect``: the top-flagged samples of a workspace's detection, in the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import typer

from cli._render import show
from curate import api
from curate.errors import ConfigError

FORMATS = ("table", "json")


def inspect(
    workspace: Path = typer.Argument(..., help="workspace (after `curate detect` or `curate run --workspace`)"),
    top: int = typer.Option(20, "--top", "-n", help="how many samples to list"),
    group: int | None = typer.Option(None, "--group", "-g", help="only this pseudo-group's samples"),
    detector: str | None = typer.Option(
        None, "--detector", "-d", help="which recorded detection (default: the current one, the latest recorded)"
    ),
    manifest: Path | None = typer.Option(
        None, "--manifest", "-m", help="a manifest: show what it did to each sample and its review decisions"
    ),
    format: str = typer.Option("table", "--format", help="table (rich) or json (one object per sample, in a list)"),
) -> None:
    """List the samples most likely to carry the shortcut (highest conflict score first), with what a
    manifest and a reviewer decided about each."""
    if top < 1:
        raise ConfigError.bad_param("inspect", "--top", "an integer >= 1", top)
    if format not in FORMATS:
        raise ConfigError.bad_param("inspect", "--format", f"one of {', '.join(FORMATS)}", format)
    name, frame = api.inspect(workspace, top=top, group=group, detector=detector, manifest=manifest)
    if format == "json":
        typer.echo(json.dumps({"detector": name, "samples": frame.to_dicts()}, indent=2, ensure_ascii=False))
        return
    where = "" if group is None else f" of pseudo-group {group}"
    shown = frame.with_columns(pl.col(c).fill_null("") for c in ("action", api.REVIEW_COLUMN))
    show(
        shown,
        f"detection {name!r}: top {frame.height} flagged train samples{where} (higher score = more likely bias-conflicting)",
    )
