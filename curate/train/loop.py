"""The one training loop: methods, batches, hooks, checkpoints and resume.

A *method* turns a batch into ``{"loss", "logits"[, "features"]}`` (timm's task protocol); the loop
places batches on the device, runs the optimiser, learning-rate schedule and (on CUDA) mixed
precision, calls hooks (the dynamics recorder and model selection are hooks), and after every epoch
writes an atomic checkpoint holding the model, the optimiser, the schedule, the gradient scaler,
the method's own state (GroupDRO's ``q``) and the batch stream's state, so that a rerun resumes
after the last finished epoch and ends byte-equal to an uninterrupted run: the batch order of epoch
``e`` depends only on ``(seed, e)``, and so does the random stream (dropout, drop-connect) the
epoch draws from.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from curate._core.io import atomic_path
from curate._core.progress import progress
from curate._core.seed import derive_seed
from curate.errors import ConfigError
from curate.train.heads import HEAD_TRAINING

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("constant", "cosine", "linear")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Optimisation settings; ``seed`` fixes initialisation, batch order and the per-epoch random stream.

    ``scheduler``: ``constant``, ``cosine`` (to 0 over all steps) or ``linear`` (to 0), each after
    ``warmup_fraction`` of the steps of linear warm-up. ``precision``: autocast dtype on CUDA
    (``bf16``/``fp16``, the latter with a gradient scaler); the CPU always trains in fp32.
    ``max_grad_norm``: clip the gradient norm (None: no clipping). ``decay_matrices_only``: no
    weight decay on biases and normalisation weights.
    """

    epochs: int = HEAD_TRAINING["epochs"]
    lr: float = HEAD_TRAINING["lr"]
    weight_decay: float = HEAD_TRAINING["weight_decay"]
    batch_size: int = HEAD_TRAINING["batch_size"]
    optimizer: str = HEAD_TRAINING["optimizer"]
    momentum: float = 0.9
    scheduler: str = HEAD_TRAINING["scheduler"]
    warmup_fraction: float = 0.0
    precision: str = "fp32"
    max_grad_norm: float | None = None
    decay_matrices_only: bool = False
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
        if self.scheduler not in SCHEDULERS:
            raise ConfigError.bad_param(where, "scheduler", f"one of {SCHEDULERS}", self.scheduler)
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError.bad_param(where, "warmup_fraction", "a float in [0, 1)", self.warmup_fraction)
        if self.precision not in PRECISIONS:
            raise ConfigError.bad_param(where, "precision", f"one of {PRECISIONS}", self.precision)
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ConfigError.bad_param(where, "max_grad_norm", "a float > 0 or None", self.max_grad_norm)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (cache key and provenance)."""
        return asdict(self)


class Method(Protocol):
    """A training method: owns the model and maps a batch to loss and logits.

    A method with state of its own (GroupDRO's group weights) also exposes ``state_dict()`` and
    ``load_state_dict(state)``; the loop checkpoints it with the model.
    """

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


def make_optimizer(params: Iterable[Any], cfg: TrainConfig) -> Any:
    """AdamW or SGD (with momentum) from ``cfg``; with ``cfg.decay_matrices_only``, biases and
    normalisation weights (1-D parameters) get no weight decay (the BERT fine-tuning recipes)."""
    import torch

    params = list(params)
    groups: Any = params
    if cfg.decay_matrices_only:
        groups = [
            {"params": [p for p in params if p.ndim > 1]},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
        ]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at optimiser step ``step`` of ``total`` (warm-up, then the schedule)."""
    warm = int(cfg.warmup_fraction * total)
    if step < warm:
        return (step + 1) / warm
    if cfg.scheduler == "constant":
        return 1.0
    t = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * t)) if cfg.scheduler == "cosine" else max(0.0, 1.0 - t)


def make_scheduler(opt: Any, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    """A ``LambdaLR`` stepping once per batch through :func:`lr_factor`."""
    import torch

    total = cfg.epochs * max(1, steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, cfg))


def to_device(batch: Any, device: str, *, channels_last: bool = False) -> Any:
    """Move every tensor of a (nested) batch to ``device``; 4-D tensors to channels-last when asked."""
    import torch

    if isinstance(batch, torch.Tensor):
        t = batch.to(device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if channels_last and t.ndim == 4 else t
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last=channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], torch.Tensor):
        return type(batch)(to_device(v, device, channels_last=channels_last) for v in batch)
    return batch


def autocast(device: str, precision: str) -> Any:
    """The autocast context of ``precision`` on CUDA; a no-op on the CPU or in fp32."""
    import torch

    if precision == "fp32" or not device.startswith("cuda"):
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def epoch_rng(seed: int, epoch: int, device: str) -> Any:
    """A context in which the global torch random streams (CPU and ``device``) are seeded by
    ``(seed, epoch)`` and restored afterwards: dropout draws the same numbers in a resumed run."""
    import torch

    if device.startswith("cuda"):
        index = torch.device(device).index
        devices = [torch.cuda.current_device() if index is None else index]
    else:
        devices = []

    @contextlib.contextmanager
    def ctx() -> Iterator[None]:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derive_seed(seed, "epoch-rng", epoch))
            yield

    return ctx()


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


def _state_of(obj: Any) -> Any:
    fn = getattr(obj, "state_dict", None)
    return None if fn is None else fn()


def _restore(obj: Any, state: Any) -> None:
    if state is not None and hasattr(obj, "load_state_dict"):
        obj.load_state_dict(state)


def fit(
    method: Method,
    batches: Batches,
    cfg: TrainConfig,
    *,
    hooks: Sequence[Hook] = (),
    checkpoint_dir: str | Path | None = None,
    desc: str = "training",
    device: str = "cpu",
    channels_last: bool = False,
) -> int:
    """Train ``method.model`` on ``device`` for ``cfg.epochs`` epochs, resuming from ``checkpoint_dir``.

    Only parameters with ``requires_grad`` are optimised (frozen layers stay as they are). Hooks
    may finish an epoch's work in the background (the dynamics recorder writes its shard while the
    next epoch trains): they expose ``flush()`` and ``done_epochs()``, the loop keeps the previous
    checkpoint too, and a resume starts after the newest epoch that every hook has on disk.

    Args:
        device: a resolved torch device; the model and every batch are moved there.
        channels_last: 4-D inputs and the model in channels-last layout (faster convolutions).

    Returns:
        The number of epochs run in this call (0 when the checkpoint was already complete).
    """
    import torch

    model = method.model
    _place(model, device, channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"{desc}: no trainable parameters (every layer is frozen)")
    opt = make_optimizer(params, cfg)
    sched = make_scheduler(opt, cfg, len(batches))
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and device.startswith("cuda") else None
    start = 0
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    state = _resume_state(folder, hooks) if folder is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _restore(method, state.get("method"))
        _restore(batches, state.get("batches"))
        start = int(state["epoch"]) + 1
    model.train()
    try:
        with progress((cfg.epochs - start) * len(batches), desc) as bar:
            for epoch in range(start, cfg.epochs):
                for h in hooks:
                    h.on_epoch_start(epoch)
                with epoch_rng(cfg.seed, epoch, device):
                    for raw in batches(epoch):
                        batch = to_device(raw, device, channels_last=channels_last)
                        with autocast(device, cfg.precision):
                            out = method.step(batch)
                        opt.zero_grad(set_to_none=True)
                        loss = out["loss"]
                        if scaler is not None:
                            scaler.scale(loss).backward()
                            scaler.unscale_(opt)
                        else:
                            loss.backward()
                        if cfg.max_grad_norm is not None:
                            torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                        if scaler is not None:
                            scaler.step(opt)
                            scaler.update()
                        else:
                            opt.step()
                        sched.step()
                        for h in hooks:
                            h.on_batch(epoch, batch, out)
                        bar.advance()
                for h in hooks:
                    h.on_epoch_end(epoch)
                if folder is not None:
                    _save_checkpoint(
                        folder,
                        {
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(),
                            "scaler": None if scaler is None else scaler.state_dict(),
                            "method": _state_of(method),
                            "batches": _state_of(batches),
                            "epoch": epoch,
                        },
                    )
    finally:
        for h in hooks:
            flush = getattr(h, "flush", None)
            if flush is not None:
                flush()
    model.eval()
    return cfg.epochs - start


def _place(model: Any, device: str, channels_last: bool) -> None:
    """Move ``model`` to the device the loop trains on (every trainer's placement goes through here)."""
    import torch

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)


def _save_checkpoint(folder: Path, state: dict[str, Any]) -> None:
    """Write ``checkpoint.pt`` atomically, keeping the previous one as ``checkpoint.prev.pt``."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / CHECKPOINT).exists():
        os.replace(folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT)
    with atomic_path(folder / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def predict_batches(
    model: Any,
    batches: Iterable[dict[str, Any]],
    n: int,
    *,
    device: str = "cpu",
    precision: str = "fp32",
    channels_last: bool = False,
) -> tuple[Any, Any]:
    """Eval-mode outputs of ``model`` over ``batches`` (each with ``x`` and ``index`` in ``[0, n)``).

    Returns:
        ``(logits (n, C), features (n, h))`` float32 numpy arrays in index order; the model is left
        in eval mode.
    """
    import numpy as np
    import torch

    model.eval()
    logits = feats = None
    with torch.inference_mode(), autocast(device, precision):
        for raw in batches:
            b = to_device(raw, device, channels_last=channels_last)
            lg, h = model(b["x"])
            if logits is None:
                logits = np.zeros((n, lg.shape[1]), np.float32)
                feats = np.zeros((n, h.shape[1]), np.float32)
            idx = b["index"].cpu().numpy()
            logits[idx] = lg.float().cpu().numpy()
            feats[idx] = h.float().cpu().numpy()  # type: ignore[index]
    if logits is None or feats is None:
        raise ConfigError("predict_batches(): no batches to predict")
    return logits, feats
