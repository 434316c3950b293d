"""PyTorch consumers of a manifest: a ``Dataset`` that applies mixing pairs and a weighted sampler.

torch is imported lazily; ``load`` turns a ``source`` (path or text) into an input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from curate._core import schema as S
from curate._core.seed import derive_seed
from curate.errors import ConfigError
from curate.manifest.core import MIX_LAMBDA, MIX_WITH, Manifest

MIX_MODES = ("apply", "pair")


class ManifestDataset:
    """``Dataset`` over a manifest's rows: item ``i`` is ``{"x", "label", "weight", "index", "sample_id"}``.

    Mixing (the data-mixing method), for row ``i`` with a partner and ``λ = mix_lambda``:
    ``mix="apply"`` returns ``x = λ·load(partner) + (1 − λ)·load(source)`` (``load`` must return
    tensors or arrays of equal shape); ``mix="pair"`` leaves the mixing to the model and adds
    ``mix_x`` (the partner's input; the row's own input when it has none) and ``mix_lambda``
    (0 when it has none) to every item, as long as the manifest has any pair — for text, whose
    mixing happens on the token embeddings.

    With ``seed``, each ``load`` call runs with the global CPU torch random stream seeded by
    ``(seed, epoch, draw, role)``, so random augmentations are reproducible (and a resumed run sees
    the same ones); ``draw`` is the item's position in the epoch (:meth:`get`), so a row drawn
    several times in one epoch (a weighted sampler) is augmented differently each time. Call
    :meth:`set_epoch` before each epoch. Without augmentation leave ``seed`` None.

    Args:
        manifest: the curated rows.
        load: maps a ``source`` string to an input (e.g. opens and transforms an image).
        sources: ``sample_id`` → source for mixing partners not among the manifest's rows.
        seed: seeds augmentations (None: ``load`` draws from the global stream).
        mix: ``apply`` or ``pair``.
    """

    def __init__(
        self,
        manifest: Manifest,
        load: Callable[[str], Any],
        *,
        sources: dict[str, str] | None = None,
        seed: int | None = None,
        mix: str = "apply",
    ) -> None:
        if mix not in MIX_MODES:
            raise ConfigError.bad_param("ManifestDataset()", "mix", f"one of {MIX_MODES}", mix)
        f = manifest.frame
        self.ids = f[S.SAMPLE_ID].to_list()
        self.sources = f[S.SOURCE].to_list()
        self.labels = f[S.LABEL].to_numpy()
        self.weights = f[S.WEIGHT].to_numpy()
        self.mix_with = f[MIX_WITH].to_list()
        self.mix_lambda = f[MIX_LAMBDA].to_list()
        self.has_mixing = any(p is not None for p in self.mix_with)
        self.lookup = dict(zip(self.ids, self.sources, strict=True)) | (sources or {})
        self.load = load
        self.seed = seed
        self.mix = mix
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Seed the augmentations of the coming epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, source: str, draw: int, role: str) -> Any:
        if self.seed is None:
            return self.load(source)
        import torch

        with torch.random.fork_rng(devices=[]):  # loading runs on the CPU: its generator is the one to seed
            torch.default_generator.manual_seed(derive_seed(self.seed, "augment", self.epoch, draw, role))
            return self.load(source)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.get(i, i)

    def get(self, i: int, draw: int) -> dict[str, Any]:
        """Row ``i`` as the ``draw``-th item of the epoch (the draw seeds its augmentation)."""
        x = self._load(self.sources[i], draw, "x")
        partner = self.mix_with[i]
        item: dict[str, Any] = {}
        if self.mix == "pair":
            if self.has_mixing:
                item["mix_x"] = x if partner is None else self._load(self.lookup[partner], draw, "partner")
                item["mix_lambda"] = 0.0 if partner is None else float(self.mix_lambda[i])
        elif partner is not None:
            lam = float(self.mix_lambda[i])
            x = lam * self._load(self.lookup[partner], draw, "partner") + (1.0 - lam) * x
        return {
            "x": x,
            **item,
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
