"""Import rules: the layer contract, a cheap ``import curate``, and where CUDA may be probed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_curate_loads_neither_torch_nor_faiss() -> None:
    code = (
        "import sys, curate, curate.api; print(sorted(m for m in ('torch','faiss','transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(
    shutil.which("lint-imports") is None and not (Path(sys.executable).parent / "lint-imports").exists(),
    reason="import-linter not installed",
)
def test_layer_contract() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    res = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def _sources() -> list[Path]:
    return sorted((ROOT / "curate").rglob("*.py"))


def test_cuda_probes_only_in_device_module() -> None:
    allowed = ROOT / "curate" / "_core" / "device.py"
    bad = [p for p in _sources() if p != allowed and re.search(r"cuda\.is_available|get_num_gpus", p.read_text())]
    assert bad == []


def test_no_print_in_library() -> None:
    bad = [p for p in _sources() if re.search(r"(^|[^\w.])print\(", p.read_text())]
    assert bad == []


def test_cli_imports_only_the_api_surface() -> None:
    allowed = {"curate", "curate.api", "curate.errors", "curate._core.progress"}
    for p in (ROOT / "cli").glob("*.py"):
        for mod in re.findall(r"^\s*(?:from|import) (curate[\w.]*)", p.read_text(), flags=re.M):
            assert mod in allowed, f"{p.name} imports {mod}"
