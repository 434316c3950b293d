"""Fine-tuning a network on a manifest: the one trainer for every method, its dynamics (in-training
and the eval-mode pass), mixing pairs, GroupDRO state, DFR on network features, text backbones."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from curate import api
from curate.dynamics import DynamicsLog
from curate.finetune import FinetuneConfig, TrainRequest, train
from curate.manifest import Manifest, manifest_frame

TINY = {"epochs": 3, "batch_size": 32}


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("net") / "dc"
    return api.make_benchmark("digits-color", out, n_train=160, n_val_per_group=8, n_test_per_group=8)


def test_network_run_writes_dynamics_of_both_kinds(dc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="small-cnn", eval_fraction=0.4, **TINY)
    r = api.finetune(dc, None, m, cfg, out=tmp_path / "run", device="cpu")
    assert (
        r.config["backbone"] == "small-cnn" and r.config["image_size"] == 32 and r.config["sampling"] == "permutation"
    )
    log = DynamicsLog.read(tmp_path / "run" / "dynamics")
    assert log.n_epochs == 3 and set(log.ids.to_list()) == set(m.frame["sample_id"].to_list())
    ev = api.eval_dynamics(tmp_path / "run" / "dynamics")
    assert ev.frame["epoch"].unique().to_list() == [0]  # round(0.4 * 3) - 1
    assert log.outputs is None  # SPARE's outputs pass belongs to a dynamics recording only
    assert ev.frame.height == 160 and ev.frame["el2n"].is_between(0, np.sqrt(2)).all()
    metrics = (tmp_path / "run" / "metrics.json").read_text()
    assert '"backbone": "fine-tuned network (small-cnn)"' in metrics
    assert 0.0 <= r.test.acc_wg <= r.test.acc_avg <= 1.0


def test_eval_pass_scores_the_model_in_eval_mode(dc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """EfficientNet-Lite0 (dropout, BatchNorm): after one epoch the eval pass holds the final
    model's eval-mode probabilities of every train row, not the in-training ones."""
    from curate.finetune import train_network

    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="efficientnet-lite0", image_size=32, epochs=1, batch_size=32, eval_fraction=1.0)
    keep: dict = {}
    request = TrainRequest(dc, m, device="cpu", out=tmp_path / "run", dynamics_dir=tmp_path / "run" / "dynamics")
    train_network(request, cfg, keep=keep)
    ev = api.eval_dynamics(tmp_path / "run" / "dynamics").frame
    ids = ev["sample_id"].to_list()
    logits, _ = keep["predict"](ids)
    p = torch.softmax(torch.from_numpy(logits), 1).numpy()
    y = dc.frame.filter(pl.col("sample_id").is_in(ids)).sort(
        pl.col("sample_id").replace_strict(ids, list(range(len(ids))))
    )
    np.testing.assert_allclose(ev["prob_true"].to_numpy(), p[np.arange(len(ids)), y["label"].to_numpy()], atol=1e-5)
    recorded = DynamicsLog.read(tmp_path / "run" / "dynamics")
    both = ev.join(recorded.frame, on="sample_id", suffix="_train")
    assert not np.allclose(both["prob_true"].to_numpy(), both["prob_true_train"].to_numpy(), atol=1e-3)
    # a recording's outputs pass (SPARE's): the same model's whole softmax vector, at the early epoch
    out = recorded.outputs_at(0)
    assert out is not None and recorded.outputs is not None and recorded.outputs.epochs == [0]
    out = out.sort(pl.col("sample_id").replace_strict(ids, list(range(len(ids)))))
    np.testing.assert_allclose(np.asarray(out["probs"].to_list()), p, atol=1e-5)


def test_network_recording_keeps_outputs_at_each_candidate_epoch(dc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A network's dynamics recording keeps SPARE's outputs at every candidate epoch: of 3 epochs,
    index round(f·3) of 2/5/10/20/40% = 0, 0, 0, 1, 1; each is the model of its epoch (epoch 0's
    eval pass, EL2N's at 1/3 of training, read the same prediction)."""
    from curate.finetune import train_network

    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="small-cnn", eval_fraction=1 / 3, **TINY)
    request = TrainRequest(dc, m, device="cpu", out=tmp_path / "run", dynamics_dir=tmp_path / "run" / "dynamics")
    train_network(request, cfg)
    log = DynamicsLog.read(tmp_path / "run" / "dynamics")
    assert log.n_epochs == 3 and log.outputs is not None and log.outputs.epochs == [0, 1]
    assert log.eval_pass is not None and log.eval_pass.epochs == [0]
    e0, e1 = (log.outputs_at(e) for e in (0, 1))
    assert e0 is not None and e1 is not None
    both = (
        log.eval_pass.at_epoch(0)
        .join(e0, on="sample_id", suffix="_out")
        .join(dc.frame.select("sample_id", "label"), on="sample_id")
    )
    p_label = [probs[y] for probs, y in zip(both["probs"].to_list(), both["label"].to_list(), strict=True)]
    np.testing.assert_allclose(both["prob_true"].to_numpy(), p_label, atol=1e-6)
    assert not np.allclose(
        np.asarray(e0.sort("sample_id")["probs"].to_list()), np.asarray(e1.sort("sample_id")["probs"].to_list())
    )


def test_weights_drive_the_sampler_and_mixing_reaches_the_model(dc, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from curate.embed import _networks

    m = api.select("oracle", dc)  # group-balancing weights
    r = train("erm", TrainRequest(dc, m, device="cpu"), FinetuneConfig(backbone="small-cnn", epochs=1))
    assert r.config["sampling"] == "weighted"
    ids = dc.split("train").frame["sample_id"].to_list()[:40]
    rows = dc.frame.filter(pl.col("sample_id").is_in(ids))
    f = pl.DataFrame(
        {
            "sample_id": rows["sample_id"], "source": rows["path"], "label": rows["label"], "weight": [1.0] * 40,
            "mix_with": [ids[(i + 1) % 40] if i % 2 else None for i in range(40)],
            "mix_lambda": [0.25 if i % 2 else None for i in range(40)],
        }
    )  # fmt: skip
    calls: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = []
    real = _networks.ImageNetwork.features

    def spy(self, x, mix_x=None, mix_lambda=None):  # type: ignore[no-untyped-def]
        if self.training:
            calls.append((x, mix_x, mix_lambda))
        return real(self, x, mix_x, mix_lambda)

    monkeypatch.setattr(_networks.ImageNetwork, "features", spy)
    mixed = Manifest(manifest_frame(f))
    train("erm", TrainRequest(dc, mixed, device="cpu"), FinetuneConfig(backbone="small-cnn", epochs=1))
    lams = torch.cat([c[2] for c in calls])
    assert all(c[1] is not None for c in calls) and sorted(set(lams.tolist())) == [0.0, 0.25]
    # unmixed rows get themselves as partner (lambda 0); mixed rows another image
    x, mx, lam = calls[0]
    same = (x == mx).flatten(1).all(1)
    assert torch.equal(same, lam == 0)


def test_groupdro_and_dfr_on_the_network(dc, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import curate.finetune._loop as loop

    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="small-cnn", **TINY)
    r = train("groupdro", TrainRequest(dc, m, device="cpu", out=tmp_path / "dro"), cfg)
    ckpt = torch.load(tmp_path / "dro" / "checkpoints" / "checkpoint.pt", weights_only=True)
    q = ckpt["method"]["q"]
    assert q.shape == (4,) and float(q.sum()) == pytest.approx(1.0) and not torch.allclose(q, torch.full((4,), 0.25))
    assert r.config["method"] == "groupdro"
    seen: dict = {}
    real = loop.dfr_predict

    def spy(hv, ht, table, val_ids, seed):  # type: ignore[no-untyped-def]
        seen.update(hv=hv, val_ids=val_ids)
        return real(hv, ht, table, val_ids, seed)

    monkeypatch.setattr(loop, "dfr_predict", spy)
    from curate.finetune import train_network

    keep: dict = {}
    d = train_network(TrainRequest(dc, m, device="cpu"), replace(cfg, method="dfr"), keep=keep)
    assert d.extra["dfr"]["heads"] == 20 and d.extra["dfr"]["C"] in (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
    # the last layer is refit on the selected network's features of the val rows (the head's input)
    np.testing.assert_allclose(seen["hv"], keep["predict"](seen["val_ids"])[1], rtol=1e-5, atol=1e-6)
    # DISPEL with val groups on a network: the same protocol, DISPEL's heads on those features
    import curate.finetune.dispel as dispel

    real_dispel, seen_dispel = dispel.dispel_val_predict, {}

    def spy_dispel(hv, ht, table, val_ids, seed):  # type: ignore[no-untyped-def]
        seen_dispel.update(hv=hv, val_ids=val_ids)
        return real_dispel(hv, ht, table, val_ids, seed)

    monkeypatch.setattr(dispel, "dispel_val_predict", spy_dispel)
    keep = {}
    v = train_network(TrainRequest(dc, m, device="cpu"), replace(cfg, method="dispel-val"), keep=keep)
    assert v.extra["dispel"]["chosen_on"] == "true val groups (half split)" and len(v.extra["dispel"]["tried"]) == 28
    np.testing.assert_allclose(seen_dispel["hv"], keep["predict"](seen_dispel["val_ids"])[1], rtol=1e-5, atol=1e-6)


def test_text_backbone_fine_tunes_and_mixes_tokens(
    small_text, tiny: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from curate.embed import _networks

    m = api.select("keep-all", small_text)
    cfg = FinetuneConfig(backbone=f"hf-text:{tiny['bert']}", epochs=2, batch_size=4)
    r = train("erm", TrainRequest(small_text, m, device="cpu", out=tmp_path / "t"), cfg)
    assert r.config["optimizer"] == "adamw" and r.config["lr"] == 1e-5 and r.config["max_grad_norm"] == 1.0
    assert DynamicsLog.read(tmp_path / "t" / "dynamics").n_epochs == 2
    f = m.frame.with_columns(
        pl.col("sample_id").shift(1).fill_null(m.frame["sample_id"][-1]).alias("mix_with"),
        pl.lit(0.3).alias("mix_lambda"),
    )
    calls: list = []
    real = _networks.TextNetwork.features

    def spy(self, x, mix_x=None, mix_lambda=None):  # type: ignore[no-untyped-def]
        if self.training:
            calls.append((x, mix_x, mix_lambda))
        return real(self, x, mix_x, mix_lambda)

    monkeypatch.setattr(_networks.TextNetwork, "features", spy)
    train("erm", TrainRequest(small_text, Manifest(manifest_frame(f)), device="cpu"), cfg)
    assert calls and all(c[1] is not None and torch.all(c[2] == 0.3) for c in calls)
    x, mx, _ = calls[0]  # each row's partner is tokenised to the same length, not equal to the row
    assert x["input_ids"].shape == mx["input_ids"].shape and not torch.equal(x["input_ids"], mx["input_ids"])


def test_cpu_budget_is_counted_in_steps() -> None:
    cfg = FinetuneConfig(backbone="efficientnet-lite0")
    epochs = {n: cfg.settings(modality="image", device="cpu", n_rows=n)["epochs"] for n in (1000, 4000, 10_000, 10**6)}
    assert epochs == {1000: 75, 4000: 20, 10_000: 8, 10**6: 8}  # 1200 steps of 64, 8 to 100 epochs
    assert cfg.settings(modality="image", device="cuda")["epochs"] == 25  # the papers'
    assert (
        FinetuneConfig(backbone="efficientnet-lite0", epochs=3).settings(modality="image", device="cpu")["epochs"] == 3
    )


def test_train_from_freezes_the_earlier_layers(dc, tiny: dict[str, Path]) -> None:  # type: ignore[no-untyped-def]
    """resnet18 (BatchNorm): before ``layer4.0`` nothing moves, running statistics included."""
    from curate.embed import create_backbone
    from curate.finetune import train_network
    from curate.finetune.network import build_network

    spec = f"torchvision:resnet18:{tiny['resnet18']}"
    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone=spec, epochs=1, image_size=32, batch_size=32, train_from="layer4.0")
    keep: dict = {}
    r = train_network(TrainRequest(dc, m, device="cpu"), cfg, keep=keep)
    init = build_network(create_backbone(spec), 2, "image", r.config, cfg.seed).state_dict()
    after = keep["model"].state_dict()
    frozen = [k for k in after if k.startswith(("body.conv1", "body.bn1", "body.layer1", "body.layer3"))]
    assert any("running_mean" in k for k in frozen)
    assert all(torch.equal(after[k], init[k]) for k in frozen)
    assert any(not torch.equal(after[k], init[k]) for k in after if k.startswith(("body.layer4", "head.")))
    with pytest.raises(Exception, match="unknown stage"):
        train("erm", TrainRequest(dc, m, device="cpu"), FinetuneConfig(backbone="small-cnn", train_from="layer9"))
