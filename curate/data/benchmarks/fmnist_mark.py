"""``fmnist-mark``: a *localised* shortcut on real images, the setting MaskTune targets.

Label = tops & dresses vs trousers, shoes & bags (real Fashion-MNIST objects, as in
``fmnist-textures``); spurious attribute = the colour of a small square mark (6×6 pixels of the
64×64 image, under 1%) in a random corner: red (``a = 0``) or blue (``a = 1``). The background is
the same for every group (a random crop of scikit-image's real ``gravel`` texture, grey), so the
only shortcut is the mark: small, local and easy, exactly what saliency masking can find and hide.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from curate.data.benchmarks._common import BENCHMARKS, Benchmark, Item, png_bytes
from curate.data.benchmarks.fmnist_textures import CLASS_GROUPS, MASK_SCALE, OBJECT_SIZE, SIZE, load_fmnist

MARK = 6
MARK_COLOURS = np.array([[220.0, 40.0, 40.0], [40.0, 70.0, 230.0]])  # red, blue
# Inside the centre crop of the standard pretrained preprocessing (resize 256 -> crop 224 cuts 1/16 of
# each side, 4 px of 64; at 96 px, resize 110 -> crop 96, 4.1 px): revision 1 put the mark 2 px from
# the edge and the crop hid 56-60% of it (measured: 44% of its pixels visible at 224 px, 40% at 96).
MARGIN = 6


def _prepare() -> tuple[dict[str, dict[int, np.ndarray]], Any]:
    from PIL import Image
    from skimage import data as skdata

    sources = {"train": load_fmnist("train"), "test": load_fmnist("t10k")}
    pools = {}
    for src, (_, labels) in sources.items():
        y = np.vectorize(CLASS_GROUPS.__getitem__)(labels)
        pools[src] = {c: np.flatnonzero(y == c) for c in (0, 1)}
    gravel = np.asarray(skdata.gravel(), dtype=np.float64)

    def render(item: Item, rng: np.random.Generator) -> bytes:
        images = sources["test" if item.split == "test" else "train"][0]
        crop = int(rng.integers(SIZE, 193))
        y0, x0 = rng.integers(0, gravel.shape[0] - crop + 1), rng.integers(0, gravel.shape[1] - crop + 1)
        patch = Image.fromarray(gravel[y0 : y0 + crop, x0 : x0 + crop].astype(np.uint8))
        bg = np.asarray(patch.resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float64)
        canvas = np.repeat(bg[..., None], 3, axis=2) * rng.uniform(0.8, 1.1)
        obj = Image.fromarray(images[item.source_index]).resize((OBJECT_SIZE, OBJECT_SIZE), Image.Resampling.BILINEAR)
        obj_a = np.asarray(obj, dtype=np.float64)
        oy, ox = rng.integers(0, SIZE - OBJECT_SIZE + 1, size=2)
        region = canvas[oy : oy + OBJECT_SIZE, ox : ox + OBJECT_SIZE]
        mask = np.clip(obj_a / MASK_SCALE, 0, 1)[..., None]
        canvas[oy : oy + OBJECT_SIZE, ox : ox + OBJECT_SIZE] = region * (1 - mask) + obj_a[..., None] * mask
        corner = int(rng.integers(4))
        my = MARGIN if corner < 2 else SIZE - MARGIN - MARK
        mx = MARGIN if corner % 2 == 0 else SIZE - MARGIN - MARK
        canvas[my : my + MARK, mx : mx + MARK] = np.clip(MARK_COLOURS[item.a] + rng.uniform(-20, 20, 3), 0, 255)
        return png_bytes(np.round(np.clip(canvas, 0, 255)).astype(np.uint8))

    return pools, render


BENCHMARKS.add(
    "fmnist-mark",
    Benchmark(
        name="fmnist-mark",
        modality="image",
        description="Fashion-MNIST objects on grey gravel with a small red/blue corner mark; label = tops & "
        "dresses vs trousers, shoes & bags; spurious attribute = the mark's colour (a localised shortcut)",
        label_names=("tops & dresses", "trousers, shoes & bags"),
        attribute_name="mark",
        attribute_values=("red mark", "blue mark"),
        id_prefix="fm",
        defaults=(4000, 200, 400),
        prepare=_prepare,
        source="Fashion-MNIST (Debian dataset-fashion-mnist) + scikit-image gravel texture",
        revision=2,
    ),
)
