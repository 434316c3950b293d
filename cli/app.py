"""The ``curate`` typer app: command groups, ``env``, ``list``, and error → exit-code mapping."""

from __future__ import annotations

import logging
import sys

import polars as pl
import typer

from cli import curation, datasets, pipeline, signals, train
from cli._render import console, err_console, show
from curate import api
from curate._core.progress import setup_logging
from curate.errors import CurateError

app = typer.Typer(
    name="curate",
    help="Find and remove spurious correlations from training data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(datasets.app, name="datasets")
app.command()(signals.embed)
app.command()(signals.dynamics)
app.command()(signals.cluster)
app.command()(curation.detect)
app.command()(curation.prune)
app.command()(curation.mix)
app.command()(curation.balance)
app.command()(curation.select)
app.command()(curation.export)
app.command()(train.finetune)
app.command()(train.evaluate)
app.command()(train.report)
app.command()(pipeline.run)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging")) -> None:
    setup_logging(logging.DEBUG if verbose else logging.INFO)


@app.command()
def env() -> None:
    """Print the versions of curate, torch, faiss, polars and the devices visible here."""
    show(pl.DataFrame({"component": list(api.env_info()), "version": list(api.env_info().values())}))


@app.command("list")
def list_(what: str = typer.Argument(..., help="a registry: " + ", ".join(api.registries()))) -> None:
    """List the names in one registry (benchmarks, formats, ...)."""
    regs = api.registries()
    if what not in regs:
        from curate.errors import UnknownNameError, did_you_mean

        raise UnknownNameError(f"unknown registry {what!r}{did_you_mean(what, regs)} (valid: {', '.join(regs)})")
    for name in regs[what].names():
        console.print(name)


def main() -> None:
    """Console-script entry point: run the app, turning a ``CurateError`` into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except CurateError as e:
        err_console.print(f"[bold red]error:[/bold red] {e}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
