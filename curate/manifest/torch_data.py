"""PyTorch consumers of a manifest: a ``Dataset`` that applies mixing pairs and a weighted sampler.

torch is imported lazily; ``load`` turns a ``source`` (path or text) into an input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from curate._core import schema as S
from curate._core.seed import derive_seed
from curate.manifest.core import MIX_LAMBDA, MIX_WITH, Manifest


class ManifestDataset:
    """``Dataset`` over a manifest's rows: item ``i`` is ``{"x", "label", "weight", "index", "sample_id"}``.

    When row ``i`` has a mixing partner, ``x = λ·load(partner) + (1 − λ)·load(source)`` with the
    row's label (the data-mixing method); ``load`` must return tensors or arrays of equal shape.

    Args:
        manifest: the curated rows.
        load: maps a ``source`` string to an input (e.g. opens and transforms an image).
        sources: ``sample_id`` → source for mixing partners not among the manifest's rows.
    """

    def __init__(
        self, manifest: Manifest, load: Callable[[str], Any], *, sources: dict[str, str] | None = None
    ) -> None:
        f = manifest.frame
        self.ids = f[S.SAMPLE_ID].to_list()
        self.sources = f[S.SOURCE].to_list()
        self.labels = f[S.LABEL].to_numpy()
        self.weights = f[S.WEIGHT].to_numpy()
        self.mix_with = f[MIX_WITH].to_list()
        self.mix_lambda = f[MIX_LAMBDA].to_list()
        self.lookup = dict(zip(self.ids, self.sources, strict=True)) | (sources or {})
        self.load = load

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, Any]:
        x = self.load(self.sources[i])
        partner = self.mix_with[i]
        if partner is not None:
            lam = float(self.mix_lambda[i])
            x = lam * self.load(self.lookup[partner]) + (1.0 - lam) * x
        return {
            "x": x,
            "label": int(self.labels[i]),
            "weight": float(self.weights[i]),
            "index": i,
            "sample_id": self.ids[i],
        }


def weighted_sampler(manifest: Manifest, *, num_samples: int | None = None, seed: int = 0) -> Any:
    """A ``torch.utils.data.WeightedRandomSampler`` drawing rows ∝ ``weight`` (with replacement)."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    w = np.asarray(manifest.frame[S.WEIGHT].to_numpy(), dtype=np.float64).tolist()
    g = torch.Generator().manual_seed(derive_seed(seed, "sampler"))
    return WeightedRandomSampler(w, num_samples=num_samples or len(w), replacement=True, generator=g)
