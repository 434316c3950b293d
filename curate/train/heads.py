"""Small heads trained on frozen embeddings (the proxy models of training dynamics) and the ERM step."""

from __future__ import annotations

from typing import Any

from curate.errors import ConfigError

HEADS = ("linear", "mlp")
# How a head on frozen embeddings trains, both the final head of a run and the proxy whose training
# dynamics the detectors and prune read: one setting for both, as the data-pruning authors score
# EL2N on a run with the same hyperparameters as the retraining (METHODS.md, prune steps 1 and 5).
# AdamW, 30 epochs at a constant rate (selection by validation WGA keeps the best epoch).
HEAD_TRAINING: dict[str, Any] = {
    "epochs": 30, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "optimizer": "adamw", "scheduler": "constant",
    "max_grad_norm": None,
}  # fmt: skip


def make_head(kind: str, in_dim: int, n_classes: int, *, hidden: int = 256) -> Any:
    """A ``torch.nn.Module`` mapping ``(B, in_dim)`` to ``(logits, features)``.

    ``features`` is the input of the last linear layer (the embedding itself for ``linear``).
    """
    import torch
    from torch import nn

    if kind not in HEADS:
        raise ConfigError.bad_param("make_head()", "head", f"one of {HEADS}", kind)

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body: nn.Module = (
                nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU()) if kind == "mlp" else nn.Identity()
            )
            self.fc = nn.Linear(hidden if kind == "mlp" else in_dim, n_classes)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = self.body(x)
            return self.fc(h), h

    return Head()


def forward(model: Any, batch: dict[str, Any]) -> Any:
    """``model(x)``, or ``model(x, mix_x, mix_lambda)`` when the batch carries mixing pairs for the model."""
    if "mix_x" in batch:
        return model(batch["x"], batch["mix_x"], batch["mix_lambda"])
    return model(batch["x"])


class ERM:
    """Plain (optionally sample-weighted) cross-entropy on a model returning ``(logits, features)``."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def step(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch.nn.functional as F

        logits, feats = forward(self.model, batch)
        losses = F.cross_entropy(logits, batch["label"], reduction="none")
        w = batch.get("weight")
        loss = losses.mean() if w is None else (losses * w).sum() / w.sum()
        return {"loss": loss, "logits": logits, "features": feats}
