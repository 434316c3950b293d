"""Built-in spurious benchmarks from real offline data, with ground-truth groups."""

from curate.data.benchmarks import digits_color, fmnist_mark, fmnist_textures, fortunes_cue  # noqa: F401  (register)
from curate.data.benchmarks._common import (
    BENCHMARKS,
    Benchmark,
    BenchmarkConfig,
    Item,
    assign,
    plan_counts,
    write_benchmark,
)

__all__ = ["BENCHMARKS", "Benchmark", "BenchmarkConfig", "Item", "assign", "plan_counts", "write_benchmark"]
