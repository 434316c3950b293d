"""Layer 1: the manifest schema, provenance, atomic readers/writers, reviewers' decisions and PyTorch consumers."""

from curate.manifest.core import (
    MANIFEST_SCHEMA,
    MIX_LAMBDA,
    MIX_WITH,
    Manifest,
    check_against_dataset,
    check_provenance,
    manifest_counts,
    manifest_frame,
    rows_fingerprint,
    validate_manifest,
)
from curate.manifest.io import MANIFEST_FORMATS, read_manifest, sidecar_path, write_manifest
from curate.manifest.review import Review, apply_review, check_review, read_review, review_of
from curate.manifest.torch_data import ManifestDataset, weighted_sampler

__all__ = [
    "MANIFEST_FORMATS",
    "MANIFEST_SCHEMA",
    "MIX_LAMBDA",
    "MIX_WITH",
    "Manifest",
    "ManifestDataset",
    "Review",
    "apply_review",
    "check_against_dataset",
    "check_provenance",
    "check_review",
    "manifest_counts",
    "manifest_frame",
    "read_manifest",
    "read_review",
    "review_of",
    "rows_fingerprint",
    "sidecar_path",
    "validate_manifest",
    "weighted_sampler",
    "write_manifest",
]
