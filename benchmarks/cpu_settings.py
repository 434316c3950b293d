"""Which resolution and trainable layers make fine-tuning EfficientNet-Lite0 take minutes per epoch
on this machine's CPU: the measurement behind ``FinetuneConfig``'s CPU defaults.

For each (image size, first trained stage) it fine-tunes EfficientNet-Lite0 with ``curate``'s
trainer (ERM, the papers' SGD settings, batch 64, channels-last, no workers on 2 cores) for one
epoch over ``--n`` fmnist-textures train images (64×64 PNGs), times the training phase, and
projects the minutes per epoch over the benchmark's 10,000 train images.

Run: ``.venv/bin/python -m benchmarks.cpu_settings [--n 1500]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

GRID = [(64, "all"), (96, "all"), (128, "all"), (128, "_blocks.6"), (160, "_blocks.10"), (224, "_blocks.13")]


def main() -> None:
    from benchmarks._common import EpochTimer, fmnist_subset, report
    from curate import api
    from curate.finetune import FinetuneConfig, TrainRequest, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--work", type=Path, default=Path("work/bench"))
    args = ap.parse_args()
    table = fmnist_subset(args.work, args.n)
    manifest = api.select("keep-all", table)
    lines = [f"data: fmnist-textures, {args.n} train images (64x64 PNG), one epoch each; batch 64, SGD, fp32"]
    for size, stage in GRID:
        timer = EpochTimer()
        cfg = FinetuneConfig(backbone="efficientnet-lite0", image_size=size, train_from=stage, epochs=1, batch_size=64)
        train("erm", TrainRequest(table, manifest, device="cpu", hooks=(timer,)), cfg)
        rate = timer.images[0] / timer.times[0]
        lines.append(
            f"image {size:>3} px, train from {stage:<10}: {rate:6.1f} images/s -> {10000 / rate / 60:5.2f} min "
            "per epoch over 10,000 images"
        )
        print(lines[-1], flush=True)
    report("cpu_settings", lines)


if __name__ == "__main__":
    main()
