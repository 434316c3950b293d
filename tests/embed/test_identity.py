"""An encoder's cache identity is its weights' content: a moved or recreated environment reuses the
cache, changed weights never do."""

from __future__ import annotations

import shutil
from pathlib import Path

from curate.embed.text import _identity


def test_identity_follows_the_weights_content_not_their_place(tmp_path: Path) -> None:
    a = tmp_path / "env1" / "w.pth"
    a.parent.mkdir()
    a.write_bytes(b"weights" * 1000)
    b = tmp_path / "env2" / "w.pth"
    b.parent.mkdir()
    shutil.copy(a, b)
    assert _identity(str(a)) == _identity(str(b)) and _identity(str(a)).startswith("sha256:")
    b.write_bytes(b"other" * 1000)
    assert _identity(str(a)) != _identity(str(b))


def test_folder_identity_hashes_each_weights_file(tmp_path: Path) -> None:
    for env in ("x", "y"):
        (tmp_path / env).mkdir()
        (tmp_path / env / "model.safetensors").write_bytes(b"abc")
        (tmp_path / env / "config.json").write_text("{}")
    assert _identity(str(tmp_path / "x")) == _identity(str(tmp_path / "y"))
    (tmp_path / "y" / "model.safetensors").write_bytes(b"abd")
    assert _identity(str(tmp_path / "x")) != _identity(str(tmp_path / "y"))
    assert _identity("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
