"""``DynamicsRecorder``: a training hook that writes one shard of per-sample signals per epoch.

During an epoch it only copies each batch's logits (and the norm of the last layer's input) into
a preallocated buffer on the training device — one indexed copy per batch — and computes loss,
margin, correctness, p(true) and EL2N for all samples at once when the epoch ends. Signals are
those of the model as it sees each sample during training (Toneva et al.; Swayamdipta et al.).
Shards are written atomically; :meth:`done_epochs` lets a rerun skip finished epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path
from curate.dynamics.log import CORRECT, EL2N, EPOCH, FEAT_NORM, LOSS, MARGIN, PROB_TRUE, RUN, shard_name


def epoch_signals(logits: Any, labels: Any) -> dict[str, Any]:
    """Loss, margin, correctness, p(true) and EL2N for ``(N, C)`` logits and ``(N,)`` labels (torch)."""
    import torch

    logits = logits.float()
    logp = torch.log_softmax(logits, dim=1)
    p = logp.exp()
    y = labels.long().unsqueeze(1)
    true_logit = logits.gather(1, y).squeeze(1)
    other = logits.scatter(1, y, float("-inf")).amax(dim=1)
    onehot = torch.zeros_like(p).scatter_(1, y, 1.0)
    return {
        LOSS: -logp.gather(1, y).squeeze(1),
        MARGIN: true_logit - other,
        CORRECT: logits.argmax(dim=1) == y.squeeze(1),
        PROB_TRUE: p.gather(1, y).squeeze(1),
        EL2N: (p - onehot).norm(dim=1),
    }


class DynamicsRecorder:
    """Record per-sample signals of one training run into ``folder/run=<run>/epoch=NNNN.parquet``.

    Args:
        folder: output folder (shared by several runs).
        ids: sample id of each dataset index (the ``index`` key of the batches).
        labels: label of each dataset index.
        n_classes: number of classes (logit width).
        run: number of this independent run.
        device: device the logits live on.
    """

    def __init__(
        self, folder: str | Path, ids: list[str], labels: Any, n_classes: int, *, run: int = 0, device: str = "cpu"
    ) -> None:
        self.folder = Path(folder) / f"run={run}"
        self.ids = np.asarray(ids, dtype=object)
        self.labels = labels
        self.n_classes = n_classes
        self.run = run
        self.device = device
        self._logits: Any = None
        self._fnorm: Any = None
        self._seen: Any = None

    def done_epochs(self) -> set[int]:
        """Epochs whose shard is already on disk."""
        return {int(p.stem.split("=")[1]) for p in self.folder.glob("epoch=*.parquet")}

    def on_epoch_start(self, epoch: int) -> None:
        import torch

        n = len(self.ids)
        self._logits = torch.zeros((n, self.n_classes), device=self.device)
        self._fnorm = torch.full((n,), float("nan"), device=self.device)
        self._seen = torch.zeros(n, dtype=torch.bool, device=self.device)

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None:
        idx = batch["index"]
        self._logits[idx] = out["logits"].detach().float()
        feats = out.get("features")
        if feats is not None:
            self._fnorm[idx] = feats.detach().float().norm(dim=1)
        self._seen[idx] = True

    def on_epoch_end(self, epoch: int) -> None:
        import torch

        seen = self._seen.nonzero().squeeze(1)
        labels = torch.as_tensor(self.labels, device=self.device)[seen]
        sig = {k: v.cpu().numpy() for k, v in epoch_signals(self._logits[seen], labels).items()}
        rows = seen.cpu().numpy()
        fnorm = self._fnorm[seen].cpu().numpy()
        frame = pl.DataFrame(
            {
                RUN: np.full(len(rows), self.run, dtype=np.int32),
                EPOCH: np.full(len(rows), epoch, dtype=np.int32),
                S.SAMPLE_ID: self.ids[rows].tolist(),
                **{k: v.astype(np.float32) if k != CORRECT else v for k, v in sig.items()},
                FEAT_NORM: fnorm.astype(np.float32),
            }
        ).with_columns(pl.col(FEAT_NORM).fill_nan(None))
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / shard_name(epoch)) as tmp:
            frame.write_parquet(tmp)
        self._logits = self._fnorm = self._seen = None
