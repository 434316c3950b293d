"""Readers for the published benchmarks' own layouts, registered in ``DATASET_FORMATS``: SubpopBench
``metadata.csv``, Waterbirds ``metadata.csv``, CelebA attribute files and the WILDS CivilComments CSV.
The generic layouts (ImageFolder, any table with a column map) and the shared helpers are in
:mod:`curate.data.adapters`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate.data.adapters import (
    DATASET_FORMATS,
    METADATA,
    SIDECAR,
    Format,
    RawTable,
    _as_int,
    _folder_and_file,
    _group_names,
    _header,
    _raw,
    _read_csv,
    _require,
    _split_expr,
    _with_groups,
)
from curate.data.integrity import ROW
from curate.errors import ConfigError, InputDataError

CIVILCOMMENTS_IDENTITIES: tuple[str, ...] = (
    "male",
    "female",
    "LGBTQ",
    "christian",
    "muslim",
    "other_religions",
    "black",
    "white",
)


# --------------------------------------------------------------------------- SubpopBench
def read_subpopbench(path: Path, *, root: Path | None = None) -> RawTable:
    """SubpopBench ``metadata.csv`` (``id, filename, split, y, a``; split 0/1/2; optional ``text``).

    A ``dataset.json`` beside it (written by curate's benchmarks) supplies class and group names.
    """
    folder, file = _folder_and_file(path, METADATA)
    raw = _read_csv(file)
    _require(raw, ("id", "split", "y", "a"), file, "SubpopBench")
    has_text = "text" in raw.columns
    if not has_text:
        _require(raw, ("filename",), file, "SubpopBench")
    df = raw.select(
        ROW,
        pl.col("id").alias(S.SAMPLE_ID),
        _as_int("y").alias(S.LABEL),
        _split_expr("split"),
        _as_int("a").alias(S.ATTR),
        *([pl.col("text").alias(S.TEXT)] if has_text else [pl.col("filename").alias(S.PATH)]),
        _raw("y", S.LABEL),
        _raw("a", S.ATTR),
    )
    df, n_attr = _with_groups(df)
    side = folder / SIDECAR
    meta: dict[str, Any] = json.loads(side.read_text()) if side.exists() else {}
    label_names = tuple(meta["label_names"]) if "label_names" in meta else None
    n_classes = len(label_names) if label_names else S.max_int(df[S.LABEL], 0) + 1
    return RawTable(
        df,
        str(file),
        None if has_text else (root or folder),
        meta.get("name", folder.name),
        label_names,
        _group_names(label_names, meta.get("attribute_values"), n_classes, n_attr),
        tuple(meta.get("splits", ("train",))),
        tuple(meta["attribute_values"]) if "attribute_values" in meta else None,
    )


def _sniff_metadata(cols: set[str]) -> Callable[[Path], bool]:
    def sniff(path: Path) -> bool:
        _, file = _folder_and_file(path, METADATA)
        return file.suffix == ".csv" and cols <= set(_header(file))

    return sniff


# --------------------------------------------------------------------------- Waterbirds
def read_waterbirds(path: Path, *, root: Path | None = None) -> RawTable:
    """Waterbirds ``metadata.csv`` (``img_id, img_filename, y, split, place``; split 0/1/2)."""
    folder, file = _folder_and_file(path, METADATA)
    raw = _read_csv(file)
    _require(raw, ("img_id", "img_filename", "y", "split", "place"), file, "Waterbirds")
    df = raw.select(
        ROW,
        pl.col("img_id").alias(S.SAMPLE_ID),
        _as_int("y").alias(S.LABEL),
        _split_expr("split"),
        _as_int("place").alias(S.ATTR),
        pl.col("img_filename").alias(S.PATH),
        _raw("y", S.LABEL),
        _raw("place", S.ATTR),
    ).with_columns(pl.col(S.ATTR).alias("place"))
    df, _ = _with_groups(df)
    labels = ("landbird", "waterbird")
    places = ("land", "water")
    return RawTable(
        df,
        str(file),
        root or folder,
        "waterbirds",
        labels,
        _group_names(labels, list(places), 2, 2),
        ("train",),
        places,
    )


# --------------------------------------------------------------------------- CelebA
CELEBA_ATTRS = "list_attr_celeba.txt"
CELEBA_PARTITION = "list_eval_partition.txt"
CELEBA_IMAGES = "img_align_celeba"


def read_celeba(
    path: Path, *, target: str = "Blond_Hair", spurious: str = "Male", root: Path | None = None
) -> RawTable:
    """CelebA (``list_attr_celeba.txt``, ``list_eval_partition.txt``, ``img_align_celeba/``).

    Args:
        path: the CelebA folder.
        target: attribute used as the label (default ``Blond_Hair``, as in the literature).
        spurious: attribute used as ``a`` (default ``Male``).
        root: image folder (default ``<path>/img_align_celeba``).
    """
    folder = path if path.is_dir() else path.parent
    attr_file, part_file = folder / CELEBA_ATTRS, folder / CELEBA_PARTITION
    for f in (attr_file, part_file):
        if not f.exists():
            raise InputDataError(f"file not found: {f}", file=f, fix="point at the CelebA folder")
    lines = attr_file.read_text().splitlines()
    names = lines[1].split()
    for which, name in (("target", target), ("spurious", spurious)):
        if name not in names:
            from curate.errors import did_you_mean

            raise ConfigError(
                f"read_celeba(): {which} attribute {name!r} not in {attr_file.name}{did_you_mean(name, names)}"
            )
    ti, si = names.index(target), names.index(spurious)
    rows = []
    for i, line in enumerate(lines[2:], start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise InputDataError(
                f"expected {len(names) + 1} fields, found {len(parts)}",
                file=attr_file,
                row=i,
                fix="repair the attribute file",
            )
        rows.append((i, parts[0], parts[1 + ti], parts[1 + si]))
    attrs = pl.DataFrame(rows, schema=[ROW, S.SAMPLE_ID, "t", "s"], orient="row")
    part = pl.read_csv(
        part_file,
        has_header=False,
        separator=" ",
        new_columns=[S.SAMPLE_ID, "p"],
        schema_overrides={S.SAMPLE_ID: pl.String, "p": pl.String},
    )
    df = attrs.join(part, on=S.SAMPLE_ID, how="left").select(
        pl.col(ROW).cast(pl.Int64),
        S.SAMPLE_ID,
        (_as_int("t") == 1).cast(pl.Int64).alias(S.LABEL),
        _split_expr("p"),
        (_as_int("s") == 1).cast(pl.Int64).alias(S.ATTR),
        pl.col(S.SAMPLE_ID).alias(S.PATH),
    )
    df, _ = _with_groups(df)
    labels = (f"not {target}", target)
    return RawTable(
        df,
        str(attr_file),
        root or folder / CELEBA_IMAGES,
        "celeba",
        labels,
        _group_names(labels, [f"not {spurious}", spurious], 2, 2),
        ("train",),
        (f"not {spurious}", spurious),
    )


# --------------------------------------------------------------------------- CivilComments
CIVIL_FILE = "all_data_with_identities.csv"


def read_civilcomments(path: Path, *, identity: str = "any", threshold: float = 0.5) -> RawTable:
    """WILDS CivilComments CSV: ``comment_text``, ``toxicity`` (label = toxicity >= 0.5), ``split``.

    Args:
        path: the CSV or its folder.
        identity: identity column used as ``a`` (``"any"``: any of the eight WILDS identities).
        threshold: cut-off for toxicity and identity scores.
    """
    _, file = _folder_and_file(path, CIVIL_FILE)
    raw = _read_csv(file)
    _require(raw, ("id", "comment_text", "toxicity", "split"), file, "CivilComments")
    ids = [c for c in CIVILCOMMENTS_IDENTITIES if c in raw.columns] if identity == "any" else [identity]
    if not ids or any(c not in raw.columns for c in ids):
        raise ConfigError(f"read_civilcomments(): identity {identity!r} not among the columns of {file}")
    a_expr = pl.any_horizontal([pl.col(c).cast(pl.Float64, strict=False).fill_null(0.0) >= threshold for c in ids])
    df = raw.select(
        ROW,
        pl.col("id").alias(S.SAMPLE_ID),
        pl.when(pl.col("toxicity").cast(pl.Float64, strict=False).is_null())
        .then(None)
        .otherwise((pl.col("toxicity").cast(pl.Float64, strict=False) >= threshold).cast(pl.Int64))
        .alias(S.LABEL),
        _split_expr("split"),
        a_expr.cast(pl.Int64).alias(S.ATTR),
        pl.col("comment_text").alias(S.TEXT),
    )
    df, _ = _with_groups(df)
    labels = ("non-toxic", "toxic")
    an = [f"no {identity} identity", f"{identity} identity"]
    return RawTable(df, str(file), None, "civilcomments", labels, _group_names(labels, an, 2, 2), ("train",), tuple(an))


DATASET_FORMATS.add(
    "subpopbench",
    Format(
        read_subpopbench,
        lambda p: (
            _sniff_metadata({"id", "filename", "split", "y", "a"})(p)
            or _sniff_metadata({"id", "text", "split", "y", "a"})(p)
        ),
        "SubpopBench metadata.csv: id, filename, split (0/1/2), y, a",
    ),
)
DATASET_FORMATS.add(
    "waterbirds",
    Format(
        read_waterbirds,
        _sniff_metadata({"img_id", "img_filename", "y", "split", "place"}),
        "Waterbirds metadata.csv: img_id, img_filename, y, split (0/1/2), place",
    ),
)
DATASET_FORMATS.add(
    "celeba",
    Format(
        read_celeba,
        lambda p: (p if p.is_dir() else p.parent).joinpath(CELEBA_ATTRS).exists(),
        "CelebA: list_attr_celeba.txt + list_eval_partition.txt + img_align_celeba/",
    ),
)
DATASET_FORMATS.add(
    "civilcomments",
    Format(
        read_civilcomments,
        lambda p: {"comment_text", "toxicity"} <= set(_header(_folder_and_file(p, CIVIL_FILE)[1])),
        "WILDS CivilComments CSV: id, comment_text, toxicity, split, identity columns",
    ),
)
