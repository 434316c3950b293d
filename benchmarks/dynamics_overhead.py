"""Recording training dynamics vs the same training loop unrecorded.

The proxy loop of ``curate.dynamics.train_proxy`` (``curate.train.fit`` with a head on frozen
embeddings, per-epoch checkpoints) on 50,000 x 384 embeddings, linear and MLP heads, 10 epochs,
batch 128, CPU. Two measurements, both from this run:

* A/B wall time: recorded and unrecorded runs interleaved, best of ``--repeats`` each (timeit's
  convention; this shared 2-core VM's timings vary by +-30% run to run, so medians are also shown);
* in-loop share: inside the recorded runs, the time the loop spends in the recorder's hooks
  (per-batch copies, handing each epoch's buffers to the background writer, the final flush) over
  the rest of the loop — immune to machine noise, but blind to the writer thread's competition for
  the two cores, which the A/B figure includes.

Target: <= 5% overhead. Run: ``.venv/bin/python -m benchmarks.dynamics_overhead [--n 50000]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("CURATE_NO_PROGRESS", "1")


class TimedHook:
    """Wraps a hook and adds up the wall time spent in it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0

    def _call(self, name: str, *args: Any) -> None:
        t0 = time.perf_counter()
        getattr(self.inner, name)(*args)
        self.seconds += time.perf_counter() - t0

    def on_epoch_start(self, epoch: int) -> None:
        self._call("on_epoch_start", epoch)

    def on_batch(self, epoch: int, batch: dict, out: dict) -> None:
        self._call("on_batch", epoch, batch, out)

    def on_epoch_end(self, epoch: int) -> None:
        self._call("on_epoch_end", epoch)

    def flush(self) -> None:
        self._call("flush")

    def done_epochs(self) -> set[int]:
        return self.inner.done_epochs()


def one_run(
    x: np.ndarray, labels: np.ndarray, ids: list[str], head: str, epochs: int, record: bool
) -> tuple[float, float]:
    """Wall time of one proxy training run and the time spent inside the recorder."""
    import torch

    from curate.dynamics import DynamicsRecorder
    from curate.train import ERM, TensorBatches, TrainConfig, fit, make_head

    folder = Path(tempfile.mkdtemp())
    cfg = TrainConfig(epochs=epochs, batch_size=128, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = make_head(head, x.shape[1], 2)
    batches = TensorBatches(torch.from_numpy(x), torch.from_numpy(labels), batch_size=128, seed=0)
    static = np.linalg.norm(x, axis=1) if head == "linear" else None  # as train_proxy does
    hook = TimedHook(DynamicsRecorder(folder, ids, labels, 2, static_feat_norm=static))
    t0 = time.perf_counter()
    fit(ERM(model), batches, cfg, hooks=[hook] if record else [], checkpoint_dir=folder / "run=0")
    total = time.perf_counter() - t0
    shutil.rmtree(folder)
    return total, hook.seconds


def main() -> None:
    from benchmarks._common import report

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=args.n).astype(np.int64)
    x = (rng.normal(size=(args.n, args.d)) + 0.3 * labels[:, None]).astype(np.float32)
    ids = [f"s{i}" for i in range(args.n)]
    lines = [f"data: {args.n} x {args.d}, {args.epochs} epochs, batch 128, CPU; {args.repeats} interleaved runs each"]
    for head in ("linear", "mlp"):
        plain: list[float] = []
        rec: list[float] = []
        share: list[float] = []
        for _ in range(args.repeats):
            plain.append(one_run(x, labels, ids, head, args.epochs, record=False)[0])
            total, in_hook = one_run(x, labels, ids, head, args.epochs, record=True)
            rec.append(total)
            share.append(in_hook / (total - in_hook))
        lines.append(
            f"{head} head: in-loop recorder share {100 * statistics.median(share):.1f}% (median; target <= 5%); "
            f"A/B best of {args.repeats}: unrecorded {min(plain):.2f} s, recorded {min(rec):.2f} s, "
            f"{100 * (min(rec) / min(plain) - 1):+.1f}%; medians {statistics.median(plain):.2f} / "
            f"{statistics.median(rec):.2f} s"
        )
    report("dynamics_overhead", lines)


if __name__ == "__main__":
    main()
