"""Layer 4: discovery — rank the samples likely to carry a spurious attribute and infer pseudo-groups."""

from curate.detect import artifacts, ensemble, error_set, features, neighbors, spare  # noqa: F401  (register detectors)
from curate.detect._base import (
    CLUSTERING_DETECTORS,
    CONFLICT,
    DETECTORS,
    Discovery,
    Signals,
    otsu_split,
    pseudo_groups_of,
    rank01,
    resplit,
    split_top_share,
)

__all__ = [
    "CLUSTERING_DETECTORS",
    "CONFLICT",
    "DETECTORS",
    "Discovery",
    "Signals",
    "otsu_split",
    "pseudo_groups_of",
    "rank01",
    "resplit",
    "split_top_share",
]
