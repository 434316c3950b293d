"""``fmnist-textures``: the Waterbirds analogue, built from real Fashion-MNIST objects and real textures.

Label = tops & dresses (T-shirt/top, pullover, dress, coat, shirt) vs trousers, shoes & bags;
spurious attribute = background family: scikit-image's real ``grass`` (``a = 0``) or ``brick``
(``a = 1``) photograph. Each background is a random crop (random scale, rotation, flip and tint
jitter) of the 512×512 texture, so no two are equal; the 28×28 object is upscaled to 44×44 and
composited at a random offset in a 64×64 image. Train and val draw from Fashion-MNIST's train
file, test from its test file. Data: Debian ``dataset-fashion-mnist`` (or ``$CURATE_FMNIST_DIR``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from curate.data.benchmarks._common import BENCHMARKS, Benchmark, Item, png_bytes
from curate.errors import InputDataError, MissingDependencyError

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
SIZE = 64
OBJECT_SIZE = 44
CLASS_GROUPS: dict[int, int] = {0: 0, 2: 0, 3: 0, 4: 0, 6: 0, 1: 1, 5: 1, 7: 1, 8: 1, 9: 1}
TINTS = np.array([[0.55, 0.85, 0.45], [0.95, 0.6, 0.5]])  # grass greenish, brick reddish
MASK_SCALE = 40.0  # object pixels at or above this intensity are opaque


def fmnist_dir() -> Path:
    """Where Fashion-MNIST's idx files are (``$CURATE_FMNIST_DIR`` or Debian's folder)."""
    return Path(os.environ.get("CURATE_FMNIST_DIR", FMNIST_DIR))


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) idx file of unsigned bytes into an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte
        raise InputDataError(f"not an unsigned-byte idx file (magic {magic:#x})", file=path)
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fmnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images ``(N, 28, 28)`` and labels for ``split`` in {"train", "t10k"}.

    Raises:
        MissingDependencyError: the files are not installed.
    """
    d = fmnist_dir()
    img, lab = d / f"{split}-images-idx3-ubyte.gz", d / f"{split}-labels-idx1-ubyte.gz"
    if not img.exists() or not lab.exists():
        raise MissingDependencyError(
            f"Fashion-MNIST not found in {d}; apt-get install dataset-fashion-mnist "
            "or set CURATE_FMNIST_DIR to a folder with the idx .gz files"
        )
    return read_idx(img), read_idx(lab)


def _prepare() -> tuple[dict[str, dict[int, np.ndarray]], Any]:
    from PIL import Image
    from skimage import data as skdata

    sources = {"train": load_fmnist("train"), "test": load_fmnist("t10k")}
    pools = {}
    for src, (_, labels) in sources.items():
        y = np.vectorize(CLASS_GROUPS.__getitem__)(labels)
        pools[src] = {c: np.flatnonzero(y == c) for c in (0, 1)}
    textures = [np.asarray(skdata.grass(), dtype=np.float64), np.asarray(skdata.brick(), dtype=np.float64)]

    def background(a: int, rng: np.random.Generator) -> np.ndarray:
        tex = textures[a]
        crop = int(rng.integers(SIZE, 193))
        y0, x0 = rng.integers(0, tex.shape[0] - crop + 1), rng.integers(0, tex.shape[1] - crop + 1)
        patch = tex[y0 : y0 + crop, x0 : x0 + crop]
        patch = np.rot90(patch, k=int(rng.integers(4)))
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        im = Image.fromarray(patch.astype(np.uint8)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
        gray = np.asarray(im, dtype=np.float64)
        tint = TINTS[a] * rng.uniform(0.85, 1.15, 3)
        return np.clip(gray[..., None] * tint, 0, 255)

    def render(item: Item, rng: np.random.Generator) -> bytes:
        images = sources["test" if item.split == "test" else "train"][0]
        obj = Image.fromarray(images[item.source_index]).resize((OBJECT_SIZE, OBJECT_SIZE), Image.Resampling.BILINEAR)
        obj_a = np.asarray(obj, dtype=np.float64)
        canvas = background(item.a, rng)
        oy, ox = rng.integers(0, SIZE - OBJECT_SIZE + 1, size=2)
        region = canvas[oy : oy + OBJECT_SIZE, ox : ox + OBJECT_SIZE]
        mask = np.clip(obj_a / MASK_SCALE, 0, 1)[..., None]
        canvas[oy : oy + OBJECT_SIZE, ox : ox + OBJECT_SIZE] = region * (1 - mask) + obj_a[..., None] * mask
        return png_bytes(np.round(canvas).astype(np.uint8))

    return pools, render


BENCHMARKS.add(
    "fmnist-textures",
    Benchmark(
        name="fmnist-textures",
        modality="image",
        description="Fashion-MNIST objects on real grass/brick textures; label = tops & dresses vs "
        "trousers, shoes & bags; spurious attribute = background texture (Waterbirds analogue)",
        label_names=("tops & dresses", "trousers, shoes & bags"),
        attribute_name="background",
        attribute_values=("grass", "brick"),
        id_prefix="ft",
        defaults=(10000, 300, 500),
        prepare=_prepare,
        source="Fashion-MNIST (Debian dataset-fashion-mnist) + scikit-image grass/brick textures",
    ),
)
