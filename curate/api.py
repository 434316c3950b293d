"""The stable programmatic surface of curate; the CLI is a thin shell over these functions.

Every function takes plain values and returns polars frames, tables or paths; devices and
backends are resolved here, once.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from curate._core.registry import Registry
from curate.data import (
    BENCHMARKS,
    DATASET_FORMATS,
    BenchmarkConfig,
    LoadReport,
    SampleTable,
    write_benchmark,
)
from curate.data import load_dataset as _load_dataset

__all__ = [
    "check_dataset",
    "env_info",
    "group_counts",
    "list_benchmarks",
    "list_formats",
    "load_dataset",
    "make_benchmark",
    "registries",
]


def version() -> str:
    """The installed curate version."""
    try:
        return importlib.metadata.version("curate")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


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


def registries() -> dict[str, Registry[Any]]:
    """Every registry by its listing name (``curate list NAME``)."""
    return {"benchmarks": BENCHMARKS, "formats": DATASET_FORMATS}


def env_info() -> dict[str, str]:
    """Versions of curate, Python and the key libraries, and the devices visible here."""
    from curate._core.device import cuda_available, faiss_gpu_count

    info = {"curate": version(), "python": platform.python_version(), "platform": platform.platform()}
    for pkg in (
        "torch",
        "torchvision",
        "faiss-cpu",
        "faiss-gpu-cu12",
        "polars",
        "numpy",
        "transformers",
        "scikit-learn",
        "typer",
        "rich",
    ):
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    info["cuda"] = "available" if cuda_available() else "not available"
    info["faiss_gpus"] = str(faiss_gpu_count())
    return info
