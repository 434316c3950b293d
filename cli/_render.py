"""Rendering helpers shared by the commands: polars frames as rich tables, errors as one line."""

from __future__ import annotations

import os
import sys

import polars as pl
from rich.console import Console
from rich.table import Table
from rich.text import Text

# User text (ids, paths, TOML names) is printed literally: no markup, no highlighting; messages and
# errors never wrap (a path broken over two lines cannot be copied; tables still fit the width).
# Piped to a file or a log, tables get 160 columns (rich's default there is 80); a terminal's own
# width, or $COLUMNS, wins.
_PIPED_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160
console = Console(markup=False, highlight=False, width=_PIPED_WIDTH, soft_wrap=True)
err_console = Console(stderr=True, markup=False, highlight=False, soft_wrap=True)


def frame_table(df: pl.DataFrame, title: str | None = None) -> Table:
    """A rich table of a polars frame (floats with 3 decimals)."""
    t = Table(title=title, title_justify="left")
    for c in df.columns:
        t.add_column(c, justify="right" if df.schema[c].is_numeric() else "left")
    for row in df.iter_rows():
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else Text(str(v)) for v in row])
    return t


def show(df: pl.DataFrame, title: str | None = None) -> None:
    """Print a frame as a table."""
    console.print(frame_table(df, title))
