"""A reviewer's decisions on a manifest: ids to keep or to drop, read from files, applied, recorded.

A reviewer who looked at the flagged samples (``curate inspect``, ``report.html``) overrules the
selection method with plain files: ``--keep ids.txt`` and ``--drop ids.txt`` (one ``sample_id`` a
line; blank lines, ``#`` comments and a ``sample_id`` header line are skipped) or ``--review
review.csv`` (a CSV with the columns ``sample_id,decision``, decision ``keep`` or ``drop``; other
columns, e.g. a note, are ignored).

Applied to a manifest (:func:`apply_review`): a dropped id leaves it (every row of that id; a row
mixed with a dropped partner keeps its own sample, unmixed), a kept id stays, re-added once with
weight 1 when the method had removed it. The provenance records the decisions (the ids, their
counts, what changed) and each review file's SHA-256 under ``review``, and its counts are
recomputed, so the sealed provenance still describes the rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from curate._core import schema as S
from curate.errors import IdMismatchError, InputDataError
from curate.manifest.core import MIX_LAMBDA, MIX_WITH, Manifest, manifest_counts, manifest_frame

KEEP = "keep"
DROP = "drop"
DECISIONS = (KEEP, DROP)
DECISION = "decision"
REVIEW_COLUMNS = (S.SAMPLE_ID, DECISION)
FILE = "file"
LINE = "line"
DECISIONS_SCHEMA: dict[str, pl.DataType] = {
    S.SAMPLE_ID: pl.String(),
    DECISION: pl.String(),
    FILE: pl.String(),
    LINE: pl.Int64(),
}
FIX_ID = "use ids from the dataset's sample_id column (as `curate inspect` shows them)"


def _where(file: str, line: int) -> str:
    """How errors name a line of a review file: ``keep.txt:3``."""
    return f"{file}:{line}"


@dataclass(frozen=True)
class Review:
    """A reviewer's decisions.

    Attributes:
        decisions: ``[sample_id, decision, file, line]``, one row per id (``decision``: keep or drop;
            ``file`` and ``line``: where it was read, 1-based).
        files: each file read: ``{"file", "role", "sha256", "ids"}`` (role: keep, drop or review).
    """

    decisions: pl.DataFrame
    files: tuple[dict[str, Any], ...] = ()

    @property
    def keep_ids(self) -> list[str]:
        """The ids to keep, in file order."""
        return self.decisions.filter(pl.col(DECISION) == KEEP)[S.SAMPLE_ID].to_list()

    @property
    def drop_ids(self) -> list[str]:
        """The ids to drop, in file order."""
        return self.decisions.filter(pl.col(DECISION) == DROP)[S.SAMPLE_ID].to_list()

    def __bool__(self) -> bool:
        return bool(self.files) or self.decisions.height > 0


def _read_text(path: Path) -> tuple[str, str]:
    """The file's text and its SHA-256."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise InputDataError(f"review file {what}", file=path, fix="pass a file of sample ids, one a line")
    try:
        data = path.read_bytes()
        return data.decode("utf-8-sig"), hashlib.sha256(data).hexdigest()
    except OSError as e:
        raise InputDataError(f"cannot read the review file ({e.strerror})", file=path) from e
    except UnicodeDecodeError as e:
        raise InputDataError("the review file is not UTF-8 text", file=path, fix="save it as UTF-8") from e


def _id_lines(path: Path, text: str, decision: str) -> list[tuple[str, str, str, int]]:
    """``(id, decision, file, line)`` of every id line of a plain id file."""
    out = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or (n == 1 and line == S.SAMPLE_ID):
            continue
        out.append((line, decision, str(path), n))
    return out


def _csv_lines(path: Path, text: str) -> list[tuple[str, str, str, int]]:
    """``(id, decision, file, line)`` of every row of a review CSV (``sample_id,decision``)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    names = [h.strip().lower() for h in header or []]
    missing = [c for c in REVIEW_COLUMNS if c not in names]
    if missing:
        raise InputDataError(
            f"a review file needs the columns {','.join(REVIEW_COLUMNS)}; it lacks {', '.join(missing)}",
            file=path,
            fix="write a header line `sample_id,decision`, or pass a plain id list with --keep/--drop",
        )
    i_id, i_dec = names.index(S.SAMPLE_ID), names.index(DECISION)
    out = []
    for fields in reader:
        n = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) <= max(i_id, i_dec):
            raise InputDataError(
                f"expected {len(names)} fields, found {len(fields)}",
                file=_where(str(path), n),
                fix="one id and its decision a line",
            )
        sid, dec = fields[i_id].strip(), fields[i_dec].strip().lower()
        if dec not in DECISIONS:
            raise InputDataError(
                f"decision {fields[i_dec].strip()!r} is not keep or drop",
                file=_where(str(path), n),
                sample_id=sid,
                column=DECISION,
                fix="write keep or drop",
            )
        out.append((sid, dec, str(path), n))
    return out


def read_review(
    *, keep: str | Path | None = None, drop: str | Path | None = None, review: str | Path | None = None
) -> Review:
    """Read a reviewer's decisions from id files (``keep``, ``drop``) and a review CSV (``review``).

    An id repeated with the same decision counts once; an id both kept and dropped is an error.

    Raises:
        InputDataError: a file is missing or unreadable, a review CSV lacks its columns or holds a
            decision other than keep/drop, or an id is both kept and dropped (names both places).
    """
    rows: list[tuple[str, str, str, int]] = []
    files: list[dict[str, Any]] = []
    for role, p in ((KEEP, keep), (DROP, drop), ("review", review)):
        if p is None:
            continue
        path = Path(p)
        text, sha = _read_text(path)
        got = _csv_lines(path, text) if role == "review" else _id_lines(path, text, role)
        rows += got
        files.append({"file": path.name, "role": role, "sha256": sha, "ids": len({r[0] for r in got})})
    first: dict[str, tuple[str, str, int]] = {}
    for sid, dec, file, line in rows:
        seen = first.setdefault(sid, (dec, file, line))
        if seen[0] != dec:
            kept, dropped = (seen, (dec, file, line)) if seen[0] == KEEP else ((dec, file, line), seen)
            raise InputDataError(
                f"this id is both kept ({_where(kept[1], kept[2])}) and dropped ({_where(dropped[1], dropped[2])})",
                file=_where(file, line),
                sample_id=sid,
                fix="decide once: remove it from one of the files",
            )
    frame = pl.DataFrame(
        [{S.SAMPLE_ID: s, DECISION: d, FILE: f, LINE: n} for s, (d, f, n) in first.items()],
        schema=DECISIONS_SCHEMA,
    )
    return Review(frame, tuple(files))


def check_review(review: Review, dataset: pl.DataFrame) -> None:
    """Check every decided id against the dataset (``sample_id`` and, when present, ``split``): it
    must be one of its train samples.

    Raises:
        IdMismatchError: an id the dataset lacks, or one outside its train split (names the file and line).
    """
    splits = dict(
        zip(
            dataset[S.SAMPLE_ID].to_list(),
            (dataset[S.SPLIT] if S.SPLIT in dataset.columns else [None] * dataset.height),
            strict=True,
        )
    )
    for r in review.decisions.sort(FILE, LINE).iter_rows(named=True):
        sid = r[S.SAMPLE_ID]
        if sid not in splits:
            problem = "this id is not in the dataset"
        elif splits[sid] not in (None, "train"):
            problem = f"this id is a {splits[sid]} sample; a manifest holds train samples only"
        else:
            continue
        raise IdMismatchError(problem, file=_where(r[FILE], r[LINE]), sample_id=sid, fix=FIX_ID)


def apply_review(manifest: Manifest, review: Review, rows: pl.DataFrame, *, train: int) -> Manifest:
    """Apply a reviewer's decisions to ``manifest``.

    Dropped ids leave it (all their rows); a row mixed with a dropped partner stays, unmixed. Kept
    ids stay; one the method removed is re-added once with weight 1, its columns taken from ``rows``.

    Args:
        manifest: the method's manifest.
        review: the decisions (checked with :func:`check_review` first).
        rows: manifest-shaped rows of every train sample that may be re-added (``sample_id``,
            ``source``, ``label``, optional ``group`` and ``pseudo_group``).
        train: the number of train samples (for the recomputed ``counts``).

    Returns:
        The reviewed manifest; its provenance gains ``review`` (decisions, what changed, the files'
        SHA-256) and its ``counts`` describe the new rows.

    Raises:
        IdMismatchError: a kept id absent from ``rows``.
    """
    frame = manifest.frame
    drop, keep = review.drop_ids, review.keep_ids
    before = frame.height
    frame = frame.filter(~pl.col(S.SAMPLE_ID).is_in(pl.Series(drop, dtype=pl.String).implode()))
    removed = before - frame.height
    partner_gone = pl.col(MIX_WITH).is_in(pl.Series(drop, dtype=pl.String).implode())
    unmixed = int(frame.select(partner_gone.sum()).item())
    frame = frame.with_columns(
        pl.when(partner_gone).then(None).otherwise(pl.col(MIX_WITH)).alias(MIX_WITH),
        pl.when(partner_gone).then(None).otherwise(pl.col(MIX_LAMBDA)).alias(MIX_LAMBDA),
    )
    absent = [i for i in keep if i not in set(frame[S.SAMPLE_ID].to_list())]
    if absent:
        add = rows.filter(pl.col(S.SAMPLE_ID).is_in(pl.Series(absent, dtype=pl.String).implode()))
        lost = sorted(set(absent) - set(add[S.SAMPLE_ID].to_list()))
        if lost:
            raise IdMismatchError.from_ids("kept ids", "train samples", lost)
        add = add.with_columns(pl.lit(1.0).alias(S.WEIGHT))
        frame = pl.concat([frame, manifest_frame(add)], how="vertical")
    provenance = dict(manifest.provenance)
    provenance["counts"] = manifest_counts(frame, train=train)
    provenance["review"] = {
        "keep": sorted(keep),
        "drop": sorted(drop),
        "counts": {
            "kept": len(keep),
            "dropped": len(drop),
            "rows_removed": removed,
            "re_added": len(absent),
            "unmixed": unmixed,
        },
        "files": list(review.files),
    }
    return Manifest(frame, provenance)


def review_of(manifest: Manifest) -> pl.DataFrame:
    """The decisions recorded in a manifest's provenance: ``[sample_id, decision]`` (empty when
    it was not reviewed)."""
    rec = manifest.provenance.get("review") or {}
    ids = [(i, KEEP) for i in rec.get(KEEP, [])] + [(i, DROP) for i in rec.get(DROP, [])]
    return pl.DataFrame(ids, schema={S.SAMPLE_ID: pl.String(), DECISION: pl.String()}, orient="row")
