"""Stage 1, load: read and check a dataset in any supported layout; the built-in benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from curate.data import (
    BENCHMARKS,
    DATASET_FORMATS,
    BenchmarkConfig,
    LoadReport,
    SampleTable,
    write_benchmark,
)
from curate.data import load_dataset as _load_dataset
from curate.pipeline._common import version


def load_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    check_files: bool = True,
    **options: Any,
) -> SampleTable:
    """Read and check a dataset in any supported layout (see :func:`curate.data.load_dataset`).

    Raises:
        InputDataError: a bad row (unless ``skip_bad``), an empty split or an unknown layout.
    """
    table, _ = _load_dataset(
        path, format=format, columns=columns, skip_bad=skip_bad, check_files=check_files, **options
    )
    return table


def check_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    columns: Mapping[str, str] | None = None,
    skip_bad: bool = False,
    **options: Any,
) -> tuple[SampleTable, LoadReport]:
    """Like :func:`load_dataset`, also returning which layout was used and which rows were dropped."""
    return _load_dataset(path, format=format, columns=columns, skip_bad=skip_bad, **options)


def make_benchmark(
    name: str,
    out: str | Path,
    *,
    seed: int = 0,
    spurious_strength: float = 0.95,
    n_train: int | None = None,
    n_val_per_group: int | None = None,
    n_test_per_group: int | None = None,
    overwrite: bool = False,
) -> SampleTable:
    """Write built-in benchmark ``name`` to ``out`` (SubpopBench layout) and load it back.

    Args:
        name: a name from :func:`list_benchmarks`.
        out: folder to create (must be absent or empty unless ``overwrite``).
        seed: seeds every draw; the same seed gives a byte-identical ``metadata.csv``.
        spurious_strength: share of each class's train samples in its majority group.
        n_train: train size (default: the benchmark's).
        n_val_per_group: val size per group (default: the benchmark's).
        n_test_per_group: test size per group (default: the benchmark's).
        overwrite: replace an existing ``out``.

    Raises:
        UnknownNameError: no such benchmark.
        MissingDependencyError: its source data is not installed.
        ConfigError: a bad size or strength.
    """
    bench = BENCHMARKS.get(name)
    cfg = BenchmarkConfig(
        seed=seed,
        spurious_strength=spurious_strength,
        n_train=n_train,
        n_val_per_group=n_val_per_group,
        n_test_per_group=n_test_per_group,
    )
    meta = write_benchmark(bench, out, cfg, overwrite=overwrite, version=version())
    return load_dataset(meta, format="subpopbench", check_files=False)


def list_benchmarks() -> pl.DataFrame:
    """Built-in benchmarks: ``name``, ``modality``, default sizes and a description."""
    rows = []
    for n in BENCHMARKS.names():
        b = BENCHMARKS.get(n)
        rows.append(
            {
                "name": n,
                "modality": b.modality,
                "n_train": b.defaults[0],
                "n_val_per_group": b.defaults[1],
                "n_test_per_group": b.defaults[2],
                "description": b.description,
            }
        )
    return pl.DataFrame(rows)


def list_formats() -> pl.DataFrame:
    """Dataset layouts ``load_dataset`` reads: ``name`` and ``description``."""
    return pl.DataFrame(
        [{"name": n, "description": DATASET_FORMATS.get(n).description} for n in DATASET_FORMATS.names()]
    )


def group_counts(table: SampleTable) -> pl.DataFrame:
    """Samples per group (or label) × split, with each group's share of its class in train."""
    return table.group_counts()
