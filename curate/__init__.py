"""curate: find and remove spurious correlations from training data.

``import curate`` is cheap: it loads neither torch nor faiss. The functions of :mod:`curate.api`
are re-exported lazily (``curate.load_dataset(...)``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = (
    "check_dataset",
    "env_info",
    "group_counts",
    "list_benchmarks",
    "list_formats",
    "load_dataset",
    "make_benchmark",
)

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from curate import api

        return getattr(api, name)
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
