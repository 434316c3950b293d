"""Integrity checks on a freshly read dataset: every bad row is named by file, row and fix.

Rows carry a private ``_row`` column (1-based, header excluded) until the checks have run.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from curate._core import schema as S
from curate._core.progress import progress
from curate.errors import InputDataError

logger = logging.getLogger(__name__)

ROW = "_row"
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_MAX_LOGGED = 20


@dataclass(frozen=True)
class Problem:
    """One bad row: where it is, what is wrong and how to fix it."""

    row: int | None
    sample_id: str | None
    column: str | None
    message: str
    fix: str

    def to_error(self, file: str | None) -> InputDataError:
        """This problem as the exception a strict load raises."""
        return InputDataError(
            self.message, file=file, row=self.row, sample_id=self.sample_id, column=self.column, fix=self.fix
        )


def _image_problem(path: Path) -> str | None:
    if not path.exists():
        return f"file not found at {path}"
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.verify()
    except Exception as e:  # PIL raises many types for corrupt files
        return f"unreadable image at {path} ({type(e).__name__}: {e})"
    return None


def _file_problem(path: Path) -> str | None:
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return _image_problem(path)
    if not path.exists():
        return f"file not found at {path}"
    return None


def find_problems(
    frame: pl.DataFrame, *, root: Path | None, check_files: bool = True, n_classes: int | None = None
) -> list[Problem]:
    """List every bad row of ``frame``: null keys, duplicate ids, bad labels or splits, bad files.

    Args:
        frame: rows with ``_row``, ``sample_id``, ``label``, ``split`` and ``path`` or ``text``.
        root: folder that ``path`` entries are relative to.
        check_files: open every referenced file (images are verified with PIL).
        n_classes: labels must lie in ``[0, n_classes)``; otherwise only ``>= 0`` is required.

    Returns:
        Problems in row order (at most one per row and kind).
    """
    problems: list[Problem] = []

    def rows_where(mask: pl.Expr) -> pl.DataFrame:
        return frame.filter(mask).select(ROW, S.SAMPLE_ID, *[c for c in (S.LABEL, S.SPLIT) if c in frame.columns])

    for r in rows_where(pl.col(S.SAMPLE_ID).is_null() | (pl.col(S.SAMPLE_ID) == "")).iter_rows(named=True):
        problems.append(Problem(r[ROW], None, S.SAMPLE_ID, "empty sample_id", "give every row an id"))
    for r in rows_where(pl.col(S.SAMPLE_ID).is_duplicated() & ~pl.col(S.SAMPLE_ID).is_first_distinct()).iter_rows(
        named=True
    ):
        problems.append(Problem(r[ROW], r[S.SAMPLE_ID], S.SAMPLE_ID, "duplicate sample_id", "make ids unique"))
    for r in rows_where(pl.col(S.LABEL).is_null()).iter_rows(named=True):
        problems.append(
            Problem(
                r[ROW],
                r[S.SAMPLE_ID],
                S.LABEL,
                "label is missing or not an integer",
                "fix the label",
            )
        )
    bad_label = pl.col(S.LABEL) < 0
    if n_classes is not None:
        bad_label = bad_label | (pl.col(S.LABEL) >= n_classes)
    valid = f"0..{n_classes - 1}" if n_classes else "an integer >= 0"
    for r in rows_where(bad_label).iter_rows(named=True):
        problems.append(
            Problem(
                r[ROW],
                r[S.SAMPLE_ID],
                S.LABEL,
                f"label {r[S.LABEL]} is outside the classes ({valid})",
                "fix the label",
            )
        )
    for r in rows_where(~pl.col(S.SPLIT).is_in(list(S.SPLITS)) | pl.col(S.SPLIT).is_null()).iter_rows(named=True):
        problems.append(
            Problem(
                r[ROW],
                r[S.SAMPLE_ID],
                S.SPLIT,
                f"split {r[S.SPLIT]!r} is not one of {', '.join(S.SPLITS)}",
                "map the split values (0/1/2 or train/val/test)",
            )
        )
    src = S.PATH if S.PATH in frame.columns else S.TEXT
    for r in frame.filter(pl.col(src).is_null() | (pl.col(src) == "")).select(ROW, S.SAMPLE_ID).iter_rows(named=True):
        problems.append(Problem(r[ROW], r[S.SAMPLE_ID], src, f"empty {src}", f"give every row a {src}"))

    if check_files and src == S.PATH:
        rows = frame.filter(pl.col(S.PATH).is_not_null() & (pl.col(S.PATH) != "")).select(ROW, S.SAMPLE_ID, S.PATH)
        paths = [Path(p) if Path(p).is_absolute() or root is None else root / p for p in rows[S.PATH]]
        with progress(len(paths), "checking files") as bar, ThreadPoolExecutor(max_workers=8) as pool:
            found: list[str | None] = []
            for res in pool.map(_file_problem, paths, chunksize=64):
                found.append(res)
                bar.advance()
        for (row, sid, _), msg in zip(rows.iter_rows(), found, strict=True):
            if msg is not None:
                problems.append(Problem(row, sid, S.PATH, msg, "fix the path"))
    problems.sort(key=lambda p: p.row or 0)
    return problems


def apply_checks(
    frame: pl.DataFrame,
    *,
    source: str,
    root: Path | None,
    skip_bad: bool = False,
    check_files: bool = True,
    n_classes: int | None = None,
    required_splits: tuple[str, ...] = ("train",),
) -> tuple[pl.DataFrame, list[Problem]]:
    """Run :func:`find_problems`; raise on the first problem, or drop bad rows when ``skip_bad``.

    Returns:
        The clean frame without ``_row``, and the problems that were dropped (empty when strict).

    Raises:
        InputDataError: a bad row (strict mode), or a required split is empty.
    """
    problems = find_problems(frame, root=root, check_files=check_files, n_classes=n_classes)
    if problems and not skip_bad:
        first = problems[0]
        more = f" (and {len(problems) - 1} more bad rows)" if len(problems) > 1 else ""
        drop = "every bad row" if more else "it"
        raise InputDataError(
            first.message + more,
            file=source,
            row=first.row,
            sample_id=first.sample_id,
            column=first.column,
            fix=f"{first.fix}, or pass --skip-bad to drop {drop}",
        )
    if problems:
        for p in problems[:_MAX_LOGGED]:
            logger.warning("skipped %s", p.to_error(source))
        if len(problems) > _MAX_LOGGED:
            logger.warning("skipped %d more bad rows", len(problems) - _MAX_LOGGED)
        bad = {p.row for p in problems}
        frame = frame.filter(~pl.col(ROW).is_in(list(bad)))
    for split in required_splits:
        if frame.filter(pl.col(S.SPLIT) == split).height == 0:
            raise InputDataError(
                f"the {split!r} split is empty",
                file=source,
                column=S.SPLIT,
                fix=f"add {split} rows or map the split column (values 0/1/2 or train/val/test)",
            )
    return frame.drop(ROW), problems
