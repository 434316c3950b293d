"""Seeds without global side effects: every random draw goes through an explicit generator."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def derive_seed(seed: int, *names: str | int) -> int:
    """A stable 63-bit seed for a named sub-stream of ``seed`` (same inputs → same seed)."""
    h = hashlib.sha256(repr((int(seed), *names)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


def rng(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy ``Generator`` for ``seed`` (and an optional named sub-stream); touches no global RNG."""
    return np.random.default_rng(derive_seed(seed, *names) if names else int(seed))


def torch_generator(seed: int, *names: str | int, device: str = "cpu") -> Any:
    """A ``torch.Generator`` seeded like :func:`rng`; torch is imported here, lazily."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *names) if names else int(seed))
    return g
