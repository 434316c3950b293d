"""FAISS backends: ``faiss-cpu`` always, ``faiss-gpu`` when a GPU build and a GPU are present.

Indexes move to the GPU with :func:`to_device` and are always saved in CPU form, so a file written
on a GPU machine loads anywhere (as Hugging Face ``datasets`` does).
"""

from __future__ import annotations

from typing import Any

from curate._core.device import faiss_gpu_count, resolve_index_backend
from curate._core.registry import Registry
from curate.errors import MissingDependencyError

INDEX_BACKENDS: Registry[str] = Registry("index backend")
INDEX_BACKENDS.add("faiss-cpu", "faiss-cpu", description="faiss-cpu (default install)")


def register_gpu_backend() -> None:
    """Register ``faiss-gpu`` as available or as unavailable with the install command (called lazily)."""
    if "faiss-gpu" in INDEX_BACKENDS and INDEX_BACKENDS.entry("faiss-gpu").unavailable is None:
        return
    if faiss_gpu_count() > 0:
        INDEX_BACKENDS.add("faiss-gpu", "faiss-gpu", override=True, description="FAISS GPU build on CUDA")
    else:
        INDEX_BACKENDS.register_unavailable(
            "faiss-gpu",
            MissingDependencyError(
                "faiss GPU build not importable or no GPU visible; pip install 'curate[gpu]' or use --index-backend faiss-cpu"
            ),
            description="FAISS GPU build on CUDA",
        )


def get_backend(name: str = "auto") -> str:
    """Resolve ``auto|faiss-cpu|faiss-gpu`` to an available backend name."""
    register_gpu_backend()
    resolved = resolve_index_backend(name)
    return INDEX_BACKENDS.get(resolved)


_GPU_RESOURCES: Any = None


def to_device(index: Any, backend: str) -> Any:
    """Move a CPU index to the GPU for ``faiss-gpu`` (HNSW indexes stay on the CPU: no GPU version)."""
    global _GPU_RESOURCES
    import faiss

    if backend != "faiss-gpu" or isinstance(index, faiss.IndexHNSWFlat):
        return index
    if _GPU_RESOURCES is None:
        _GPU_RESOURCES = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(_GPU_RESOURCES, 0, index)


def to_cpu(index: Any) -> Any:
    """The CPU form of ``index`` (itself when already on the CPU)."""
    import faiss

    return (
        faiss.index_gpu_to_cpu(index) if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__ else index
    )
