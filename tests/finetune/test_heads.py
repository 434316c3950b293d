"""Fine-tuning heads on manifests: GroupDRO's known answer, DFR, selection by validation WGA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from curate import api
from curate.finetune import FinetuneConfig, GroupDRO, manifest_inputs
from curate.manifest import Manifest, manifest_frame


def test_groupdro_weights_move_to_the_worst_group() -> None:
    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    dro = GroupDRO(Fixed(), n_groups=2, eta=0.5)
    # group 0 is fitted (small loss), group 1 is not (large loss)
    batch = {
        "x": torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 2.0]]),
        "label": torch.tensor([0, 0, 0]),
        "group": torch.tensor([0, 0, 1]),
    }
    loss0 = torch.nn.functional.cross_entropy(batch["x"][:2], batch["label"][:2])
    loss1 = torch.nn.functional.cross_entropy(batch["x"][2:], batch["label"][2:])
    out = dro.step(batch)
    q1 = np.exp(0.5 * loss1.item()) / (np.exp(0.5 * loss0.item()) + np.exp(0.5 * loss1.item()))
    assert float(dro.q[1]) == pytest.approx(q1, rel=1e-5)
    assert float(out["loss"]) == pytest.approx((1 - q1) * loss0.item() + q1 * loss1.item(), rel=1e-5)
    for _ in range(20):
        dro.step(batch)
    assert float(dro.q[1]) > 0.99


def _two_rows(labels: list[int], mix_with: list[str | None], mix_lambda: list[float | None]) -> Manifest:
    """A manifest of samples ``a`` and ``b`` (weight 1) with the given mixing pairs."""
    frame = {"sample_id": ["a", "b"], "source": ["a", "b"], "label": labels, "weight": [1.0, 1.0]}
    return Manifest(manifest_frame(pl.DataFrame(frame | {"mix_with": mix_with, "mix_lambda": mix_lambda})))


def test_manifest_inputs_mix_embeddings() -> None:
    from curate.embed import EmbeddingTable

    emb = EmbeddingTable(pl.Series("sample_id", ["a", "b"]), np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    x = manifest_inputs(
        _two_rows([0, 1], [None, "a"], [None, 0.25]), emb, np.zeros(2, np.float32), np.ones(2, np.float32)
    )
    np.testing.assert_allclose(x, [[1.0, 0.0], [0.25, 0.75]])


def test_oracle_beats_erm_and_dfr_runs(planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, emb, _ = planted
    cfg = FinetuneConfig(epochs=8, lr=0.01)
    erm = api.finetune(table, emb, api.select("keep-all", table), cfg)
    oracle = api.finetune(table, emb, api.select("oracle", table), cfg, out=tmp_path / "run")
    assert oracle.test.acc_wg > erm.test.acc_wg + 0.1  # the planted attribute fools ERM's minority groups
    assert 0 <= oracle.best_epoch < 8 and oracle.test.group_source == "true"
    dfr = api.finetune(table, emb, api.select("keep-all", table), FinetuneConfig(method="dfr", epochs=4, lr=0.01))
    assert dfr.test.acc_wg > erm.test.acc_wg
    dro = api.finetune(table, emb, api.select("keep-all", table), FinetuneConfig(method="groupdro", epochs=8, lr=0.01))
    assert dro.test.acc_wg > erm.test.acc_wg
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["acc_wg"] == oracle.test.acc_wg and metrics["manifest"]["method"] == "oracle"
    assert pl.read_parquet(tmp_path / "run" / "predictions.parquet").height == 400 + 200


def test_run_folder_resumes_after_a_crash_with_the_same_result(planted, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from curate.finetune import _loop

    table, emb, _ = planted
    manifest = api.select("keep-all", table)
    cfg = FinetuneConfig(epochs=5, lr=0.01, head="mlp", hidden=16)
    whole = api.finetune(table, emb, manifest, cfg, out=tmp_path / "whole")
    original = _loop.SelectBest.on_epoch_end

    def crash_at_3(self, epoch: int) -> None:  # type: ignore[no-untyped-def]
        if epoch == 3:
            raise KeyboardInterrupt  # killed in the middle of the run
        original(self, epoch)

    monkeypatch.setattr(_loop.SelectBest, "on_epoch_end", crash_at_3)
    with pytest.raises(KeyboardInterrupt):
        api.finetune(table, emb, manifest, cfg, out=tmp_path / "crashed")
    monkeypatch.setattr(_loop.SelectBest, "on_epoch_end", original)
    assert not (tmp_path / "crashed" / "metrics.json").exists()
    resumed = api.finetune(table, emb, manifest, cfg, out=tmp_path / "crashed")
    assert resumed.best_epoch == whole.best_epoch
    assert resumed.predictions.equals(whole.predictions)
    shards = sorted(p.name for p in (tmp_path / "crashed" / "dynamics" / "run=0").iterdir())
    assert shards == [f"epoch={e:04d}.parquet" for e in range(5)]
    # another manifest in the same folder starts over instead of mixing two runs
    other = api.finetune(table, emb, api.select("oracle", table), cfg, out=tmp_path / "crashed")
    assert other.predictions.equals(api.finetune(table, emb, api.select("oracle", table), cfg).predictions)


def test_small_cnn_backbone_on_images(digits_dir: Path, tmp_path: Path) -> None:
    table = api.load_dataset(digits_dir)
    cfg = FinetuneConfig(backbone="cnn", epochs=3, lr=3e-3)
    r = api.finetune(table, None, api.select("keep-all", table), cfg, out=tmp_path / "cnn")
    # from scratch on 1,000 images the CNN takes the colour shortcut: the majority groups are right
    assert r.test.groups["0"] > 0.9 and r.test.groups["3"] > 0.9 and r.config["backbone"] == "cnn"
    assert (tmp_path / "cnn" / "checkpoints" / "best.pt").exists()


def test_mixing_pairs_apply_to_pixels() -> None:
    from curate.finetune.heads import mix_rows

    images = {"a": np.zeros((3, 2, 2), np.float32), "b": np.ones((3, 2, 2), np.float32)}
    x = mix_rows(_two_rows([0, 0], ["b", None], [0.8, None]), lambda ids: np.stack([images[i] for i in ids]))
    np.testing.assert_allclose(x[0], 0.8)
    np.testing.assert_allclose(x[1], 1.0)


def test_groupdro_group_losses_are_weighted_means() -> None:
    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    dro = GroupDRO(Fixed(), n_groups=2, eta=1.0)
    x = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    batch = {
        "x": x,
        "label": torch.tensor([0, 0, 0]),
        "group": torch.tensor([0, 0, 1]),
        "weight": torch.tensor([3.0, 1.0, 2.0]),
    }
    losses = torch.nn.functional.cross_entropy(x, batch["label"], reduction="none")
    g0 = (3 * losses[0] + losses[1]) / 4  # weighted mean of group 0
    g1 = losses[2]
    out = dro.step(batch)
    q1 = np.exp(g1.item()) / (np.exp(g0.item()) + np.exp(g1.item()))
    assert float(dro.q[1]) == pytest.approx(q1, rel=1e-5)
    assert float(out["loss"]) == pytest.approx((1 - q1) * g0.item() + q1 * g1.item(), rel=1e-5)


def test_plain_erm_keeps_the_epoch_of_best_mean_accuracy_the_others_of_best_worst_group() -> None:
    import torch

    from curate.eval import EvalResult
    from curate.finetune._loop import SelectBest

    # three epochs' val results (worst-group, mean): the best mean is epoch 0, the best worst-group epoch 1
    results = iter([(0.50, 0.90), (0.70, 0.80), (0.60, 0.85)] * 2)

    def score() -> EvalResult:
        wg, avg = next(results)
        return EvalResult("val", 100, avg, wg, None, wg, {}, {}, "true")

    chosen = []
    for by_mean in (True, False):
        model = torch.nn.Linear(1, 1)
        hook = SelectBest(model, score, by_mean=by_mean)
        for epoch in range(3):
            with torch.no_grad():
                model.weight.fill_(float(epoch))
            hook.on_epoch_end(epoch)
        chosen.append((hook.epoch, float(hook.state["weight"].item())))
    assert chosen == [(0, 0.0), (1, 1.0)]
