"""A cached embedding damaged on disk is recomputed, and a failed embed leaves the workspace unbound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.data.workspace import Workspace
from curate.embed import EmbeddingTable
from curate.errors import InputDataError
from tests.corpus._corpus import dataset
from tests.embed import tiny_models


@pytest.mark.integration
def test_a_truncated_cached_matrix_is_recomputed_not_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path
    vit = str(tiny_models.tiny_vit(root / "vit"))
    table = api.load_dataset(dataset(root) / "metadata.csv")
    ws = root / "ws"
    first = api.embed(table, vit, workspace=ws)
    folder = Workspace(ws).lookup("embed", vit)
    matrix = folder / "embeddings.npy"
    matrix.write_bytes(matrix.read_bytes()[:-4096])  # a disk full, a copy cut short
    with pytest.raises(InputDataError, match="embeddings.npy"):
        EmbeddingTable.load(folder)  # read directly: one clean error naming the file
    with caplog.at_level("WARNING", logger="curate"):
        again = api.embed(table, vit, workspace=ws)
    assert "is damaged" in caplog.text and "embeddings.npy" in caplog.text
    assert np.array_equal(first.matrix, again.matrix)


@pytest.mark.integration
def test_a_failed_embed_leaves_the_workspace_free_for_the_fixed_data(tmp_path: Path) -> None:
    root = tmp_path
    vit = str(tiny_models.tiny_vit(root / "vit"))
    data = dataset(root)
    table = api.load_dataset(data / "metadata.csv")
    bad = table.frame.filter(pl.col("split") == "train")["path"][3]
    (data / bad).write_bytes(b"not an image")  # passes a layout check, fails when decoded
    ws = root / "ws"
    with pytest.raises(InputDataError, match="cannot read image"):
        api.embed(table, vit, workspace=ws)
    assert not Workspace(ws).exists  # not tied to the data that failed
    fixed = table.with_frame(table.frame.filter(pl.col("path") != bad))
    api.embed(fixed, vit, workspace=ws)
    assert Workspace(ws).table().fingerprint() == fixed.fingerprint()


@pytest.mark.integration
def test_an_image_rewritten_under_the_same_name_is_embedded_again(tmp_path: Path) -> None:
    """The cache is keyed by the data, not only by the metadata: a rebuilt dataset with the same ids,
    labels and file names (a benchmark's new revision, an edited image) must not get the old vectors."""
    import os

    from PIL import Image

    vit = str(tiny_models.tiny_vit(tmp_path / "vit"))
    data = dataset(tmp_path)
    table = api.load_dataset(data / "metadata.csv")
    ws = tmp_path / "ws"
    api.embed(table, vit, workspace=ws)
    first, known = api.embed(table, vit), table.fingerprint()  # the shared cache
    row = 2
    path = data / table.frame["path"][row]
    before = os.stat(path)
    Image.open(path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    again = api.load_dataset(data / "metadata.csv")
    assert again.frame.equals(table.frame) and again.fingerprint() != known
    second = api.embed(again, vit)
    sid = table.frame["sample_id"][row]
    assert not np.isclose(first.select([sid]).matrix, second.select([sid]).matrix).all()  # new, not cached
    with pytest.raises(InputDataError, match="holds another dataset"):  # a workspace is bound to its data
        api.embed(again, vit, workspace=ws)
