"""The one training loop: methods, batches, hooks, checkpoints and resume.

A *method* turns a batch into ``{"loss", "logits"[, "features"]}`` (timm's task protocol); the loop
does the optimisation, calls hooks (the dynamics recorder is one), and after every epoch writes an
atomic checkpoint so that a rerun resumes after the last finished epoch with the same batch order.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from curate._core.io import atomic_path
from curate._core.progress import progress
from curate._core.seed import derive_seed
from curate.errors import ConfigError

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings; ``seed`` fixes initialisation and batch order."""

    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 128
    optimizer: str = "adamw"
    momentum: float = 0.9
    seed: int = 0

    def __post_init__(self) -> None:
        where = "TrainConfig()"
        if self.epochs < 1:
            raise ConfigError.bad_param(where, "epochs", "an integer >= 1", self.epochs)
        if self.batch_size < 1:
            raise ConfigError.bad_param(where, "batch_size", "an integer >= 1", self.batch_size)
        if not self.lr > 0:
            raise ConfigError.bad_param(where, "lr", "a float > 0", self.lr)
        if self.weight_decay < 0:
            raise ConfigError.bad_param(where, "weight_decay", "a float >= 0", self.weight_decay)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError.bad_param(where, "optimizer", f"one of {OPTIMIZERS}", self.optimizer)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (cache key and provenance)."""
        return asdict(self)


class Method(Protocol):
    """A training method: owns the model and maps a batch to loss and logits."""

    model: Any

    def step(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Return ``{"loss": scalar, "logits": (B, C)[, "features": (B, h)]}`` for ``batch``."""
        ...


class Hook(Protocol):
    """Observer of training; the dynamics recorder implements it."""

    def on_epoch_start(self, epoch: int) -> None: ...

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None: ...

    def on_epoch_end(self, epoch: int) -> None: ...


class Batches(Protocol):
    """Batches of one epoch; the same ``epoch`` always gives the same order."""

    def __call__(self, epoch: int) -> Iterable[dict[str, Any]]: ...

    def __len__(self) -> int: ...


class TensorBatches:
    """Shuffled mini-batches over in-memory tensors; keys: ``x``, ``label``, ``index``, ``weight`` when
    given, and one key per ``extra`` per-sample tensor (e.g. GroupDRO's ``group``).

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
    ) -> None:
        import torch

        self.x = x.to(device)
        self.label = label.to(device)
        self.weight = None if weight is None else weight.to(device)
        self.extra = {k: v.to(device) for k, v in (extra or {}).items()}
        self.index = torch.arange(len(label), device=device)
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


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> Any:
    """AdamW or SGD (with momentum) from ``cfg``."""
    import torch

    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _hook_epochs(hooks: Sequence[Hook]) -> list[set[int]]:
    """Epochs each hook has made durable, for hooks that write asynchronously (``done_epochs``)."""
    return [h.done_epochs() for h in hooks if hasattr(h, "done_epochs")]


def _resume_state(folder: Path, hooks: Sequence[Hook]) -> dict[str, Any] | None:
    """The newest checkpoint whose epoch every asynchronous hook has on disk (or None: start over).

    Invariant kept by :func:`fit`: when the checkpoint of epoch ``e`` is written, hooks have made
    epochs ``<= e - 1`` durable, so the previous checkpoint is always a consistent fallback.
    """
    import torch

    done = _hook_epochs(hooks)
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        path = folder / name
        if path.exists():
            state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
            if all(int(state["epoch"]) in d for d in done):
                return state
    return None


def fit(
    method: Method,
    batches: Batches,
    cfg: TrainConfig,
    *,
    hooks: Sequence[Hook] = (),
    checkpoint_dir: str | Path | None = None,
    desc: str = "training",
) -> int:
    """Train ``method.model`` for ``cfg.epochs`` epochs, resuming from ``checkpoint_dir`` when present.

    Hooks may finish an epoch's work in the background (the dynamics recorder writes its shard
    while the next epoch trains): they expose ``flush()`` and ``done_epochs()``, the loop keeps the
    previous checkpoint too, and a resume starts after the newest epoch that every hook has on disk.

    Returns:
        The number of epochs run in this call (0 when the checkpoint was already complete).
    """
    import torch

    opt = make_optimizer(method.model.parameters(), cfg)
    start = 0
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = _resume_state(folder, hooks) if folder is not None else None
    if state is not None:
        method.model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start = int(state["epoch"]) + 1
    method.model.train()
    try:
        with progress((cfg.epochs - start) * len(batches), desc) as bar:
            for epoch in range(start, cfg.epochs):
                for h in hooks:
                    h.on_epoch_start(epoch)
                for batch in batches(epoch):
                    out = method.step(batch)
                    opt.zero_grad(set_to_none=True)
                    out["loss"].backward()
                    opt.step()
                    for h in hooks:
                        h.on_batch(epoch, batch, out)
                    bar.advance()
                for h in hooks:
                    h.on_epoch_end(epoch)
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                    if (folder / CHECKPOINT).exists():
                        os.replace(folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT)
                    with atomic_path(folder / CHECKPOINT) as tmp:
                        torch.save(
                            {"model": method.model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, tmp
                        )
    finally:
        for h in hooks:
            flush = getattr(h, "flush", None)
            if flush is not None:
                flush()
    method.model.eval()
    return cfg.epochs - start
