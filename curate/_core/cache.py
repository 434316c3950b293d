"""Content-addressed, versioned cache folder (``$CURATE_CACHE_DIR``, default ``~/.cache/curate``).

An entry lives at ``<root>/<stage>/<sha256(version, parts)>/`` and is written in a temp folder
that is renamed into place, so a crash never leaves a half entry. Inputs that cannot be hashed
are an error, never a random key.

An entry is marked done by ``.complete``, which records the size and a checksum of the first and
last :data:`EDGE_BYTES` of every file in it. A hit checks them (a stat and two small reads per
file), so an entry damaged later (a truncated ``embeddings.npy``, a file edited or removed by hand)
is recomputed with a warning instead of crashing the stage that reads it.

Computing an entry holds a lock file beside it (``<key>.lock``), so processes sharing a cache
(two ``curate run`` on one workspace) compute each entry once: the second waits, then loads it.
The lock is an OS file lock: a holder killed with ``kill -9`` releases it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from curate._core.io import atomic_dir
from curate.errors import CacheError

logger = logging.getLogger(__name__)

CACHE_ENV = "CURATE_CACHE_DIR"
_CHUNK = 1 << 20
COMPLETE = ".complete"
EDGE_BYTES = 1 << 16  # checksummed at each end of a file: cheap on a hit, catches truncation and damage


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


def _edges_digest(path: Path, size: int) -> str:
    """sha256 of the first and last :data:`EDGE_BYTES` of a file of ``size`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return h.hexdigest()


def _inventory(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file of an entry (but the marker): relative path -> size and edge checksum."""
    out: dict[str, dict[str, Any]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != COMPLETE:
            size = p.stat().st_size
            out[p.relative_to(folder).as_posix()] = {"size": size, "edges": _edges_digest(p, size)}
    return out


def seal_entry(folder: Path, stage: str, version: int) -> None:
    """Mark ``folder`` as a finished entry, recording its files' sizes and checksums."""
    marker = {"stage": stage, "version": version, "files": _inventory(folder)}
    (folder / COMPLETE).write_text(json.dumps(marker, sort_keys=True))


def entry_problem(folder: Path) -> str | None:
    """Why the finished entry in ``folder`` cannot be trusted (a file missing, resized or changed),
    or None when it is intact. An entry sealed before files were recorded is taken as it is."""
    try:
        marker = json.loads((folder / COMPLETE).read_text())
    except (OSError, ValueError) as e:
        return f"unreadable {COMPLETE} ({e})"
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict):
        return None
    for rel, want in files.items():
        path = folder / rel
        try:
            size = path.stat().st_size
            if size != want.get("size"):
                return f"{rel} is {size} bytes, {want.get('size')} when written"
            if _edges_digest(path, size) != want.get("edges"):
                return f"{rel} changed since it was written"
        except OSError:
            return f"{rel} is missing"
    return None


def _hit(stage: str, target: Path, enabled: bool, *, repair: bool = True) -> bool:
    """Whether ``target`` is a usable finished entry; a damaged one is logged and un-marked (only
    with ``repair``: under the entry's lock)."""
    if not (enabled and (target / COMPLETE).exists()):
        return False
    problem = entry_problem(target)
    if problem is not None and not repair:
        return False
    if problem is None:
        logger.info("loaded cached %s %s from %s", stage, target.name[:12], target.parent)  # 12 of the 64 hex
        return True
    logger.warning(
        "cached %s %s in %s is damaged (%s): recomputing it", stage, target.name[:12], target.parent, problem
    )
    (target / COMPLETE).unlink(missing_ok=True)
    return False


@contextmanager
def entry_lock(target: Path, stage: str) -> Iterator[None]:
    """Hold the inter-process lock of cache entry ``target`` (``<target>.lock``), waiting for another
    process that computes the same entry; logged once when it has to wait."""
    from filelock import FileLock, Timeout

    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target.parent / f"{target.name}.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        logger.info("waiting for another process computing cached %s %s", stage, target.name[:12])
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


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

    A finished entry whose files no longer match what was written is recomputed (with a warning).

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
    if _hit(stage, target, enabled, repair=False):
        return target
    with entry_lock(target, stage):
        if _hit(stage, target, enabled):  # another process may have finished it while we waited
            return target
        with atomic_dir(target, overwrite=True) as tmp:
            compute(tmp)
            seal_entry(tmp, stage, version)
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
    only once ``compute`` returns. An interrupted call resumes from the finished shards; a finished
    entry found damaged is removed and computed again from the start.
    """
    import shutil

    target = stage_dir(stage, version, *parts, root=root)
    if _hit(stage, target, enabled, repair=False):
        return target
    with entry_lock(target, stage):  # one writer in the folder at a time, across processes
        damaged = enabled and (target / COMPLETE).exists()
        if _hit(stage, target, enabled):
            return target
        if (damaged or not enabled) and target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True, exist_ok=True)
        compute(target)
        seal_entry(target, stage, version)
    return target
