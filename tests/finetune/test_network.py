"""Fine-tuning a network on a manifest: the one trainer for every method, its dynamics (in-training
and the eval-mode pass), mixing pairs, GroupDRO state, DFR on network features, text backbones."""

from __future__ import annotations

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
    assert ev.frame.height == 160 and ev.frame["el2n"].is_between(0, np.sqrt(2)).all()
    metrics = (tmp_path / "run" / "metrics.json").read_text()
    assert '"backbone": "fine-tuned network (small-cnn)"' in metrics
    assert 0.0 <= r.test.acc_wg <= r.test.acc_avg <= 1.0


def test_eval_pass_scores_the_model_of_that_epoch(dc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With one epoch and a pass after it, the eval EL2N is the final model's, from its predictions."""
    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="small-cnn", epochs=1, batch_size=32, eval_fraction=1.0)
    train("erm", TrainRequest(dc, m, device="cpu", out=tmp_path / "run"), cfg)
    ev = api.eval_dynamics(tmp_path / "run" / "dynamics").frame.sort("sample_id")
    p_true = ev["prob_true"].to_numpy()
    # binary: EL2N = sqrt(2) * (1 - p(true))
    np.testing.assert_allclose(ev["el2n"].to_numpy(), np.sqrt(2) * (1 - p_true), rtol=1e-4, atol=1e-5)


def test_weights_drive_the_sampler_and_mixing_reaches_the_pixels(dc) -> None:  # type: ignore[no-untyped-def]
    m = api.select("oracle", dc)  # group-balancing weights
    r = train("erm", TrainRequest(dc, m, device="cpu"), FinetuneConfig(backbone="small-cnn", epochs=1))
    assert r.config["sampling"] == "weighted"
    ids = dc.split("train").frame["sample_id"].to_list()[:40]
    f = pl.DataFrame(
        {
            "sample_id": ids,
            "source": dc.frame.filter(pl.col("sample_id").is_in(ids))["path"].to_list(),
            "label": dc.frame.filter(pl.col("sample_id").is_in(ids))["label"].to_list(),
            "weight": [1.0] * 40,
            "mix_with": [ids[(i + 1) % 40] for i in range(40)],
            "mix_lambda": [0.5] * 40,
        }
    )
    seen = {}

    class Spy:
        def on_epoch_start(self, epoch: int) -> None: ...

        def on_batch(self, epoch, batch, out) -> None:  # type: ignore[no-untyped-def]
            seen.setdefault("keys", set(batch))
            seen.setdefault("lam", batch["mix_lambda"])

        def on_epoch_end(self, epoch: int) -> None: ...

    mixed = Manifest(manifest_frame(f))
    train("erm", TrainRequest(dc, mixed, device="cpu", hooks=(Spy(),)), FinetuneConfig(backbone="small-cnn", epochs=1))
    assert {"x", "mix_x", "mix_lambda", "label", "index"} <= seen["keys"] and "weight" not in seen["keys"]
    assert torch.all(seen["lam"] == 0.5)


def test_groupdro_and_dfr_on_the_network(dc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="small-cnn", **TINY)
    r = train("groupdro", TrainRequest(dc, m, device="cpu", out=tmp_path / "dro"), cfg)
    ckpt = torch.load(tmp_path / "dro" / "checkpoints" / "checkpoint.pt", weights_only=True)
    q = ckpt["method"]["q"]
    assert q.shape == (4,) and float(q.sum()) == pytest.approx(1.0) and not torch.allclose(q, torch.full((4,), 0.25))
    assert r.config["method"] == "groupdro"
    d = train("dfr", TrainRequest(dc, m, device="cpu"), cfg)
    assert d.extra["dfr"]["heads"] == 20 and d.extra["dfr"]["C"] in (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)


def test_text_backbone_fine_tunes_and_mixes_tokens(small_text, tiny: dict[str, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    m = api.select("keep-all", small_text)
    cfg = FinetuneConfig(backbone=f"hf-text:{tiny['bert']}", epochs=2, batch_size=4)
    r = train("erm", TrainRequest(small_text, m, device="cpu", out=tmp_path / "t"), cfg)
    assert r.config["optimizer"] == "adamw" and r.config["lr"] == 1e-5 and r.config["max_grad_norm"] == 1.0
    assert DynamicsLog.read(tmp_path / "t" / "dynamics").n_epochs == 2
    f = m.frame.with_columns(
        pl.col("sample_id").shift(1).fill_null(m.frame["sample_id"][-1]).alias("mix_with"),
        pl.lit(0.3).alias("mix_lambda"),
    )
    train("erm", TrainRequest(small_text, Manifest(manifest_frame(f)), device="cpu"), cfg)


def test_train_from_freezes_the_earlier_layers(dc) -> None:  # type: ignore[no-untyped-def]
    from curate.embed import create_backbone
    from curate.finetune import train_network
    from curate.finetune.network import build_network

    m = api.select("keep-all", dc)
    cfg = FinetuneConfig(backbone="small-cnn", epochs=1, train_from="head")  # a linear probe
    keep: dict = {}
    r = train_network(TrainRequest(dc, m, device="cpu"), cfg, keep=keep)
    init = build_network(create_backbone("small-cnn"), 2, "image", r.config, cfg.seed).state_dict()
    after = keep["model"].state_dict()
    assert all(torch.equal(after[k], init[k]) for k in after if k.startswith("body."))
    assert any(not torch.equal(after[k], init[k]) for k in after if k.startswith("head."))
    with pytest.raises(Exception, match="unknown stage"):
        train("erm", TrainRequest(dc, m, device="cpu"), FinetuneConfig(backbone="small-cnn", train_from="layer9"))
