"""The manifest: one row per training example actually used, plus its provenance.

Columns: ``sample_id``, ``source`` (path or text), ``label``, ``weight`` (> 0), ``mix_with``
(sample id of the partner, null when not mixed), ``mix_lambda`` (weight of the partner in
``λ·x_partner + (1 − λ)·x``, null when not mixed), ``pseudo_group`` (null when unknown) and, when
the dataset has them, the true ``group`` (for evaluation only). Rows repeat when a method
upsamples. Provenance: method, every parameter, seed, input fingerprints, curate version, counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path, write_json_atomic
from curate._core.registry import Registry
from curate.errors import ConfigError, IdMismatchError, InputDataError

MIX_WITH = "mix_with"
MIX_LAMBDA = "mix_lambda"
MANIFEST_SCHEMA: dict[str, pl.DataType] = {
    S.SAMPLE_ID: pl.String(),
    S.SOURCE: pl.String(),
    S.LABEL: pl.Int64(),
    S.WEIGHT: pl.Float64(),
    MIX_WITH: pl.String(),
    MIX_LAMBDA: pl.Float64(),
    S.PSEUDO_GROUP: pl.Int64(),
    S.GROUP: pl.Int64(),
}
SIDECAR_SUFFIX = ".json"
PROVENANCE_KEY = b"curate"


@dataclass(frozen=True)
class Manifest:
    """Rows of the curated training set and how they were chosen."""

    frame: pl.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_manifest(self.frame, where=str(self.provenance.get("method", "manifest")))

    def __len__(self) -> int:
        return self.frame.height

    @property
    def method(self) -> str:
        """The selection method that produced this manifest."""
        return str(self.provenance.get("method", "unknown"))

    def group_shares(self, key: str = S.GROUP) -> pl.DataFrame:
        """Weighted share of each group (``group`` or ``pseudo_group``) in this manifest."""
        if key not in self.frame.columns or self.frame[key].null_count() == self.frame.height:
            raise InputDataError(f"manifest has no {key!r} column", fix="build it from a dataset with groups")
        return (
            self.frame.group_by(key)
            .agg(pl.col(S.WEIGHT).sum().alias("weight"), pl.len().alias("rows"))
            .with_columns((pl.col("weight") / pl.col("weight").sum()).alias("share"))
            .sort(key)
        )


def validate_manifest(frame: pl.DataFrame, *, where: str) -> None:
    """Check columns, dtypes and values; raise :class:`InputDataError` naming the first bad row."""
    for col in (S.SAMPLE_ID, S.SOURCE, S.LABEL, S.WEIGHT):
        if col not in frame.columns:
            raise InputDataError(f"manifest lacks column {col!r}", file=where, fix="write it with curate")
    for col, dtype in MANIFEST_SCHEMA.items():
        if col in frame.columns and frame.schema[col] != dtype and frame.schema[col] != pl.Null:
            raise InputDataError(
                f"column {col!r} has dtype {frame.schema[col]}, expected {dtype}", file=where, column=col
            )
    bad = frame.with_row_index("_r").filter(~(pl.col(S.WEIGHT) > 0) | pl.col(S.WEIGHT).is_null())
    if bad.height:
        r = bad.row(0, named=True)
        raise InputDataError(
            f"weight {r[S.WEIGHT]!r} is not > 0", file=where, row=r["_r"] + 1, sample_id=r[S.SAMPLE_ID], column=S.WEIGHT
        )
    if MIX_LAMBDA in frame.columns:
        lam = frame.with_row_index("_r").filter(pl.col(MIX_LAMBDA).is_not_null() & ~pl.col(MIX_LAMBDA).is_between(0, 1))
        if lam.height:
            r = lam.row(0, named=True)
            raise InputDataError(
                f"mix_lambda {r[MIX_LAMBDA]} is outside [0, 1]", file=where, row=r["_r"] + 1, sample_id=r[S.SAMPLE_ID]
            )


def manifest_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """Cast ``rows`` to the manifest schema, adding absent optional columns as nulls, in schema order."""
    out = rows
    for col, dtype in MANIFEST_SCHEMA.items():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=dtype).alias(col))
    return out.select([pl.col(c).cast(t) for c, t in MANIFEST_SCHEMA.items()])


# ------------------------------------------------------------------------------------------ I/O
Writer = Any
MANIFEST_FORMATS: Registry[str] = Registry("manifest format")
MANIFEST_FORMATS.add("parquet", ".parquet", description="Apache Parquet; provenance also in key-value metadata")
MANIFEST_FORMATS.add("csv", ".csv", description="CSV with a header")
MANIFEST_FORMATS.add("jsonl", ".jsonl", description="one JSON object per line", aliases=("ndjson",))


def sidecar_path(path: str | Path) -> Path:
    """``manifest.parquet`` → ``manifest.json``."""
    p = Path(path)
    return p.with_suffix(SIDECAR_SUFFIX) if p.suffix != SIDECAR_SUFFIX else p.with_suffix(".manifest.json")


def write_manifest(manifest: Manifest, path: str | Path, *, format: str | None = None) -> Path:
    """Write ``manifest`` atomically to ``path`` (format from ``format`` or the suffix) + its JSON sidecar.

    Raises:
        UnknownNameError: an unknown format.
    """
    p = Path(path)
    fmt = format or {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(p.suffix, "")
    if not fmt:
        raise ConfigError(f"write_manifest(): cannot tell the format of {p.name}; pass --format (parquet, csv, jsonl)")
    MANIFEST_FORMATS.get(fmt)
    frame = manifest.frame
    with atomic_path(p) as tmp:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = frame.to_arrow()
            meta = {
                **(table.schema.metadata or {}),
                PROVENANCE_KEY: json.dumps(manifest.provenance, sort_keys=True).encode(),
            }
            pq.write_table(table.replace_schema_metadata(meta), tmp)
            del pa
        elif fmt == "csv":
            frame.write_csv(tmp)
        else:
            frame.write_ndjson(tmp)
    write_json_atomic(sidecar_path(p), manifest.provenance)
    return p


def read_manifest(path: str | Path, *, dataset_ids: pl.Series | None = None) -> Manifest:
    """Read a manifest (Parquet, CSV or JSONL) and its provenance; check its ids against a dataset.

    Raises:
        InputDataError: missing file or bad rows. IdMismatchError: ids absent from the dataset.
    """
    p = Path(path)
    if not p.exists():
        raise InputDataError("manifest not found", file=p, fix="write one with `curate prune|mix|balance ... --out`")
    if p.suffix == ".parquet":
        frame = pl.read_parquet(p)
    elif p.suffix == ".csv":
        frame = pl.read_csv(p, schema_overrides=MANIFEST_SCHEMA)
    elif p.suffix in (".jsonl", ".ndjson"):
        frame = pl.read_ndjson(p, schema_overrides=MANIFEST_SCHEMA)
    else:
        raise InputDataError("unknown manifest format", file=p, fix="use .parquet, .csv or .jsonl")
    side = sidecar_path(p)
    provenance = json.loads(side.read_text()) if side.exists() else {}
    frame = manifest_frame(frame)
    manifest = Manifest(frame, provenance)
    if dataset_ids is not None:
        known = set(dataset_ids.to_list())
        used = frame[S.SAMPLE_ID].to_list() + frame[MIX_WITH].drop_nulls().to_list()
        missing = sorted({i for i in used if i not in known})
        if missing:
            raise IdMismatchError.from_ids(p.name, "dataset", missing)
    return manifest
