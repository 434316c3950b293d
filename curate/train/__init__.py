"""Layer 2: the minimal training engine (method protocol, loop, batches, checkpoints, resume, hooks)."""

from curate.train.data import LoaderBatches, TensorBatches
from curate.train.heads import ERM, HEAD_TRAINING, HEADS, forward, make_head
from curate.train.loop import (
    PRECISIONS,
    Hook,
    Method,
    TrainConfig,
    fit,
    make_optimizer,
    predict_batches,
    to_device,
)

__all__ = [
    "ERM",
    "HEADS",
    "HEAD_TRAINING",
    "PRECISIONS",
    "Hook",
    "LoaderBatches",
    "Method",
    "TensorBatches",
    "TrainConfig",
    "fit",
    "forward",
    "make_head",
    "make_optimizer",
    "predict_batches",
    "to_device",
]
