"""Execution engines: ``local`` (this process) or ``ray`` (an existing Ray cluster, or a local one).

Only this module starts Ray. ``RAY_ADDRESS`` (Ray's own variable) points at a running cluster;
without it a local cluster is started on this machine's cores.
"""

from __future__ import annotations

import os
from typing import Any

from curate.errors import ConfigError, MissingDependencyError

ENGINES = ("local", "ray")


def check_engine(engine: str, where: str) -> str:
    """Return ``engine`` or raise :class:`ConfigError` naming the valid ones."""
    if engine not in ENGINES:
        raise ConfigError.bad_param(where, "engine", f"one of {ENGINES}", engine)
    return engine


def ray_session() -> Any:
    """The ``ray`` module, connected (``RAY_ADDRESS``) or started locally on first use.

    Raises:
        MissingDependencyError: Ray is not installed (extra ``dist``).
    """
    try:
        import ray
    except ImportError as e:
        raise MissingDependencyError("the ray engine needs Ray: pip install 'curate[dist]'") from e
    import ray.data

    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
    return ray


def ray_gpus() -> float:
    """GPUs in the connected Ray cluster (0 on a CPU-only one)."""
    return float(ray_session().cluster_resources().get("GPU", 0.0))
