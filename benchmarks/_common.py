"""Helpers shared by the benchmarks: machine description, timing, result files."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def machine() -> str:
    """One line naming the machine a result was measured on."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | torch threads {torch.get_num_threads()} | {gpu}"


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall time of one call and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def report(name: str, lines: list[str]) -> None:
    """Print the result lines and save them to ``benchmarks/results/<name>.txt``."""
    text = "\n".join([f"# {name}", f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d %H:%M:%S')}", *lines])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.txt").write_text(text + "\n")
