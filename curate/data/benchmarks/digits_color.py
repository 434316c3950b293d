"""``digits-color``: scikit-learn's real handwritten digits; label = digit < 5; ``a`` = background colour.

Small (1,797 source images) and fast: the benchmark unit tests use. Each image is the 8×8 digit
upscaled to 24×24 at a random offset in a 32×32 canvas, white strokes over a jittered red
(``a = 0``) or blue (``a = 1``) background.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate.data.benchmarks._common import BENCHMARKS, Benchmark, Item, png_bytes

SIZE = 32
DIGIT_SIZE = 24
BACKGROUNDS = np.array([[200, 60, 60], [60, 90, 200]], dtype=np.float64)  # red, blue
JITTER = 30.0


def _prepare() -> tuple[dict[str, dict[int, np.ndarray]], Any]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    labels = (digits.target >= 5).astype(int)  # 0: digit < 5, 1: digit >= 5
    pools = {"train": {y: np.flatnonzero(labels == y) for y in (0, 1)}}
    glyphs = [
        np.asarray(
            Image.fromarray((img / 16.0 * 255).astype(np.uint8)).resize(
                (DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.BILINEAR
            ),
            dtype=np.float64,
        )
        / 255.0
        for img in digits.images
    ]

    def render(item: Item, rng: np.random.Generator) -> bytes:
        bg = np.clip(BACKGROUNDS[item.a] + rng.uniform(-JITTER, JITTER, 3), 0, 255)
        canvas = np.broadcast_to(bg, (SIZE, SIZE, 3)).copy()
        alpha = np.zeros((SIZE, SIZE))
        ox, oy = rng.integers(0, SIZE - DIGIT_SIZE + 1, size=2)
        alpha[oy : oy + DIGIT_SIZE, ox : ox + DIGIT_SIZE] = glyphs[item.source_index]
        out = canvas * (1 - alpha[..., None]) + 245.0 * alpha[..., None]
        return png_bytes(np.round(out).astype(np.uint8))

    return pools, render


BENCHMARKS.add(
    "digits-color",
    Benchmark(
        name="digits-color",
        modality="image",
        description="sklearn digits; label = digit < 5 vs >= 5; spurious attribute = background colour (red/blue)",
        label_names=("digit < 5", "digit >= 5"),
        attribute_name="background",
        attribute_values=("red", "blue"),
        id_prefix="dc",
        defaults=(1000, 50, 100),
        prepare=_prepare,
        source="scikit-learn load_digits (UCI optical recognition of handwritten digits)",
    ),
)
