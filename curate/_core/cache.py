"""Content-addressed, versioned cache folder (``$CURATE_CACHE_DIR``, default ``~/.cache/curate``).

An entry lives at ``<root>/<stage>/<sha256(version, parts)>/`` and is written in a temp folder
that is renamed into place, so a crash never leaves a half entry. Inputs that cannot be hashed
are an error, never a random key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from curate._core.io import atomic_dir
from curate.errors import CacheError

logger = logging.getLogger(__name__)

CACHE_ENV = "CURATE_CACHE_DIR"
_CHUNK = 1 << 20


def cache_root() -> Path:
    """The cache folder: ``$CURATE_CACHE_DIR`` or ``~/.cache/curate``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "curate"


def file_fingerprint(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _canonical(obj: Any) -> Any:
    """Turn ``obj`` into JSON-able data with a stable form, or raise :class:`CacheError`."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return repr(obj)
    if isinstance(obj, Path):
        return {"path": str(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return {"__dataclass__": type(obj).__name__, **_canonical(asdict(obj))}
    fp = getattr(obj, "fingerprint", None)
    if callable(fp):
        return {"fingerprint": fp()}
    mod = type(obj).__module__
    if mod.startswith("numpy"):
        import numpy as np

        arr = np.ascontiguousarray(obj)
        return {"ndarray": hashlib.sha256(arr.tobytes()).hexdigest(), "shape": arr.shape, "dtype": str(arr.dtype)}
    if mod.startswith("polars"):
        # CSV text of the values + the schema: independent of chunking and in-memory layout
        text = obj.write_csv() if hasattr(obj, "write_csv") else obj.to_frame().write_csv()
        return {
            "frame": hashlib.sha256(text.encode()).hexdigest(),
            "schema": str(obj.schema if hasattr(obj, "schema") else obj.dtype),
        }
    raise CacheError(
        f"cannot fingerprint a {type(obj).__name__} for the cache; pass plain data, an array, a frame "
        "or an object with .fingerprint(), or turn caching off with --no-cache"
    )


def fingerprint(*parts: Any) -> str:
    """sha256 hex of the canonical form of ``parts`` (dicts, lists, scalars, arrays, frames)."""
    blob = json.dumps(_canonical(list(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def stage_dir(stage: str, version: int, *parts: Any, root: Path | None = None) -> Path:
    """The folder an entry of ``stage`` (at ``version``) for ``parts`` lives in."""
    return (root or cache_root()) / stage / fingerprint(stage, version, *parts)


def cached_stage(
    stage: str,
    version: int,
    parts: tuple[Any, ...],
    compute: Callable[[Path], None],
    *,
    enabled: bool = True,
    root: Path | None = None,
) -> Path:
    """Return a cache folder for ``parts``, running ``compute(tmp_folder)`` only on a miss.

    Args:
        stage: stage name (``"embed"``).
        version: bump it when the stage's output format or algorithm changes.
        parts: everything the output depends on.
        compute: writes the entry's files into the folder it is given.
        enabled: when false, the entry is recomputed and overwritten.
        root: cache root (default :func:`cache_root`).

    Returns:
        The entry's folder.
    """
    target = stage_dir(stage, version, *parts, root=root)
    done = target / ".complete"
    if enabled and done.exists():
        logger.info("loaded cached %s from %s", stage, target)
        return target
    with atomic_dir(target, overwrite=True) as tmp:
        compute(tmp)
        (tmp / ".complete").write_text(json.dumps({"stage": stage, "version": version}))
    return target


def resumable_stage(
    stage: str,
    version: int,
    parts: tuple[Any, ...],
    compute: Callable[[Path], object],
    *,
    enabled: bool = True,
    root: Path | None = None,
) -> Path:
    """Like :func:`cached_stage` for long stages that write shards: ``compute`` works in the final
    folder (each shard atomically, skipping the ones already there), and the entry counts as done
    only once ``compute`` returns. An interrupted call resumes from the finished shards.
    """
    import shutil

    target = stage_dir(stage, version, *parts, root=root)
    done = target / ".complete"
    if enabled and done.exists():
        logger.info("loaded cached %s from %s", stage, target)
        return target
    if not enabled and target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True, exist_ok=True)
    compute(target)
    done.write_text(json.dumps({"stage": stage, "version": version}))
    return target
