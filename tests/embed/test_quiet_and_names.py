"""Model loading is quiet (no transformers bars or load reports), and class names travel with embeddings."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from curate import api
from curate.embed import EmbeddingTable


def test_hf_load_prints_no_progress_bar_or_load_report(
    tiny, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from transformers import BertForSequenceClassification

    from curate.embed._base import hf_from_pretrained

    monkeypatch.delenv("CURATE_NO_PROGRESS", raising=False)  # progress on: transformers' bar must stay off
    monkeypatch.setattr(logging.getLogger("curate"), "level", logging.INFO)
    capfd.readouterr()
    hf_from_pretrained(BertForSequenceClassification, str(tiny["bert"]))  # a new head: a "load report"
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err and "MISSING" not in out + err


def image_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(root / split / c / f"{i}.png")
    return root


def test_imagefolder_class_names_kept_in_embeddings_and_workspace(tmp_path: Path) -> None:
    table = api.load_dataset(image_folder(tmp_path / "pets"))
    assert table.label_names == ("cat", "dog")
    api.embed(table, "torchvision:resnet18:random", device="cpu", workspace=tmp_path / "ws")
    ws = api.Workspace(tmp_path / "ws")
    folder = ws.lookup("embed")
    assert json.loads((folder / "meta.json").read_text())["label_names"] == ["cat", "dog"]
    assert EmbeddingTable.load(folder).meta["label_names"] == ["cat", "dog"]
    assert ws.table().label_names == ("cat", "dog")


@pytest.mark.parametrize(("modality", "expected"), [("image", "efficientnet-lite0"), ("text", "minilm")])
def test_cli_embed_picks_the_encoder_by_modality(
    modality: str,
    expected: str,
    small_digits,  # type: ignore[no-untyped-def]
    small_text,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`curate embed` without --encoder asks for the modality's default (a cheap encoder stands in)."""
    stage = importlib.import_module("curate.pipeline.embed")  # the module (the package re-exports a function)
    from cli.app import main
    from curate.embed import create_encoder

    asked: list[str] = []

    def fake(spec: str):  # type: ignore[no-untyped-def]
        asked.append(spec)
        return create_encoder("torchvision:resnet18:random" if modality == "image" else "hf-text:unused")

    monkeypatch.setattr(stage, "create_encoder", fake)
    table = small_digits if modality == "image" else small_text
    data = table.root if modality == "image" else Path(table.source)
    if modality == "text":  # stop after the choice: no text model to run here
        monkeypatch.setattr(stage, "resumable_stage", lambda *a, **k: (_ for _ in ()).throw(SystemExit(0)))
    with pytest.raises(SystemExit) as e:
        main(["embed", str(data), "--out", str(tmp_path / "ws"), "--device", "cpu"])
        raise SystemExit(0)
    assert e.value.code == 0, capsys.readouterr().err
    assert asked == [expected]
    if modality == "image":
        assert f"embeddings ({expected})" not in capsys.readouterr().out  # the stand-in's name is reported


def _no_encoder(spec: str) -> None:
    raise AssertionError(f"an encoder was built ({spec}): the workspace's embeddings should be reused")


def test_api_score_reuses_the_workspace_embeddings(
    small_digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    stage = importlib.import_module("curate.pipeline.embed")  # the module (the package re-exports a function)

    spec = "torchvision:resnet18:random"
    first = api.score(small_digits, encoder=spec, signals=("el2n",), device="cpu", workspace=tmp_path / "ws")
    monkeypatch.setattr(stage, "create_encoder", _no_encoder)
    second = api.score(small_digits, encoder=spec, signals=("el2n",), device="cpu", workspace=tmp_path / "ws")
    by_default = api.score(small_digits, signals=("el2n",), device="cpu", workspace=tmp_path / "ws")
    assert first.equals(second) and first.equals(by_default)


def test_api_score_reuses_float16_workspace_embeddings(
    small_digits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Embeddings stored at another precision than score would ask for are still reused."""
    stage = importlib.import_module("curate.pipeline.embed")  # the module (the package re-exports a function)

    api.embed(small_digits, "torchvision:resnet18:random", device="cpu", workspace=tmp_path / "ws", float16=True)
    monkeypatch.setattr(stage, "create_encoder", _no_encoder)
    out = api.score(small_digits, signals=("el2n",), device="cpu", workspace=tmp_path / "ws")
    assert out.height == small_digits.split("train").frame.height


def test_imagefolder_class_names_kept_in_metrics_and_report(tmp_path: Path) -> None:
    """No groups: accuracy is per class, and metrics.json and report.md name the classes."""
    import polars as pl

    from curate.eval.evaluate import PREDICTION, evaluate_predictions
    from curate.eval.report import write_report

    table = api.load_dataset(image_folder(tmp_path / "pets"))
    test = table.split("test").frame
    result = evaluate_predictions(table, test.select("sample_id", pl.col("label").alias(PREDICTION)))
    assert result.group_source.startswith("class") and result.group_names == {"0": "cat", "1": "dog"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text(json.dumps({"method": "erm", "manifest": {}, "test": result.to_dict()}))
    text = write_report([run], tmp_path / "report").read_text()
    assert "| 0 | cat | 1.0000 |" in text and "| 1 | dog | 1.0000 |" in text
