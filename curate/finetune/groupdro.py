"""GroupDRO (Sagawa et al., ICLR 2020), online algorithm: group weights ``q_g ← q_g·exp(η·loss_g)``,
normalised, loss ``Σ_g q_g·loss_g``; ``η`` = 0.01 (their default step size). ``q`` is training
state: :meth:`GroupDRO.state_dict` puts it in the loop's checkpoint, so a resumed run continues
with the weights it had. A batch's ``weight`` (a manifest's, on a head) weights each group's mean
loss; group sums are a one-hot product (deterministic on CUDA, unlike ``scatter_add``)."""

from __future__ import annotations

from typing import Any

from curate.train import forward


class GroupDRO:
    """Online GroupDRO step over batches with a ``group`` key (the loop's method protocol)."""

    def __init__(self, model: Any, n_groups: int, eta: float) -> None:
        import torch

        self.model = model
        self.eta = eta
        self.q = torch.full((n_groups,), 1.0 / n_groups)

    def step(self, batch: dict[str, Any]) -> dict[str, Any]:
        import torch
        import torch.nn.functional as F

        logits, feats = forward(self.model, batch)
        losses = F.cross_entropy(logits.float(), batch["label"], reduction="none")
        n = len(self.q)
        member = F.one_hot(batch["group"], n).to(losses.dtype)  # (B, G)
        w = batch.get("weight")
        w = torch.ones_like(losses) if w is None else w.to(losses.dtype)
        counts = member.T @ w
        group_loss = (member.T @ (w * losses)) / counts.clamp(min=1e-12)
        present = counts > 0
        with torch.no_grad():
            self.q = self.q.to(losses.device)
            self.q[present] *= torch.exp(self.eta * group_loss[present].detach())
            self.q /= self.q.sum()
        return {"loss": (self.q * group_loss).sum(), "logits": logits, "features": feats}

    def state_dict(self) -> dict[str, Any]:
        """The group weights (checkpointed with the model)."""
        return {"q": self.q.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the group weights of a checkpoint."""
        self.q = state["q"].clone()
