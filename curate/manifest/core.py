"""The manifest: one row per training example actually used, plus its provenance.

Columns: ``sample_id``, ``source`` (path or text), ``label``, ``weight`` (> 0), ``mix_with``
(sample id of the partner, null when not mixed), ``mix_lambda`` (weight of the partner in
``λ·x_partner + (1 − λ)·x``, null when not mixed), ``pseudo_group`` (null when unknown) and, when
the dataset has them, the true ``group`` (for evaluation only). Rows repeat when a method
upsamples. Provenance: method, every parameter, seed, input fingerprints, curate version, counts.

Where the provenance lives: a Parquet manifest holds it in its key-value metadata (no sidecar); a
CSV or JSONL manifest ``x.csv`` has its own sidecar ``x.csv.json``, so manifests of different
formats in one folder never share one. When written, the provenance is sealed: ``rows_sha256``
fingerprints the rows and ``provenance_sha256`` the provenance itself. Reading checks the seal and
the recorded counts against the rows, and refuses a manifest whose provenance does not describe it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate.errors import IdMismatchError, InputDataError

logger = logging.getLogger(__name__)

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
REQUIRED = (S.SAMPLE_ID, S.SOURCE, S.LABEL, S.WEIGHT)
SIDECAR_SUFFIX = ".json"
PROVENANCE_KEY = b"curate"
ROWS_SHA = "rows_sha256"
"""Provenance key: SHA-256 of the rows (their CSV text in schema order), written with the manifest."""
SEAL = "provenance_sha256"
"""Provenance key: SHA-256 of the rest of the provenance (key-sorted JSON), written with the manifest."""
REWRITE = "re-create it with `curate prune|mix|balance|select ... --out`"


@dataclass(frozen=True)
class Manifest:
    """Rows of the curated training set and how they were chosen.

    Attributes:
        frame: the rows (see the module docstring for the columns).
        provenance: method, parameters, seed, input fingerprints, counts.
        path: the file it was read from (None when built in memory); errors name it.
    """

    frame: pl.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        validate_manifest(self.frame, where=self.where)

    def __len__(self) -> int:
        return self.frame.height

    @property
    def method(self) -> str:
        """The selection method that produced this manifest."""
        return str(self.provenance.get("method", "unknown"))

    @property
    def where(self) -> str:
        """How errors name this manifest: its file, else its method."""
        return str(self.path) if self.path is not None else f"{self.provenance.get('method', 'unnamed')} manifest"

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
    for col in REQUIRED:
        if col not in frame.columns:
            raise InputDataError(f"manifest lacks column {col!r}", file=where, fix="write it with curate")
    for col, dtype in MANIFEST_SCHEMA.items():
        if col in frame.columns and frame.schema[col] != dtype and frame.schema[col] != pl.Null:
            raise InputDataError(
                f"column {col!r} has dtype {frame.schema[col]}, expected {dtype}", file=where, column=col
            )
    for col in (S.SAMPLE_ID, S.SOURCE, S.LABEL):
        empty = frame.with_row_index("_r").filter(pl.col(col).is_null())
        if empty.height:
            r = empty.row(0, named=True)
            raise InputDataError(
                f"{col} is empty", file=where, row=r["_r"] + 1, sample_id=r[S.SAMPLE_ID], column=col, fix=REWRITE
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


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def check_against_dataset(manifest: Manifest, dataset: pl.DataFrame) -> None:
    """Check a manifest against the dataset it is applied to, by ``sample_id``.

    Every row's id and every mixing partner must be in ``dataset``, and each row's ``label`` (and
    ``group``, where both hold one) must equal the dataset's for that id: a manifest never
    relabels the data it is trained on.

    Args:
        manifest: the manifest (errors name its file, else its method).
        dataset: the samples, with ``sample_id``, ``label`` and optionally ``group``.

    Raises:
        IdMismatchError: an id (or a mixing partner) absent from the dataset.
        InputDataError: a label or group that contradicts the dataset's.
    """
    where = manifest.where
    rows = manifest.frame.with_row_index("_row", offset=1)
    ids = dataset[S.SAMPLE_ID]
    for col in (S.SAMPLE_ID, MIX_WITH):
        stray = rows.filter(pl.col(col).is_not_null() & ~pl.col(col).is_in(ids.implode()))
        if stray.height:
            r = stray.row(0, named=True)
            what = "id" if col == S.SAMPLE_ID else f"mixing partner {r[MIX_WITH]!r}"
            raise IdMismatchError(
                f"{what} is not in the dataset ({_rows(stray.height)} of {rows.height} name ids it lacks)",
                file=where,
                row=r["_row"],
                sample_id=r[S.SAMPLE_ID],
                column=col,
                fix="build the manifest from this dataset with `curate prune|mix|balance|select`",
            )
    for col in (S.LABEL, S.GROUP):
        if col not in dataset.columns or manifest.frame[col].null_count() == manifest.frame.height:
            continue
        theirs = dataset.select(S.SAMPLE_ID, pl.col(col).cast(pl.Int64).alias("_theirs"))
        joined = rows.join(theirs, on=S.SAMPLE_ID, how="left", maintain_order="left")
        wrong = joined.filter(
            pl.col(col).is_not_null() & pl.col("_theirs").is_not_null() & (pl.col(col) != pl.col("_theirs"))
        )
        if wrong.height:
            r = wrong.row(0, named=True)
            raise InputDataError(
                f"{col} {r[col]} contradicts the dataset's {col} {r['_theirs']} for this id "
                f"({_rows(wrong.height)} of {rows.height} disagree)",
                file=where,
                row=r["_row"],
                sample_id=r[S.SAMPLE_ID],
                column=col,
                fix="a manifest must not relabel the data; build it from this dataset",
            )


# ---------------------------------------------------------------------------------- provenance
def manifest_counts(frame: pl.DataFrame, *, train: int) -> dict[str, Any]:
    """The provenance ``counts`` of manifest rows drawn from ``train`` train samples: ``train``,
    ``rows``, ``unique_kept``, ``dropped``, ``mixed`` and, where the rows hold them, ``per_group``
    and ``per_pseudo_group`` (``{"rows", "weight"}`` per group)."""
    frame = manifest_frame(frame)
    counts: dict[str, Any] = {
        "train": train,
        "rows": frame.height,
        "unique_kept": frame[S.SAMPLE_ID].n_unique(),
        "dropped": train - frame[S.SAMPLE_ID].n_unique(),
        "mixed": int(frame[MIX_WITH].is_not_null().sum()),
    }
    for key in (S.GROUP, S.PSEUDO_GROUP):
        if frame[key].null_count() < frame.height:
            g = frame.group_by(key).agg(pl.len().alias("n"), pl.col(S.WEIGHT).sum().alias("w")).sort(key)
            counts[f"per_{key}"] = {
                str(r[key]): {"rows": r["n"], "weight": round(float(r["w"]), 6)} for r in g.iter_rows(named=True)
            }
    return counts


def rows_fingerprint(frame: pl.DataFrame) -> str:
    """SHA-256 of a manifest's rows (their CSV text in schema order: equal across the three formats)."""
    return hashlib.sha256(manifest_frame(frame).write_csv().encode()).hexdigest()


def _digest(provenance: dict[str, Any]) -> str:
    body = {k: v for k, v in provenance.items() if k != SEAL}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def sealed_provenance(manifest: Manifest) -> dict[str, Any]:
    """The provenance as written: plain JSON data plus the rows' fingerprint and its own checksum."""
    plain = {k: v for k, v in manifest.provenance.items() if k not in (ROWS_SHA, SEAL)}
    prov: dict[str, Any] = json.loads(json.dumps(plain, sort_keys=True, default=str))
    prov[ROWS_SHA] = rows_fingerprint(manifest.frame)
    prov[SEAL] = _digest(prov)
    return prov


def _count_mismatch(frame: pl.DataFrame, counts: dict[str, Any]) -> str | None:
    """The first recorded count that the rows contradict, in words (None when all agree)."""
    actual: dict[str, Any] = {
        "rows": frame.height,
        "unique_kept": frame[S.SAMPLE_ID].n_unique(),
        "mixed": int(frame[MIX_WITH].is_not_null().sum()),
    }
    for key, value in actual.items():
        if key in counts and counts[key] != value:
            return f"counts.{key} is {counts[key]!r} but the manifest has {value}"
    if {"train", "dropped", "unique_kept"} <= counts.keys() and counts["dropped"] != counts["train"] - actual[
        "unique_kept"
    ]:
        return f"counts.dropped is {counts['dropped']!r} but train - unique_kept is {counts['train'] - actual['unique_kept']}"
    for key in (S.GROUP, S.PSEUDO_GROUP):
        per = counts.get(f"per_{key}")
        if not isinstance(per, dict):
            continue
        have = frame.filter(pl.col(key).is_not_null()).group_by(key).len()
        rows = {str(g): n for g, n in have.iter_rows()}
        recorded = {str(g): v.get("rows") if isinstance(v, dict) else v for g, v in per.items()}
        if recorded != rows:
            return f"counts.per_{key} records rows {recorded} but the manifest has {rows}"
    return None


def check_provenance(frame: pl.DataFrame, provenance: dict[str, Any], *, file: Path, holder: Path) -> None:
    """Refuse provenance that does not describe ``frame``.

    Checks the checksum of the provenance itself (when recorded), the rows' fingerprint (when
    recorded) and the counts (row count, unique ids, mixed rows, rows per group).

    Args:
        frame: the manifest's rows.
        provenance: the provenance read with them.
        file: the manifest file.
        holder: where the provenance was read from (the sidecar, or ``file`` itself for Parquet).

    Raises:
        InputDataError: naming ``holder``, what disagrees, and the fix.
    """
    if holder == file:
        fix = f"{REWRITE} (its provenance is embedded and cannot be separated from the rows)"
    else:
        fix = f"{REWRITE}; to use the rows without provenance, delete {holder.name}; never edit {holder.name} by hand"
    problem = None
    if SEAL in provenance and provenance[SEAL] != _digest(provenance):
        problem = "the provenance was changed after curate wrote it (its checksum provenance_sha256 does not match)"
    elif ROWS_SHA in provenance and provenance[ROWS_SHA] != rows_fingerprint(frame):
        problem = f"the provenance describes other rows than {file.name} holds (rows_sha256 does not match)"
    elif isinstance(provenance.get("counts"), dict):
        wrong = _count_mismatch(frame, provenance["counts"])
        problem = None if wrong is None else f"the provenance does not match {file.name}: {wrong}"
    if problem is not None:
        raise InputDataError(problem, file=holder, fix=fix)
