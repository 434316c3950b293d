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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path
from curate._core.registry import Registry
from curate.errors import ConfigError, IdMismatchError, InputDataError

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


# ------------------------------------------------------------------------------------------ I/O
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
    side = None if fmt == "parquet" else p.with_name(p.name + SIDECAR_SUFFIX)
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
    side = p.with_name(p.name + SIDECAR_SUFFIX)
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
