"""``SampleTable``: the one in-memory form of a dataset (a polars frame plus where its files are)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

from curate._core import schema as S
from curate._core.cache import fingerprint
from curate.errors import ConfigError


@dataclass(frozen=True)
class SampleTable:
    """A dataset keyed by ``sample_id``.

    ``frame`` holds ``sample_id`` (str), ``label`` (int), ``split`` (train/val/test), one source
    column (``path``, relative to ``root``, or ``text``) and optionally ``group`` (int), ``a``
    (the spurious attribute) and any other attribute columns.

    Attributes:
        frame: the rows.
        root: folder that ``path`` entries are relative to (``None`` for text data).
        name: a short name for messages and provenance.
        source: the file or folder it was read from.
        label_names: class names by label index, when known.
        group_names: group names by group index, when known.
        attribute_names: the spurious attribute's values in words (e.g. "grass", "brick"), when known.
    """

    frame: pl.DataFrame
    root: Path | None = None
    name: str = "dataset"
    source: str | None = None
    label_names: tuple[str, ...] | None = None
    group_names: tuple[str, ...] | None = field(default=None)
    attribute_names: tuple[str, ...] | None = field(default=None)
    _memo: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        S.validate_frame(self.frame, required=(S.SAMPLE_ID, S.LABEL, S.SPLIT), where=self.where)
        if not any(c in self.frame.columns for c in S.SOURCE_COLUMNS):
            raise ConfigError(f"{self.where}: needs a 'path' or a 'text' column")

    @property
    def where(self) -> str:
        """How to name this table in messages."""
        return self.source or self.name

    @property
    def modality(self) -> str:
        """``"image"`` when samples are files under ``root``, ``"text"`` when they are strings."""
        return "text" if S.TEXT in self.frame.columns else "image"

    @property
    def has_groups(self) -> bool:
        """Whether true group labels are known."""
        return S.GROUP in self.frame.columns and self.frame[S.GROUP].null_count() == 0

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(label_names)`` or ``max(label) + 1``)."""
        if self.label_names is not None:
            return len(self.label_names)
        return S.max_int(self.frame[S.LABEL], 0) + 1

    @property
    def ids(self) -> pl.Series:
        """The ``sample_id`` column."""
        return self.frame[S.SAMPLE_ID]

    def __len__(self) -> int:
        return self.frame.height

    def split(self, name: str) -> SampleTable:
        """The rows of one split as a new table."""
        if name not in S.SPLITS:
            raise ConfigError.bad_param("SampleTable.split()", "name", f"one of {S.SPLITS}", name)
        return self.with_frame(self.frame.filter(pl.col(S.SPLIT) == name))

    def with_frame(self, frame: pl.DataFrame) -> SampleTable:
        """The same dataset description over other rows."""
        return replace(self, frame=frame)

    def without_groups(self) -> SampleTable:
        """The same dataset as if no group labels were known (for label-free model selection)."""
        return replace(self, frame=self.frame.drop(S.GROUP, strict=False), group_names=None)

    def resolve(self, rel: str) -> Path:
        """Absolute path of a ``path`` entry."""
        p = Path(rel)
        return p if p.is_absolute() or self.root is None else self.root / p

    def group_name(self, g: int) -> str:
        """A readable name for group ``g``."""
        if self.group_names is not None and 0 <= g < len(self.group_names):
            return self.group_names[g]
        return str(g)

    def fingerprint(self) -> str:
        """Content hash of the rows, the root and, for image files, each file's size and modification
        time (the bytes are not read): an image rewritten under the same name is new data. Computed
        once per table object (a run asks for it at every cached stage; each call stats every file)."""
        if "fingerprint" not in self._memo:
            rows = self.frame.sort(S.SAMPLE_ID)
            root = None if self.root is None else str(self.root.resolve())
            self._memo["fingerprint"] = fingerprint(rows, root, self.label_names, self._file_stats(rows))
        return self._memo["fingerprint"]

    def _file_stats(self, rows: pl.DataFrame) -> list[list[int]] | None:
        """``[size, mtime_ns]`` of each row's file (``[-1, -1]`` when missing); None for text."""
        if S.PATH not in rows.columns:
            return None
        out = []
        for rel in rows[S.PATH].to_list():
            try:
                st = os.stat(self.resolve(rel))
                out.append([st.st_size, st.st_mtime_ns])
            except OSError:
                out.append([-1, -1])
        return out

    def group_counts(self) -> pl.DataFrame:
        """Rows per group (or per label when groups are unknown) × split.

        Returns:
            Columns ``group`` (or ``label``), ``name``, ``train``, ``val``, ``test`` and ``train_share``
            (the group's share of its class in train).
        """
        key = S.GROUP if self.has_groups else S.LABEL
        keys = [key, S.LABEL] if key == S.GROUP else [key]
        counts = self.frame.group_by([*keys, S.SPLIT]).len().pivot(on=S.SPLIT, index=keys, values="len").fill_null(0)
        for s in S.SPLITS:
            if s not in counts.columns:
                counts = counts.with_columns(pl.lit(0, dtype=pl.UInt32).alias(s))
        counts = counts.with_columns(
            (pl.col("train") / pl.col("train").sum().over(S.LABEL)).fill_nan(0.0).alias("train_share")
        )
        names = [self.group_name(int(k)) if key == S.GROUP else self._label_name(int(k)) for k in counts[key]]
        return counts.with_columns(pl.Series("name", names)).select([key, "name", *S.SPLITS, "train_share"]).sort(key)

    def _label_name(self, y: int) -> str:
        if self.label_names is not None and 0 <= y < len(self.label_names):
            return self.label_names[y]
        return str(y)
