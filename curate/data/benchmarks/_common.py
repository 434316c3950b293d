"""Shared machinery of the built-in spurious benchmarks: group planning and the on-disk writer.

Every benchmark has two classes and a binary spurious attribute ``a``; the majority group of class
``y`` is ``a == y``. Train holds ``spurious_strength`` of each class in its majority group; val and
test are group-balanced (as in Waterbirds). Output is the SubpopBench layout: ``metadata.csv``
(``id, filename, split (0/1/2), y, a, source_index`` and ``text`` for text) plus images, and a
``dataset.json`` sidecar with names and the generating parameters.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core.io import atomic_dir, write_json_atomic
from curate._core.progress import progress
from curate._core.registry import Registry
from curate.errors import ConfigError

SPLIT_CODES: dict[str, int] = {"train": 0, "val": 1, "test": 2}
N_CLASSES = 2
N_ATTRS = 2


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """How to build a benchmark; ``None`` sizes take the benchmark's defaults.

    Attributes:
        seed: seeds every draw (same seed → byte-identical ``metadata.csv``).
        spurious_strength: share of each class's train samples in its majority group.
        n_train: train samples (split equally between the two classes).
        n_val_per_group: val samples per group (val is group-balanced).
        n_test_per_group: test samples per group (test is group-balanced).
    """

    seed: int = 0
    spurious_strength: float = 0.95
    n_train: int | None = None
    n_val_per_group: int | None = None
    n_test_per_group: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for provenance."""
        return asdict(self)


@dataclass(frozen=True)
class Item:
    """One planned sample: its split, class, attribute and index into the source data."""

    split: str
    y: int
    a: int
    source_index: int


def plan_counts(
    n_train: int, strength: float, n_val_per_group: int, n_test_per_group: int
) -> dict[tuple[str, int, int], int]:
    """Samples per ``(split, y, a)``: train classes equal, majority share ``strength``; val/test balanced.

    Raises:
        ConfigError: ``strength`` outside [0.5, 1] or a size below 1.
    """
    where = "make_benchmark()"
    if not 0.5 <= strength <= 1.0:
        raise ConfigError.bad_param(where, "spurious_strength", "a float in [0.5, 1]", strength)
    for name, v in (("n_train", n_train), ("n_val_per_group", n_val_per_group), ("n_test_per_group", n_test_per_group)):
        if v < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{where}: {name!r} ({flag}) must be an integer >= 1; got {v!r}.")
    counts: dict[tuple[str, int, int], int] = {}
    for y in range(N_CLASSES):
        n_c = n_train // N_CLASSES + (1 if y < n_train % N_CLASSES else 0)
        major = round(strength * n_c)
        for a in range(N_ATTRS):
            counts[("train", y, a)] = major if a == y else n_c - major
            counts[("val", y, a)] = n_val_per_group
            counts[("test", y, a)] = n_test_per_group
    return counts


def assign(
    pools: dict[str, dict[int, np.ndarray]],
    counts: dict[tuple[str, int, int], int],
    rng: np.random.Generator,
    *,
    what: str,
) -> list[Item]:
    """Draw disjoint source indices for every planned sample.

    ``pools[src][y]`` lists the source indices of class ``y`` in source split ``src``: train and val
    draw from ``"train"``; test from ``"test"`` when present, else from what ``"train"`` has left.

    Raises:
        ConfigError: a class has too few source samples; the message names the largest n_train.
    """
    items: list[Item] = []
    shuffled = {src: {y: rng.permutation(ix) for y, ix in by_y.items()} for src, by_y in pools.items()}
    used = {src: dict.fromkeys(by_y, 0) for src, by_y in shuffled.items()}
    for split in SPLIT_CODES:
        src = "test" if split == "test" and "test" in pools else "train"
        for y in range(N_CLASSES):
            for a in range(N_ATTRS):
                n = counts[(split, y, a)]
                start = used[src][y]
                avail = shuffled[src][y]
                if start + n > len(avail):
                    raise ConfigError(
                        f"make_benchmark(): {what} has {len(avail)} source samples of class {y} in its "
                        f"{src!r} pool, too few for the requested sizes; lower --n-train"
                    )
                items.extend(Item(split, y, a, int(i)) for i in avail[start : start + n])
                used[src][y] = start + n
    return items


@dataclass(frozen=True)
class Benchmark:
    """A built-in benchmark: names, default sizes and a renderer for one planned item.

    ``prepare(rng)`` loads the source data once and returns ``(pools, render)``; ``render(item,
    rng)`` returns PNG bytes (images) or a string (text).
    """

    name: str
    modality: str
    description: str
    label_names: tuple[str, str]
    attribute_name: str
    attribute_values: tuple[str, str]
    id_prefix: str
    defaults: tuple[int, int, int]  # n_train, n_val_per_group, n_test_per_group
    prepare: Callable[[], tuple[dict[str, dict[int, np.ndarray]], Callable[[Item, np.random.Generator], Any]]]
    source: str
    revision: int = 1  # raised when the same config renders different data; in dataset.json

    def resolve(self, cfg: BenchmarkConfig) -> BenchmarkConfig:
        """``cfg`` with every ``None`` size replaced by this benchmark's default (a 0 stays 0 and is
        refused by :func:`plan_counts`, never replaced)."""
        n_train, n_val, n_test = self.defaults
        return BenchmarkConfig(
            seed=cfg.seed,
            spurious_strength=cfg.spurious_strength,
            n_train=n_train if cfg.n_train is None else cfg.n_train,
            n_val_per_group=n_val if cfg.n_val_per_group is None else cfg.n_val_per_group,
            n_test_per_group=n_test if cfg.n_test_per_group is None else cfg.n_test_per_group,
        )

    def group_names(self) -> list[str]:
        """Names of groups ``y * 2 + a``."""
        return [f"{ln} / {av}" for ln in self.label_names for av in self.attribute_values]


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 array as PNG (deterministic bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_benchmark(
    bench: Benchmark, out: str | Path, cfg: BenchmarkConfig, *, overwrite: bool = False, version: str = ""
) -> Path:
    """Build ``bench`` with ``cfg`` into ``out`` (SubpopBench layout), atomically.

    Returns:
        The path of the written ``metadata.csv``.
    """
    from curate._core.seed import rng as make_rng

    cfg = bench.resolve(cfg)
    n_train, n_val, n_test = cfg.n_train, cfg.n_val_per_group, cfg.n_test_per_group
    if n_train is None or n_val is None or n_test is None:  # resolve() fills every size
        raise ConfigError(f"make_benchmark(): {bench.name} has no default size")
    counts = plan_counts(n_train, cfg.spurious_strength, n_val, n_test)
    pools, render = bench.prepare()
    items = assign(pools, counts, make_rng(cfg.seed, bench.name, "assign"), what=bench.name)
    draw = make_rng(cfg.seed, bench.name, "render")
    ids: list[str] = []
    files: list[str] = []
    texts: list[str] = []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        with progress(len(items), f"building {bench.name}") as bar:
            for k, item in enumerate(items):
                sid = f"{bench.id_prefix}{k:06d}"
                ids.append(sid)
                payload = render(item, draw)
                if bench.modality == "image":
                    rel = f"images/{item.split}/{sid}.png"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / rel).write_bytes(payload)
                    files.append(rel)
                else:
                    texts.append(payload)
                bar.advance()
        cols: dict[str, Sequence[Any]] = {
            "id": ids,
            "split": [SPLIT_CODES[i.split] for i in items],
            "y": [i.y for i in items],
            "a": [i.a for i in items],
            "source_index": [i.source_index for i in items],
        }
        if bench.modality == "image":
            cols = {"id": ids, "filename": files, **{k: v for k, v in cols.items() if k != "id"}}
        else:
            cols["text"] = texts
        pl.DataFrame(cols).write_csv(tmp / "metadata.csv")
        write_json_atomic(
            tmp / "dataset.json",
            {
                "name": bench.name,
                "modality": bench.modality,
                "description": bench.description,
                "source": bench.source,
                "label_names": list(bench.label_names),
                "attribute_name": bench.attribute_name,
                "attribute_values": list(bench.attribute_values),
                "group_names": bench.group_names(),
                "splits": list(SPLIT_CODES),
                "config": cfg.to_dict(),
                "curate_version": version,
                "revision": bench.revision,
            },
        )
    return Path(out) / "metadata.csv"
