"""``curate datasets``: list, build and check datasets."""

from __future__ import annotations

from pathlib import Path

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

app = typer.Typer(help="List, build and check datasets.", no_args_is_help=True, rich_markup_mode=None)


@app.command("list")
def list_() -> None:
    """List the built-in benchmarks and the dataset layouts curate reads."""
    show(api.list_benchmarks(), "built-in benchmarks (curate datasets make NAME --out DIR)")
    show(api.list_formats(), "dataset layouts (--format)")


@app.command()
def make(
    name: str = typer.Argument(..., help="benchmark name (see `curate datasets list`)"),
    out: Path = typer.Option(..., "--out", "-o", help="folder to create"),
    seed: int = typer.Option(0, help="seed of every random draw"),
    spurious_strength: float = typer.Option(0.95, help="share of each class's train samples in its majority group"),
    n_train: int | None = typer.Option(None, help="train samples (default: the benchmark's)"),
    n_val_per_group: int | None = typer.Option(None, help="val samples per group"),
    n_test_per_group: int | None = typer.Option(None, help="test samples per group"),
    overwrite: bool = typer.Option(False, help="replace an existing --out"),
) -> None:
    """Build a built-in benchmark in the SubpopBench layout and print its group × split table."""
    table = api.make_benchmark(
        name,
        out,
        seed=seed,
        spurious_strength=spurious_strength,
        n_train=n_train,
        n_val_per_group=n_val_per_group,
        n_test_per_group=n_test_per_group,
        overwrite=overwrite,
    )
    show(api.group_counts(table), f"{name}: {len(table)} samples written to {out}")


@app.command()
def check(
    path: Path = typer.Argument(..., help="metadata.csv, a table file, or a dataset folder"),
    format: FormatOpt = "auto",
    columns: ColumnsOpt = None,
    target: TargetOpt = None,
    spurious: SpuriousOpt = None,
    skip_bad: SkipBadOpt = False,
    allow_outside_root: AllowOutsideOpt = False,
) -> None:
    """Read a dataset, check every row and decode every image, and print its group × split table."""
    opts = DatasetOptions(
        format=format,
        columns=columns,
        target=target,
        spurious=spurious,
        skip_bad=skip_bad,
        allow_outside_root=allow_outside_root,
    )
    table, report = load_data(path, opts)
    if report.dropped:
        console.print(f"dropped {len(report.dropped)} bad rows", style="yellow")
    show(api.group_counts(table), f"{table.name} ({report.format} layout): {len(table)} samples, OK")
