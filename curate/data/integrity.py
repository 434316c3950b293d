"""Integrity checks on a freshly read dataset: every bad row is named by file, row and fix.

Rows carry a private ``_row`` column (1-based, header excluded) until the checks have run, and
readers may keep a column's text as read in a private ``_raw_<column>`` (see :func:`raw_column`), so
that a value that is not an integer (a label ``1.5``) is reported as it was written, never rounded.
Every ``path`` must stay inside the dataset root (symlinks resolved) unless the caller allows it,
and every image is decoded.
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
RAW_PREFIX = "_raw_"
OUTSIDE_ROOT_FIX = "move the file under the dataset root, or pass --allow-outside-root (allow_outside_root=True)"
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


def raw_column(column: str) -> str:
    """Name of the private column holding ``column``'s values as read (checked, then dropped)."""
    return RAW_PREFIX + column


def _image_problem(path: Path) -> str | None:
    """Why ``path`` is not a decodable image (None when it is): every byte of it is decoded.

    JPEGs decode in draft mode (DCT-scaled, so cheap) which still reads the whole bitstream.
    """
    if not path.exists():
        return f"file not found at {path}"
    if not path.is_file():
        return f"not a file: {path}"
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.draft(None, (1, 1))
            im.load()
    except Exception as e:  # PIL raises many types for corrupt files
        kind = "" if path.suffix.lower() in IMAGE_EXTENSIONS else "; an image dataset's paths must be images"
        return f"unreadable image at {path} ({type(e).__name__}: {e}){kind}"
    return None


def _outside_root(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies outside ``root`` (already resolved)."""
    try:
        return not path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        return True


def find_problems(
    frame: pl.DataFrame,
    *,
    root: Path | None,
    check_files: bool = True,
    n_classes: int | None = None,
    allow_outside_root: bool = False,
) -> list[Problem]:
    """List every bad row of ``frame``: null keys, duplicate ids, bad labels or splits, bad files.

    Args:
        frame: rows with ``_row``, ``sample_id``, ``label``, ``split`` and ``path`` or ``text``
            (and optionally ``_raw_<column>``: the values as read, to name a non-integer).
        root: folder that ``path`` entries are relative to.
        check_files: decode every referenced file (each must be an image PIL can decode).
        n_classes: labels must lie in ``[0, n_classes)``; otherwise only ``>= 0`` is required.
        allow_outside_root: accept paths that resolve outside ``root`` (``../x.png``, absolute
            paths, symlinks that point out); by default such a row is a problem and is not read.

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
    raw_label = raw_column(S.LABEL)
    label_fix = "give every row an integer class index (0, 1, ...) or a class name"
    for r in frame.filter(pl.col(S.LABEL).is_null()).iter_rows(named=True):
        raw = r.get(raw_label)
        written = raw is not None and str(raw).strip() != ""
        msg = f"label {raw!r} is not an integer class index" if written else "label is missing or not an integer"
        problems.append(Problem(r[ROW], r[S.SAMPLE_ID], S.LABEL, msg, label_fix))
    for col in (S.ATTR, S.GROUP):
        raw_col = raw_column(col)
        if col not in frame.columns or raw_col not in frame.columns:
            continue
        bad = pl.col(col).is_null() & pl.col(raw_col).is_not_null() & (pl.col(raw_col).str.strip_chars() != "")
        for r in frame.filter(bad).select(ROW, S.SAMPLE_ID, raw_col).iter_rows(named=True):
            problems.append(
                Problem(
                    r[ROW],
                    r[S.SAMPLE_ID],
                    col,
                    f"{col} {r[raw_col]!r} is not an integer",
                    f"give every row an integer {col} (0, 1, ...)",
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

    if src == S.PATH:
        rows = frame.filter(pl.col(S.PATH).is_not_null() & (pl.col(S.PATH) != "")).select(ROW, S.SAMPLE_ID, S.PATH)
        paths = [Path(p) if Path(p).is_absolute() or root is None else root / p for p in rows[S.PATH]]
        inside = [True] * len(paths)
        if root is not None and not allow_outside_root:
            top = root.resolve()
            for k, (row, sid, rel) in enumerate(rows.iter_rows()):
                if _outside_root(paths[k], top):
                    inside[k] = False
                    problems.append(
                        Problem(row, sid, S.PATH, f"path {rel!r} is outside the dataset root {root}", OUTSIDE_ROOT_FIX)
                    )
        if check_files:
            todo = [(k, p) for k, p in enumerate(paths) if inside[k]]
            with progress(len(todo), "checking files") as bar, ThreadPoolExecutor(max_workers=8) as pool:
                found: list[str | None] = []
                for res in pool.map(_image_problem, [p for _, p in todo], chunksize=64):
                    found.append(res)
                    bar.advance()
            for (k, _), why in zip(todo, found, strict=True):
                if why is not None:
                    problems.append(Problem(rows[ROW][k], rows[S.SAMPLE_ID][k], S.PATH, why, "fix the path"))
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
    allow_outside_root: bool = False,
) -> tuple[pl.DataFrame, list[Problem]]:
    """Run :func:`find_problems`; raise on the first problem, or drop bad rows when ``skip_bad``.

    Returns:
        The clean frame without ``_row`` and ``_raw_*``, and the problems that were dropped (empty when strict).

    Raises:
        InputDataError: a bad row (strict mode), or a required split is empty.
    """
    problems = find_problems(
        frame, root=root, check_files=check_files, n_classes=n_classes, allow_outside_root=allow_outside_root
    )
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
    return frame.drop(ROW, *[c for c in frame.columns if c.startswith(RAW_PREFIX)]), problems
