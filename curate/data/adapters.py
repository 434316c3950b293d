"""Readers for the dataset layouts users already hold, registered in ``DATASET_FORMATS``.

Each reader turns a file or folder into a :class:`RawTable` (canonical columns plus a private
1-based ``_row``); :func:`curate.data.load.load_dataset` then runs the integrity checks.
This module holds the shared pieces (``RawTable``, ``Format``, the registry, CSV and split helpers)
and the generic layouts: an ImageFolder tree and any CSV/Parquet/JSONL with a column map. The
published benchmarks' layouts (SubpopBench, Waterbirds, CelebA, CivilComments) are in
:mod:`curate.data.published`; ``SNIFF_ORDER`` decides which layout a path is tried as first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate._core import schema as S
from curate._core.registry import Registry
from curate.data.integrity import IMAGE_EXTENSIONS, ROW, raw_column
from curate.errors import ConfigError, InputDataError


@dataclass(frozen=True)
class RawTable:
    """What a reader returns: rows not yet checked, and how to name and resolve them."""

    frame: pl.DataFrame
    source: str
    root: Path | None
    name: str
    label_names: tuple[str, ...] | None = None
    group_names: tuple[str, ...] | None = None
    required_splits: tuple[str, ...] = ("train",)
    attribute_names: tuple[str, ...] | None = None


Reader = Callable[..., RawTable]


@dataclass(frozen=True)
class Format:
    """A registered layout: how to recognise it and how to read it."""

    read: Reader
    sniff: Callable[[Path], bool]
    description: str


logger = logging.getLogger(__name__)

DATASET_FORMATS: Registry[Format] = Registry("format")

SPLIT_VALUES: dict[str, str] = {
    "0": "train",
    "1": "val",
    "2": "test",
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
}
METADATA = "metadata.csv"
SIDECAR = "dataset.json"


def _read_csv(path: Path, *, separator: str = ",") -> pl.DataFrame:
    if not path.exists():
        raise InputDataError(f"file not found: {path}", file=path, fix="check the path")
    try:
        df = pl.read_csv(path, infer_schema_length=0, separator=separator)
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as e:
        raise InputDataError(f"cannot parse as CSV ({e})", file=path, fix="check the file's format") from e
    return df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [c.strip().strip('"') for c in f.readline().strip().split(",")]
    except OSError:
        return []


def _user_columns(df: pl.DataFrame) -> list[str]:
    """The file's own column names (without the private ``_row``), for messages."""
    return [c for c in df.columns if c != ROW]


def _require(df: pl.DataFrame, cols: tuple[str, ...], source: Path, layout: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputDataError(
            f"missing columns {missing} for the {layout} layout (has {_user_columns(df)})",
            file=source,
            fix=f"use a {layout} file or pick another --format",
        )


def _as_int(col: str) -> pl.Expr:
    """``col`` as Int64: integers and integral floats (``"1"``, ``"1.0"``); anything else
    (``"1.5"``, ``"x"``, empty) is null, never rounded (the integrity checks then name the row)."""
    f = pl.col(col).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return pl.when(f == f.round(0)).then(f.cast(pl.Int64, strict=False)).otherwise(None)


def _raw(col: str, canonical: str) -> pl.Expr:
    """``col`` as read (text), kept as ``_raw_<canonical>`` so a bad value is reported as written."""
    return pl.col(col).cast(pl.String).alias(raw_column(canonical))


def _split_expr(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String).str.strip_chars().str.to_lowercase().replace(SPLIT_VALUES).alias(S.SPLIT)


def _with_groups(df: pl.DataFrame, attr: str = S.ATTR) -> tuple[pl.DataFrame, int]:
    """Add ``group = label * n_attr + a`` (SubpopBench's convention); return the frame and n_attr."""
    n_attr = S.max_int(df[attr], 0) + 1
    return df.with_columns((pl.col(S.LABEL) * n_attr + pl.col(attr)).alias(S.GROUP)), n_attr


def _group_names(
    label_names: tuple[str, ...] | None, attr_names: list[str] | None, n_classes: int, n_attr: int
) -> tuple[str, ...]:
    ln = label_names or tuple(str(i) for i in range(n_classes))
    an = attr_names or [f"a={j}" for j in range(n_attr)]
    return tuple(f"{ln[y]} / {an[a]}" for y in range(n_classes) for a in range(n_attr))


def _folder_and_file(path: Path, default: str) -> tuple[Path, Path]:
    return (path, path / default) if path.is_dir() else (path.parent, path)


# --------------------------------------------------------------------------- ImageFolder
IMAGEFOLDER_LAYOUT = "root/<class>/<image> (or root/train|val|test/<class>/<image>)"
IMAGEFOLDER_FIX = f"arrange the images as {IMAGEFOLDER_LAYOUT}, one folder per class, or pass a metadata file"


def _images_in(folder: Path) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]


def flat_image_folder(path: Path) -> InputDataError | None:
    """The error for a folder that holds images but no class sub-folders (None otherwise)."""
    if not path.is_dir() or (path / METADATA).exists() or any(d.is_dir() for d in path.iterdir()):
        return None
    n = len(_images_in(path))
    if not n:
        return None
    return InputDataError(
        f"{n} images but no class sub-folders: an image folder needs one folder per class",
        file=path,
        fix=IMAGEFOLDER_FIX,
    )


def read_imagefolder(path: Path) -> RawTable:
    """An ImageFolder tree: ``root/[train|val|test/]<class>/<image>``; classes sorted by name.

    Raises:
        InputDataError: not a folder, no class folders (a flat folder of images) or a single class.
    """
    if not path.is_dir():
        raise InputDataError(f"not a folder: {path}", file=path, fix="point at the ImageFolder root")
    split_dirs = {
        SPLIT_VALUES[d.name.lower()]: d
        for d in path.iterdir()
        if d.is_dir() and d.name.lower() in SPLIT_VALUES and not d.name.isdigit()
    }
    tops = split_dirs or {"train": path}
    classes = sorted({c.name for top in tops.values() for c in top.iterdir() if c.is_dir()})
    if not classes:
        raise flat_image_folder(path) or InputDataError("no class folders found", file=path, fix=IMAGEFOLDER_FIX)
    if len(classes) == 1:
        raise InputDataError(
            f"only one class folder ({classes[0]!r}): a classifier needs at least two classes",
            file=path,
            fix=IMAGEFOLDER_FIX,
        )
    loose = sum(len(_images_in(top)) for top in tops.values())
    if loose:
        logger.warning("%s: ignored %d images outside the class folders (expected %s)", path, loose, IMAGEFOLDER_LAYOUT)
    rows = []
    for split, top in sorted(tops.items()):
        for y, cls in enumerate(classes):
            d = top / cls
            if not d.is_dir():
                continue
            for f in sorted(d.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS:
                    rel = f.relative_to(path).as_posix()
                    rows.append((rel, y, split, rel))
    df = pl.DataFrame(rows, schema=[S.SAMPLE_ID, S.LABEL, S.SPLIT, S.PATH], orient="row")
    df = df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    return RawTable(df, str(path), path, path.name, tuple(classes))


def _sniff_imagefolder(path: Path) -> bool:
    return path.is_dir() and any(d.is_dir() for d in path.iterdir()) and not (path / METADATA).exists()


# --------------------------------------------------------------------------- generic table
TABLE_SUFFIXES: tuple[str, ...] = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson")


def read_table(path: Path, *, columns: Mapping[str, str] | None = None, root: Path | None = None) -> RawTable:
    """Any CSV/TSV/Parquet/JSONL file; ``columns`` maps canonical names to the file's names.

    Canonical names: ``sample_id``, ``label`` (ints, or class names mapped in sorted order),
    ``split`` (0/1/2 or train/val/test), ``path`` or ``text``, optional ``group`` and ``a``.
    Example: ``columns={"sample_id": "img_id", "label": "y", "path": "img_filename"}``.
    """
    if not path.exists():
        raise InputDataError(f"file not found: {path}", file=path, fix="check the path")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            df = _read_csv(path, separator="\t" if suffix == ".tsv" else ",")
        elif suffix == ".parquet":
            df = pl.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            df = pl.read_ndjson(path)
        else:
            raise ConfigError(f"read_table(): cannot read {path.name}; use one of {', '.join(TABLE_SUFFIXES)}")
    except pl.exceptions.PolarsError as e:
        raise InputDataError(f"cannot parse ({e})", file=path, fix="check the file's format") from e
    if ROW not in df.columns:
        df = df.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    mapping = dict(columns or {})
    known = {S.SAMPLE_ID, S.LABEL, S.SPLIT, S.PATH, S.TEXT, S.GROUP, S.ATTR}
    for canon, theirs in mapping.items():
        if canon not in known:
            raise ConfigError(
                f"read_table(): unknown canonical column {canon!r} in the column map "
                f"(valid: {', '.join(sorted(known))})"
            )
        if theirs not in df.columns:
            raise InputDataError(
                f"column {theirs!r} (mapped to {canon!r}) not found; has {_user_columns(df)}",
                file=path,
                fix="fix the column map (--columns canonical=theirs,...)",
            )
    renames = {theirs: canon for canon, theirs in mapping.items() if theirs != canon}
    df = df.drop([c for c in renames.values() if c in df.columns and c not in renames]).rename(renames)
    for need in (S.SAMPLE_ID, S.LABEL, S.SPLIT):
        if need not in df.columns:
            raise InputDataError(
                f"no {need!r} column (has {_user_columns(df)})",
                file=path,
                fix=f"map one with --columns {need}=<your column>",
            )
    src = S.TEXT if S.TEXT in df.columns else S.PATH
    if src not in df.columns:
        raise InputDataError(
            f"no 'path' or 'text' column (has {_user_columns(df)})",
            file=path,
            fix="map one with --columns path=<col> or text=<col>",
        )
    label_names: tuple[str, ...] | None = None
    lab = df[S.LABEL].cast(pl.String)
    as_float = lab.str.strip_chars().cast(pl.Float64, strict=False)
    words = as_float.is_null() & lab.is_not_null()
    if words.any() and as_float.is_not_null().any():  # a mix: neither indices nor names throughout
        i = int(words.arg_true()[0])
        number = lab.filter(as_float.is_not_null())[0]
        raise InputDataError(
            f"label {lab[i]!r} is a word, but other rows hold numbers (e.g. {number!r})",
            file=path,
            row=int(df[ROW][i]),
            sample_id=str(df[S.SAMPLE_ID][i]),
            column=S.LABEL,
            fix="give every row an integer class index, or every row a class name",
        )
    if words.any():  # class names, not numbers
        label_names = tuple(sorted(lab.drop_nulls().unique().to_list()))
        df = df.with_columns(
            lab.replace_strict({n: i for i, n in enumerate(label_names)}, return_dtype=pl.Int64, default=None).alias(
                S.LABEL
            )
        )
    else:  # numbers: integers only (a label 1.5 is an error, not class 1)
        df = df.with_columns(_raw(S.LABEL, S.LABEL), _as_int(S.LABEL).alias(S.LABEL))
    keep = [ROW, S.SAMPLE_ID, S.LABEL, S.SPLIT, src]
    df = df.with_columns(pl.col(S.SAMPLE_ID).cast(pl.String), _split_expr(S.SPLIT), pl.col(src).cast(pl.String))
    extra = [c for c in df.columns if c not in keep]
    out = df.select(*keep, *extra)
    if S.GROUP in out.columns:
        out = out.with_columns(_raw(S.GROUP, S.GROUP), _as_int(S.GROUP).alias(S.GROUP))
    elif S.ATTR in out.columns:
        out = out.with_columns(_raw(S.ATTR, S.ATTR), _as_int(S.ATTR).alias(S.ATTR))
        out, _ = _with_groups(out)
    base = root or path.parent
    return RawTable(out, str(path), None if src == S.TEXT else base, path.stem, label_names)


def _sniff_table(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES


DATASET_FORMATS.add(
    "imagefolder",
    Format(read_imagefolder, _sniff_imagefolder, "ImageFolder tree: root/[train|val|test/]<class>/<image>"),
)
DATASET_FORMATS.add("table", Format(read_table, _sniff_table, "any CSV/TSV/Parquet/JSONL with a column map"))

SNIFF_ORDER: tuple[str, ...] = ("subpopbench", "waterbirds", "celeba", "civilcomments", "imagefolder", "table")
