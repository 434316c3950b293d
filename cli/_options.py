"""The dataset options, defined once: every command that reads a dataset path takes the same
``--format``, ``--columns``, ``--target``, ``--spurious``, ``--skip-bad`` and ``--allow-outside-root``
(so an error that advises one of them is right whichever command printed it).

A command declares them as parameters typed with the ``*Opt`` aliases below and loads with
:func:`load_data`::

    def check(path: Path, format: FormatOpt = "auto", columns: ColumnsOpt = None, ...) -> None:
        table, report = load_data(path, DatasetOptions(format=format, columns=columns, ...))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from curate import api

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="dataset layout (see `curate datasets list`)")]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--columns", help="column map for a table: sample_id=id,label=y,path=file (or text=col)"),
]
TargetOpt = Annotated[str | None, typer.Option("--target", help="CelebA: the attribute used as the label")]
SpuriousOpt = Annotated[str | None, typer.Option("--spurious", help="CelebA: the attribute used as the group")]
SkipBadOpt = Annotated[bool, typer.Option("--skip-bad", help="drop bad rows (each is reported) instead of failing")]
AllowOutsideOpt = Annotated[
    bool,
    typer.Option(
        "--allow-outside-root",
        help="read image paths that point outside the dataset's folder (../x.png, absolute paths, symlinks)",
    ),
]


def parse_columns(spec: str | None) -> dict[str, str] | None:
    """``"sample_id=img_id,label=y"`` → ``{"sample_id": "img_id", "label": "y"}``.

    Raises:
        typer.BadParameter: a part is not ``canonical=column``.
    """
    if not spec:
        return None
    out = {}
    for part in spec.split(","):
        if "=" not in part:
            raise typer.BadParameter(f"expected canonical=column, got {part!r}", param_hint="--columns")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@dataclass(frozen=True, kw_only=True)
class DatasetOptions:
    """The dataset options of one command line, as given.

    Attributes:
        format: a layout name or ``auto``.
        columns: the ``--columns`` text (``canonical=column,...``), or None.
        target: CelebA's label attribute, or None for the layout's default.
        spurious: CelebA's group attribute, or None for the layout's default.
        skip_bad: drop bad rows instead of failing on the first.
        allow_outside_root: read paths outside the dataset root.
    """

    format: str = "auto"
    columns: str | None = None
    target: str | None = None
    spurious: str | None = None
    skip_bad: bool = False
    allow_outside_root: bool = False

    def layout_options(self) -> dict[str, Any]:
        """The layout options that were given (``target``, ``spurious``), for ``api.check_dataset``."""
        return {k: v for k, v in (("target", self.target), ("spurious", self.spurious)) if v is not None}


def load_data(path: Path, opts: DatasetOptions) -> tuple[api.SampleTable, Any]:
    """Read and check the dataset at ``path`` with the command line's dataset options.

    Returns:
        The table and the load report (layout used, rows dropped with ``--skip-bad``).

    Raises:
        InputDataError: a bad row, a path outside the root, an unknown layout.
        ConfigError: an option the layout does not take.
    """
    return api.check_dataset(
        path,
        format=opts.format,
        columns=parse_columns(opts.columns),
        skip_bad=opts.skip_bad,
        allow_outside_root=opts.allow_outside_root,
        **opts.layout_options(),
    )
