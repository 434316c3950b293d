"""Layer 1: load datasets into a ``SampleTable``, check them, and build the built-in benchmarks."""

from curate.data import published  # noqa: F401  (registers the published layouts)
from curate.data.adapters import DATASET_FORMATS, RawTable
from curate.data.benchmarks import BENCHMARKS, BenchmarkConfig, write_benchmark
from curate.data.integrity import Problem, find_problems
from curate.data.load import LoadReport, detect_format, load_dataset
from curate.data.table import SampleTable

__all__ = [
    "BENCHMARKS",
    "DATASET_FORMATS",
    "BenchmarkConfig",
    "LoadReport",
    "Problem",
    "RawTable",
    "SampleTable",
    "detect_format",
    "find_problems",
    "load_dataset",
    "write_benchmark",
]
