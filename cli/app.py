"""The ``curate`` typer app: command groups, ``env``, ``list``, and error → exit-code mapping."""

from __future__ import annotations

import logging
import os
import sys
import traceback

import polars as pl
import typer
from rich.text import Text

from cli import curation, datasets, inspect, pipeline, signals, train
from cli._render import console, err_console, show
from curate import api
from curate._core.progress import setup_logging
from curate.errors import CurateError

app = typer.Typer(
    name="curate",
    help="Find and remove spurious correlations from training data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help text is literal: "[embed]" is a TOML table, not markup
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
app.command()(inspect.inspect)
app.command()(train.finetune)
app.command()(train.evaluate)
app.command()(train.report)
app.command()(pipeline.run)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging"),
    debug: bool = typer.Option(False, "--debug", help="on an error, print the Python traceback too"),
) -> None:
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


def _click_classes(name: str) -> tuple[type[BaseException], ...]:
    """click's exception class ``name`` (``ClickException``, ``Exit``) from click, from the click the
    installed typer may vendor, and typer's own of that name."""
    import click

    vendored = getattr(getattr(typer, "_click", None), "exceptions", None)
    found = (getattr(m, name, None) for m in (click.exceptions, vendored, typer))
    return tuple(dict.fromkeys(c for c in found if isinstance(c, type) and issubclass(c, BaseException)))


def _usage_line(e: BaseException) -> str:
    """One line for a click usage error: the message, then where to read the usage."""
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    ctx = getattr(e, "ctx", None)
    where = f"`{ctx.command_path} --help`" if ctx is not None else "`curate --help`"
    return f"{' '.join(message.split())} (see {where})"


def _os_line(e: OSError) -> str:
    """One line for an OS error: what failed and on which path."""
    what = e.strerror or type(e).__name__
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(map(str, paths))}" if paths else str(e) or what


def error_line(e: BaseException) -> tuple[str, int]:
    """The one error line and exit code for any exception escaping a command (2 for usage errors)."""
    if isinstance(e, CurateError):
        return str(e), e.exit_code
    if isinstance(e, _click_classes("ClickException")):
        code = int(getattr(e, "exit_code", 2))
        return _usage_line(e), 2 if code == 2 else code
    if isinstance(e, OSError):
        return _os_line(e), 1
    if isinstance(e, MemoryError):
        return "out of memory; lower the batch size or the data size", 1
    return f"internal error ({type(e).__name__}: {e}); rerun with --debug and report the traceback", 1


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point and the CLI's one error boundary: every error becomes one line on
    stderr and an exit code != 0 (2 for usage errors); ``--debug`` adds the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("CURATE_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]  # accepted anywhere on the line, not only before the command
    try:
        rv = app(args=args, prog_name="curate", standalone_mode=False)
    except SystemExit:
        raise
    except BrokenPipeError:  # `curate ... | head`: the reader left; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("interrupted", style="bold red")
        sys.exit(130)
    except BaseException as e:
        if isinstance(e, _click_classes("Exit")):
            sys.exit(int(getattr(e, "exit_code", 0)))
        if debug:
            traceback.print_exception(e)
        line, code = error_line(e)
        err_console.print(Text("error: ", style="bold red") + Text(line))
        sys.exit(code)
    if isinstance(rv, int) and rv:  # a command's ctx.exit(n) under standalone_mode=False
        sys.exit(rv)


if __name__ == "__main__":
    main()
