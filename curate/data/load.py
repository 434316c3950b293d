"""``load_dataset``: read any supported layout, check it, and return a :class:`SampleTable`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.data.adapters import DATASET_FORMATS, SNIFF_ORDER, flat_image_folder
from curate.data.integrity import Problem, apply_checks
from curate.data.table import SampleTable
from curate.errors import ConfigError, InputDataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    """What a load dropped (only with ``skip_bad``) and which layout it used."""

    format: str
    dropped: tuple[Problem, ...]


def detect_format(path: str | Path) -> str:
    """Name of the first registered layout that recognises ``path``.

    Raises:
        InputDataError: the path is missing or matches no layout (a flat folder of images is named as such).
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError(f"no such file or folder: {p}", file=p, fix="check the path")
    for name in SNIFF_ORDER:
        if DATASET_FORMATS.get(name).sniff(p):
            return name
    flat = flat_image_folder(p)
    if flat is not None:
        raise flat
    raise InputDataError(
        "cannot tell the dataset layout",
        file=p,
        fix=f"pass --format (one of {', '.join(DATASET_FORMATS.names())})",
    )


def _option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_options(name: str, reader: Any, options: Mapping[str, Any]) -> None:
    """Refuse a layout option the ``name`` layout does not take (``--target`` on a table, ...)."""
    takes = [k for k, prm in inspect.signature(reader).parameters.items() if prm.kind is inspect.Parameter.KEYWORD_ONLY]
    shown = [_option_flag(t) for t in takes if t != "root"]
    for k in options:
        if k not in takes:
            what = f"its options: {', '.join(shown)}" if shown else "it takes no options"
            raise ConfigError(
                f"load_dataset(): option {k!r} ({_option_flag(k)}) does not apply to the {name} layout ({what})"
            )


def load_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    check_files: bool = True,
    allow_outside_root: bool = False,
    **options: Any,
) -> tuple[SampleTable, LoadReport]:
    """Read a dataset in any supported layout and check every row.

    Args:
        path: a file (``metadata.csv``, a CSV/Parquet/JSONL table) or a dataset folder.
        format: a name from ``DATASET_FORMATS`` or ``"auto"`` to detect it (a column map with
            ``"auto"`` reads the file as a ``table``).
        columns: column map for the ``table`` layout (canonical name → the file's name).
        skip_bad: drop bad rows (each is logged and returned) instead of raising on the first.
        check_files: decode every image the table references.
        allow_outside_root: read paths that resolve outside the dataset root (``../x.png``,
            absolute paths, symlinks pointing out); by default such a row is an error.
        **options: layout options (``target``/``spurious`` for CelebA, ``identity`` for CivilComments).

    Returns:
        The table and a report of dropped rows.

    Raises:
        InputDataError: a bad row (strict mode), a path outside the root, an empty required split,
            an unknown layout or a folder of images without class folders.
        ConfigError: an option the layout does not take.
        UnknownNameError: ``format`` is not a registered layout.
    """
    p = Path(path)
    if format == "auto" and columns:
        name = "table" if DATASET_FORMATS.get("table").sniff(p) else detect_format(p)
    else:
        name = detect_format(p) if format == "auto" else format
    fmt = DATASET_FORMATS.get(name)
    if columns:
        options["columns"] = columns
    _check_options(name, fmt.read, options)
    raw = fmt.read(p, **options)
    n_classes = len(raw.label_names) if raw.label_names else None
    frame, dropped = apply_checks(
        raw.frame,
        source=raw.source,
        root=raw.root,
        skip_bad=skip_bad,
        check_files=check_files,
        n_classes=n_classes,
        required_splits=raw.required_splits,
        allow_outside_root=allow_outside_root,
    )
    table = SampleTable(
        frame,
        root=raw.root,
        name=raw.name,
        source=raw.source,
        label_names=raw.label_names,
        group_names=raw.group_names,
        attribute_names=raw.attribute_names,
    )
    logger.info("loaded %d samples from %s (%s layout)", len(table), raw.source, name)
    return table, LoadReport(name, tuple(dropped))
