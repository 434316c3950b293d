"""Layer 4: discovery — rank the samples likely to carry a spurious attribute and infer pseudo-groups."""

from curate.detect import artifacts, ensemble, error_set, neighbors, spare  # noqa: F401  (register detectors)
from curate.detect._base import CONFLICT, DETECTORS, Discovery, Signals, otsu_split, rank01

__all__ = ["CONFLICT", "DETECTORS", "Discovery", "Signals", "otsu_split", "rank01"]
