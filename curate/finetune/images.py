"""Image inputs and a small CNN trained from scratch, for methods that need pixels (MaskTune).

Images are decoded once into a float tensor cache (``size × size``, [0, 1], RGB), so training on
small benchmarks stays fast on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.errors import InputDataError

IMAGE_SIZE = 32


def load_images(table: SampleTable, ids: list[str], *, size: int = IMAGE_SIZE) -> np.ndarray:
    """``(N, 3, size, size)`` float32 pixels in [0, 1] for ``ids`` (a bad file names its sample)."""
    from PIL import Image

    if table.modality != "image":
        raise InputDataError("this method needs an image dataset", file=table.where)
    paths = dict(zip(table.frame[S.SAMPLE_ID].to_list(), table.frame[S.PATH].to_list(), strict=True))
    out = np.empty((len(ids), 3, size, size), dtype=np.float32)
    for k, sid in enumerate(ids):
        try:
            with Image.open(table.resolve(paths[sid])) as im:
                arr = np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
        except (OSError, ValueError) as e:
            raise InputDataError(f"cannot read image ({e})", file=table.where, sample_id=sid, column=S.PATH) from e
        out[k] = arr.transpose(2, 0, 1) / 255.0
    return out


def small_cnn(n_classes: int, *, width: int = 32) -> Any:
    """Three conv blocks (GroupNorm: no train/eval statistics gap), global average pooling, a linear classifier.

    ``forward`` returns ``(logits, pooled features)``; ``model.last_maps`` holds the last conv block's
    feature maps of the latest forward pass (for Grad-CAM-style saliency).
    """
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, width, 3, padding=1),
                nn.GroupNorm(8, width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(width, 2 * width, 3, padding=1),
                nn.GroupNorm(8, 2 * width),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(2 * width, 4 * width, 3, padding=1),
                nn.GroupNorm(8, 4 * width),
                nn.ReLU(),
            )
            self.fc = nn.Linear(4 * width, n_classes)
            self.last_maps: torch.Tensor | None = None

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            maps = self.body(x)
            self.last_maps = maps
            h = maps.mean(dim=(2, 3))
            return self.fc(h), h

    return SmallCNN()
