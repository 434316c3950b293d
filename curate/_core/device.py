"""Device and FAISS-backend resolution: the only module that probes for CUDA or FAISS GPUs.

Library code takes a resolved device as an argument; ``resolve_device`` is called once, at the
edge (``curate.api`` or the CLI).
"""

from __future__ import annotations

from typing import Literal

from curate.errors import ConfigError, DeviceUnavailableError, MissingDependencyError

DeviceName = Literal["auto", "cpu", "cuda"]
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_device(device: str = "auto") -> str:
    """Turn ``auto|cpu|cuda|cuda:N`` into a concrete torch device string.

    Raises:
        ConfigError: the name is not a device.
        DeviceUnavailableError: CUDA was asked for on a machine without it.
    """
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not cuda_available():
            raise DeviceUnavailableError(f"no CUDA device for {device!r}; use --device cpu")
        index = device.partition(":")[2]
        if index:
            import torch

            count = torch.cuda.device_count()
            if not index.isdigit() or int(index) >= count:
                raise DeviceUnavailableError(
                    f"no CUDA device {device!r}: this machine has {count} (cuda:0..{count - 1})"
                )
        return device
    raise ConfigError.bad_param("resolve_device()", "device", "one of auto, cpu, cuda, cuda:N", device)


def faiss_gpu_count() -> int:
    """Number of GPUs the installed FAISS build can use (0 for faiss-cpu)."""
    try:
        import faiss
    except ImportError:
        return 0
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def resolve_index_backend(backend: str = "auto") -> str:
    """Turn ``auto|faiss-cpu|faiss-gpu`` into the backend to use.

    Raises:
        MissingDependencyError: FAISS is missing, or its GPU build was asked for and is absent.
        ConfigError: unknown backend name.
    """
    try:
        import faiss  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError("faiss is not importable; pip install faiss-cpu") from e
    if backend == "auto":
        return "faiss-gpu" if faiss_gpu_count() > 0 else "faiss-cpu"
    if backend == "faiss-cpu":
        return backend
    if backend == "faiss-gpu":
        if faiss_gpu_count() == 0:
            raise MissingDependencyError(
                "faiss GPU build not importable or no GPU visible; "
                "pip install 'curate[gpu]' or use --index-backend faiss-cpu"
            )
        return backend
    raise ConfigError.bad_param("resolve_index_backend()", "backend", "one of auto, faiss-cpu, faiss-gpu", backend)
