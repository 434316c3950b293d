"""``DynamicsRecorder``: a training hook that writes one shard of per-sample signals per epoch.

During an epoch it only copies each batch's logits (and the norm of the last layer's input) into
a preallocated buffer on the training device — one indexed copy per batch — and computes loss,
margin, correctness, p(true) and EL2N for all samples at once when the epoch ends, in a background
thread that writes the shard while the next epoch trains (``flush`` waits for it). Signals are
those of the model as it sees each sample during training (Toneva et al.; Swayamdipta et al.).
Shards are written atomically; :meth:`done_epochs` tells the loop which epochs are on disk, so a
rerun after ``kill -9`` resumes from a checkpoint whose epochs all have their shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path
from curate.dynamics.log import (
    CORRECT,
    EL2N,
    EPOCH,
    FEAT_NORM,
    LOSS,
    MARGIN,
    PROB_TRUE,
    PROBS,
    RUN,
    epoch_at_fraction,
    shard_name,
)


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
        static_feat_norm: per-index norm of the last layer's input when it does not change during
            training (a linear head on frozen embeddings); per-batch features are then ignored.
        keep_probs: also write each row's softmax vector (``probs``; SPARE's early outputs pass).
    """

    def __init__(
        self,
        folder: str | Path,
        ids: list[str],
        labels: Any,
        n_classes: int,
        *,
        run: int = 0,
        device: str = "cpu",
        static_feat_norm: Any = None,
        keep_probs: bool = False,
    ) -> None:
        import torch

        self.folder = Path(folder) / f"run={run}"
        self.ids = pl.Series(S.SAMPLE_ID, ids, dtype=pl.String)
        self.labels = torch.as_tensor(np.array(labels), device=device).long()
        self.n_classes = n_classes
        self.run = run
        self.device = device
        self.keep_probs = keep_probs
        self._static_fnorm = (
            None
            if static_feat_norm is None
            else torch.as_tensor(np.asarray(static_feat_norm, dtype=np.float32), device=device)
        )
        self._logits: Any = None
        self._fnorm: Any = None
        self._pending: Any = None
        self._executor: Any = None

    def done_epochs(self) -> set[int]:
        """Epochs whose shard is already on disk."""
        return {int(p.stem.split("=")[1]) for p in self.folder.glob("epoch=*.parquet")}

    def on_epoch_start(self, epoch: int) -> None:
        import torch

        n = len(self.ids)
        # NaN marks "not seen this epoch": no separate mask to update per batch
        self._logits = torch.full((n, self.n_classes), float("nan"), device=self.device)
        self._fnorm = (
            self._static_fnorm if self._static_fnorm is not None else torch.full((n,), float("nan"), device=self.device)
        )

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None:
        # one indexed copy per batch (two when feature norms change): everything else waits for epoch end
        idx = batch["index"]
        self._logits.index_copy_(0, idx, out["logits"].detach().float())  # bf16/fp16 under autocast
        if self._static_fnorm is None:
            feats = out.get("features")
            if feats is not None:
                import torch

                self._fnorm.index_copy_(0, idx, torch.linalg.vector_norm(feats.detach().float(), dim=1))

    def on_epoch_end(self, epoch: int) -> None:
        # Signals are computed here (torch, on the training device); only the Parquet write runs in a
        # background thread while the next epoch trains. At most one write is in flight, so when this
        # returns every earlier epoch is on disk.
        self.flush()
        logits, fnorm = self._logits, self._fnorm
        self._logits = self._fnorm = None
        seen_mask = ~logits[:, 0].isnan()
        all_seen = bool(seen_mask.all())
        seen = seen_mask.nonzero().squeeze(1)
        if not all_seen:
            logits, fnorm = logits[seen], fnorm[seen]
        labels = self.labels if all_seen else self.labels[seen]
        sig = {k: v.cpu().numpy() for k, v in epoch_signals(logits, labels).items()}
        sig[FEAT_NORM] = fnorm.cpu().numpy().astype(np.float32)
        if self.keep_probs:
            import torch

            sig[PROBS] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        ids = self.ids if all_seen else self.ids.gather(seen.cpu().numpy())
        self._pending = self._pool().submit(self._write, epoch, ids, sig)

    def flush(self) -> None:
        """Wait until every submitted shard is on disk (re-raising a failed write)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def _pool(self) -> Any:
        if self._executor is None:
            from concurrent.futures import ThreadPoolExecutor

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-recorder")
        return self._executor

    def _write(self, epoch: int, ids: pl.Series, sig: dict[str, np.ndarray]) -> None:
        n = len(ids)
        frame = pl.DataFrame(
            [
                pl.Series(RUN, np.full(n, self.run, dtype=np.int32)),
                pl.Series(EPOCH, np.full(n, epoch, dtype=np.int32)),
                ids,
                *[pl.Series(k, v, nan_to_null=k == FEAT_NORM) for k, v in sig.items() if k != PROBS],
                *([pl.Series(PROBS, sig[PROBS]).cast(pl.List(pl.Float32))] if PROBS in sig else []),
            ]
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / shard_name(epoch)) as tmp:
            frame.write_parquet(tmp, compression="lz4", statistics=False)


class EvalPass:
    """Training hook: at chosen epochs, an eval-mode pass over the training rows recorded as shards.

    Signals from minibatch logits during training mix a moving model with augmentation and
    dropout; the data-pruning authors score EL2N and SPARE's authors cluster the outputs of the
    network in eval mode over the train set at an epoch. This hook calls
    ``predict()`` (eval-mode ``(logits, features)`` of every row, in the recorders' index order)
    once after each epoch that any target wants, and writes it through each such target's recorder
    (same shard layout and schema as in-training dynamics, under its own folder).

    Args:
        predict: eval-mode ``(logits, features)`` numpy arrays of the rows.
        targets: ``(recorder, epochs)`` pairs: where the shards go (``ids`` = the rows predicted) and
            the 0-based epochs after which to record there.
        total_epochs: the run's epoch count (epochs no target wants count as done for resume).
        restore: called after each pass (e.g. ``model.train``).
    """

    def __init__(
        self,
        predict: Any,
        targets: list[tuple[DynamicsRecorder, set[int]]],
        total_epochs: int,
        restore: Any = None,
    ) -> None:
        self.predict = predict
        self.targets = [(rec, set(epochs)) for rec, epochs in targets]
        self.total_epochs = total_epochs
        self.restore = restore

    def done_epochs(self) -> set[int]:
        """Epochs whose passes are all on disk (an epoch no target wants needs none)."""
        done = set(range(self.total_epochs))
        for rec, epochs in self.targets:
            done -= epochs - rec.done_epochs()
        return done

    def on_epoch_start(self, epoch: int) -> None:
        pass

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, epoch: int) -> None:
        wanted = [rec for rec, epochs in self.targets if epoch in epochs]
        if not wanted:
            return
        import torch

        logits, feats = self.predict()
        for rec in wanted:
            rec.on_epoch_start(epoch)
            rec.on_batch(
                epoch,
                {"index": torch.arange(len(logits), device=rec.device)},
                {
                    "logits": torch.as_tensor(logits, device=rec.device),
                    "features": torch.as_tensor(feats, device=rec.device),
                },
            )
            rec.on_epoch_end(epoch)
            rec.flush()
        if self.restore is not None:
            self.restore()

    def flush(self) -> None:
        """Every pass is written synchronously; nothing to wait for."""
        for rec, _ in self.targets:
            rec.flush()


def eval_epochs(total_epochs: int, fractions: tuple[float, ...]) -> set[int]:
    """The 0-based epochs at ``fractions`` of training (:func:`~curate.dynamics.log.epoch_at_fraction`)."""
    return {epoch_at_fraction(total_epochs, f) for f in fractions}
