"""Layer 2: the minimal training engine (method protocol, loop, checkpoints, resume, hooks)."""

from curate.train.heads import ERM, HEADS, make_head
from curate.train.loop import Hook, Method, TensorBatches, TrainConfig, fit, make_optimizer

__all__ = ["ERM", "HEADS", "Hook", "Method", "TensorBatches", "TrainConfig", "fit", "make_head", "make_optimizer"]
