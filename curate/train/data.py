"""Batch streams for the loop; the order of every epoch comes from ``(seed, epoch)`` alone.

``TensorBatches``: shuffled mini-batches of in-memory tensors (heads on embeddings).
``LoaderBatches``: a map-style dataset through a ``DataLoader`` (decoding and augmentation in
worker processes).

Rows are drawn with probability proportional to their weight (with replacement, as Sagawa et al.'s
``WeightedRandomSampler``) when the weights differ, and as a seeded permutation (every row once)
when they are all equal, so a plain manifest trains like plain shuffling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from curate._core.seed import derive_seed
from curate.errors import ConfigError


class TensorBatches:
    """Shuffled mini-batches over in-memory tensors; keys: ``x``, ``label``, ``index`` (the row, or the
    given ``index`` of each row), ``weight`` when given, and one key per ``extra`` per-sample tensor
    (e.g. GroupDRO's ``group``).

    The order of epoch ``e`` depends only on ``(seed, e)``, so resuming reproduces it.
    """

    def __init__(
        self,
        x: Any,
        label: Any,
        *,
        batch_size: int,
        seed: int,
        weight: Any = None,
        extra: dict[str, Any] | None = None,
        device: str = "cpu",
        index: Any = None,
    ) -> None:
        import torch

        self.x = x.to(device)
        self.label = label.to(device)
        self.weight = None if weight is None else weight.to(device)
        self.extra = {k: v.to(device) for k, v in (extra or {}).items()}
        self.index = (torch.arange(len(label)) if index is None else index).to(device)
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def __len__(self) -> int:
        return (len(self.label) + self.batch_size - 1) // self.batch_size

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        import torch

        g = torch.Generator().manual_seed(derive_seed(self.seed, "batches", epoch))
        perm = torch.randperm(len(self.label), generator=g).to(self.device)
        for start in range(0, len(perm), self.batch_size):
            i = perm[start : start + self.batch_size]
            b = {"x": self.x[i], "label": self.label[i], "index": self.index[i]}
            if self.weight is not None:
                b["weight"] = self.weight[i]
            for k, v in self.extra.items():
                b[k] = v[i]
            yield b


class _Draws:
    """The epoch's items by position: item ``k`` is row ``order[k]``, drawn as the ``k``-th (a dataset
    with ``get(row, draw)`` seeds its augmentation by the draw, so repeated rows differ)."""

    def __init__(self, dataset: Any, order: list[int]) -> None:
        self.dataset = dataset
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> Any:
        row = self.order[k]
        get = getattr(self.dataset, "get", None)
        return get(row, k) if get is not None else self.dataset[row]


def _one_thread(_: int) -> None:
    """DataLoader workers decode and transform with one torch thread each (no oversubscription)."""
    import torch

    torch.set_num_threads(1)


class LoaderBatches:
    """Mini-batches of a dataset whose items are dicts with an ``index`` key (see ``Batches``).

    Args:
        dataset: a map-style dataset; when it has ``set_epoch(epoch)`` it is called before each epoch
            (so that per-item augmentation can be seeded by ``(seed, epoch, index)``).
        batch_size: rows per batch; a last batch of a single row joins the one before it (BatchNorm
            cannot train on one row).
        seed: seeds the order of every epoch.
        weights: per-row sampling weights (None or all equal: a permutation).
        num_workers: DataLoader worker processes (0: load in this process).
        collate: the DataLoader's ``collate_fn`` (None: torch's default).
        pin_memory: pin host memory for faster copies to a GPU.
    """

    def __init__(
        self,
        dataset: Any,
        *,
        batch_size: int,
        seed: int,
        weights: Any = None,
        num_workers: int = 0,
        collate: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError.bad_param("LoaderBatches()", "batch_size", "an integer >= 1", batch_size)
        if num_workers < 0:
            raise ConfigError.bad_param("LoaderBatches()", "num_workers", "an integer >= 0", num_workers)
        self.dataset = dataset
        self.n = len(dataset)
        self.batch_size = batch_size
        self.seed = seed
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        if w is not None and (len(w) != self.n or not np.all(np.isfinite(w)) or (w <= 0).any()):
            raise ConfigError("LoaderBatches(): weights must be one finite value > 0 per row")
        self.weights = None if w is None or np.all(w == w[0]) else w / w.sum()
        self.num_workers = num_workers
        self.collate = collate
        self.pin_memory = pin_memory

    @property
    def sampling(self) -> str:
        """``weighted`` (rows drawn ∝ weight, with replacement) or ``permutation``."""
        return "permutation" if self.weights is None else "weighted"

    def order(self, epoch: int) -> np.ndarray:
        """Row indices of epoch ``epoch`` (depends only on ``seed`` and ``epoch``)."""
        rng = np.random.default_rng(derive_seed(self.seed, "sampler", epoch))
        if self.weights is None:
            return rng.permutation(self.n)
        return rng.choice(self.n, size=self.n, replace=True, p=self.weights)

    def batch_indices(self, epoch: int) -> list[list[int]]:
        """The batches of epoch ``epoch`` as lists of row indices."""
        order = self.order(epoch).tolist()
        chunks = [order[s : s + self.batch_size] for s in range(0, self.n, self.batch_size)]
        if len(chunks) > 1 and len(chunks[-1]) == 1:
            chunks[-2].extend(chunks.pop())
        return chunks

    def __len__(self) -> int:
        k = (self.n + self.batch_size - 1) // self.batch_size
        return k - 1 if k > 1 and self.n % self.batch_size == 1 else k

    def __call__(self, epoch: int) -> Iterator[dict[str, Any]]:
        from torch.utils.data import DataLoader

        set_epoch = getattr(self.dataset, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        batches = self.batch_indices(epoch)
        order = [i for b in batches for i in b]
        positions, k = [], 0
        for b in batches:
            positions.append(list(range(k, k + len(b))))
            k += len(b)
        draws: Any = _Draws(self.dataset, order)
        loader: Any = DataLoader(
            draws,
            batch_sampler=positions,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            pin_memory=self.pin_memory,
            worker_init_fn=_one_thread if self.num_workers > 0 else None,
        )
        yield from loader

    def state_dict(self) -> dict[str, Any]:
        """What fixes the batch stream (checked on resume)."""
        return {"seed": self.seed, "n": self.n, "batch_size": self.batch_size, "sampling": self.sampling}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Check that a checkpoint was written for this same batch stream.

        Raises:
            ConfigError: the checkpoint's stream differs (another manifest, seed or batch size).
        """
        if state != self.state_dict():
            raise ConfigError(
                f"the checkpoint was written for another batch stream ({state}, here {self.state_dict()}); "
                "use a fresh run folder"
            )
