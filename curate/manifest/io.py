"""Manifest files: Parquet (provenance in its key-value metadata), CSV and JSONL (each with its own
sidecar ``x.csv.json`` / ``x.jsonl.json``), written atomically and read back with every check of
:mod:`curate.manifest.core` (schema, sealed provenance, counts, and the dataset's ids and labels)."""

from __future__ import annotations

import json
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path
from curate._core.registry import Registry
from curate.errors import ConfigError, InputDataError
from curate.manifest.core import (
    MANIFEST_SCHEMA,
    PROVENANCE_KEY,
    REQUIRED,
    REWRITE,
    SIDECAR_SUFFIX,
    Manifest,
    check_against_dataset,
    check_provenance,
    manifest_frame,
    sealed_provenance,
)

logger = logging.getLogger(__name__)

Writer = Any
MANIFEST_FORMATS: Registry[str] = Registry("manifest format")
MANIFEST_FORMATS.add("parquet", ".parquet", description="Apache Parquet; provenance in its key-value metadata")
MANIFEST_FORMATS.add("csv", ".csv", description="CSV with a header; provenance in the sidecar x.csv.json")
MANIFEST_FORMATS.add(
    "jsonl",
    ".jsonl",
    description="one JSON object per line; provenance in the sidecar x.jsonl.json",
    aliases=("ndjson",),
)
SUFFIX_FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def sidecar_path(path: str | Path) -> Path | None:
    """Where a manifest's provenance sidecar goes: ``x.csv`` → ``x.csv.json``, ``x.jsonl`` →
    ``x.jsonl.json``; None for Parquet, which holds its provenance itself."""
    p = Path(path)
    return None if p.suffix == ".parquet" else p.with_name(p.name + SIDECAR_SUFFIX)


def write_manifest(manifest: Manifest, path: str | Path, *, format: str | None = None) -> Path:
    """Write ``manifest`` atomically to ``path`` (format from ``format`` or the suffix) with its
    sealed provenance: embedded in a Parquet file, else in the sidecar ``path + ".json"``.

    Raises:
        UnknownNameError: an unknown format. ConfigError: no format given and an unknown suffix,
            or a format that contradicts the suffix. InputDataError: ``path`` cannot be written.
    """
    p = Path(path)
    by_suffix = SUFFIX_FORMATS.get(p.suffix, "")
    fmt = MANIFEST_FORMATS.entry(format).name if format else by_suffix
    if not fmt:
        raise ConfigError(f"write_manifest(): cannot tell the format of {p.name}; pass --format (parquet, csv, jsonl)")
    if by_suffix and fmt != by_suffix:
        raise ConfigError(f"write_manifest(): --format {fmt} contradicts the suffix of {p.name}; drop one of them")
    frame = manifest.frame
    prov = sealed_provenance(manifest)
    side = sidecar_path(p)
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(p))  # replaced last: an interrupted write leaves the old
        if side is not None:  # manifest with a sidecar that no longer matches it, which reading refuses
            side_tmp = stack.enter_context(atomic_path(side))
            side_tmp.write_text(json.dumps(prov, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            meta = {**(table.schema.metadata or {}), PROVENANCE_KEY: json.dumps(prov, sort_keys=True).encode()}
            pq.write_table(table.replace_schema_metadata(meta), tmp)
        elif fmt == "csv":
            frame.write_csv(tmp)
        else:
            frame.write_ndjson(tmp)
    return p


def _parse_provenance(text: str | bytes, *, file: Path) -> dict[str, Any]:
    try:
        prov = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputDataError(
            f"provenance is not valid JSON ({e})", file=file, fix=f"{REWRITE}, or delete {file.name}"
        ) from e
    if not isinstance(prov, dict):
        raise InputDataError(
            f"provenance must be a JSON object, got {type(prov).__name__}",
            file=file,
            fix=f"{REWRITE}, or delete {file.name}",
        )
    return prov


def _read_rows(p: Path) -> tuple[pl.DataFrame, dict[str, Any], Path | None]:
    """The rows as stored, the provenance, and where the provenance came from (None: there is none)."""
    fmt = SUFFIX_FORMATS.get(p.suffix)
    if fmt is None:
        raise InputDataError("unknown manifest format", file=p, fix="use .parquet, .csv or .jsonl")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if fmt == "parquet":
            table = pq.read_table(p)
            frame = pl.DataFrame(pl.from_arrow(table))
            embedded = (table.schema.metadata or {}).get(PROVENANCE_KEY)
            if embedded is None:
                return frame, {}, None
            return frame, _parse_provenance(embedded, file=p), p
        overrides = {c: t for c, t in MANIFEST_SCHEMA.items()}
        if fmt == "csv":
            frame = pl.read_csv(p, schema_overrides=overrides)
        else:
            frame = pl.read_ndjson(p, schema_overrides=overrides)
    except (pa.ArrowException, pl.exceptions.PolarsError, OSError, ValueError) as e:
        if isinstance(e, InputDataError):
            raise
        detail = " ".join(str(e).split())[:200]
        raise InputDataError(
            f"cannot read it as {fmt} (truncated or not a manifest?): {detail}", file=p, fix=REWRITE
        ) from e
    side = sidecar_path(p)
    assert side is not None  # Parquet returned above
    if side.is_file():
        try:
            text = side.read_bytes()
        except OSError as e:
            raise InputDataError(f"cannot read it ({e.strerror})", file=side) from e
        return frame, _parse_provenance(text, file=side), side
    legacy = p.with_suffix(SIDECAR_SUFFIX)
    if legacy.is_file():
        logger.warning(
            "%s: no sidecar %s; %s (the name formats used to share) is not read: %s holds no provenance. %s",
            p,
            side.name,
            legacy.name,
            p.name,
            REWRITE[0].upper() + REWRITE[1:],
        )
    return frame, {}, None


def read_manifest(
    path: str | Path, *, dataset_ids: pl.Series | None = None, dataset: pl.DataFrame | None = None
) -> Manifest:
    """Read a manifest (Parquet, CSV or JSONL) and its provenance, checking that they agree; check
    it against a dataset.

    Args:
        path: the manifest file.
        dataset_ids: every id of the dataset: the manifest's ids and mixing partners must be among them.
        dataset: the dataset's samples (``sample_id``, ``label``, optional ``group``): as
            ``dataset_ids``, and each row's label and group must equal the dataset's
            (:func:`check_against_dataset`).

    Raises:
        InputDataError: a missing, unreadable or truncated file, bad rows, invalid provenance
            JSON, or provenance that does not describe the rows (edited, or left by another write);
            with ``dataset``: a label that contradicts it. IdMismatchError: ids absent from the dataset.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError("manifest not found", file=p, fix="write one with `curate prune|mix|balance ... --out`")
    if p.is_dir():
        raise InputDataError("is a folder; a manifest file was expected", file=p, fix="pass the manifest file")
    raw, provenance, holder = _read_rows(p)
    for col in REQUIRED:
        if col not in raw.columns:
            raise InputDataError(f"manifest lacks column {col!r}", file=p, fix=REWRITE)
    for col, dtype in MANIFEST_SCHEMA.items():
        if col in raw.columns and raw.schema[col] not in (dtype, pl.Null):
            try:
                raw = raw.with_columns(pl.col(col).cast(dtype, strict=True))
            except pl.exceptions.PolarsError as e:
                raise InputDataError(
                    f"column {col!r} of type {raw.schema[col]} cannot be read as {dtype}",
                    file=p,
                    column=col,
                    fix=REWRITE,
                ) from e
    manifest = Manifest(manifest_frame(raw), provenance, path=p)  # validates the rows, naming p
    if holder is not None:
        check_provenance(manifest.frame, provenance, file=p, holder=holder)
    if dataset is not None:
        check_against_dataset(manifest, dataset)
    elif dataset_ids is not None:
        check_against_dataset(manifest, pl.DataFrame({S.SAMPLE_ID: dataset_ids}))
    return manifest
