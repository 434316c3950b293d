"""The recorder's per-epoch signals, its use in the loop, resume after a crash, and the proxy trainer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from curate import api
from curate.dynamics import DynamicsLog, DynamicsRecorder, ProxyConfig, epoch_signals, train_proxy
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, IdMismatchError
from curate.train import ERM, TensorBatches, TrainConfig, fit, make_head


def test_epoch_signals_by_hand() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    labels = torch.tensor([0, 2])
    s = {k: v.numpy() for k, v in epoch_signals(logits, labels).items()}
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    np.testing.assert_allclose(s["loss"], [-np.log(p[0, 0]), -np.log(p[1, 2])], rtol=1e-6)
    np.testing.assert_allclose(s["margin"], [2.0, -0.5])
    np.testing.assert_array_equal(s["correct"], [True, False])
    np.testing.assert_allclose(s["prob_true"], [p[0, 0], p[1, 2]], rtol=1e-6)
    onehot = np.array([[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(s["el2n"], np.linalg.norm(p - onehot, axis=1), rtol=1e-6)


def data(n: int = 60, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, d, generator=g) + y[:, None].float()
    return x, y, [f"s{i:03d}" for i in range(n)]


class Crash:
    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_start(self, epoch: int) -> None:
        if epoch == self.at:
            raise KeyboardInterrupt("simulated crash")

    def on_batch(self, epoch: int, batch: dict, out: dict) -> None: ...

    def on_epoch_end(self, epoch: int) -> None: ...


def run(folder: Path, crash_at: int | None = None) -> None:
    x, y, ids = data()
    cfg = TrainConfig(epochs=5, batch_size=16, lr=0.05, seed=1)
    torch.manual_seed(0)
    head = make_head("mlp", 5, 2, hidden=8)
    hooks: list = [DynamicsRecorder(folder, ids, y.numpy(), 2)]
    if crash_at is not None:
        hooks.append(Crash(crash_at))
    fit(ERM(head), TensorBatches(x, y, batch_size=16, seed=1), cfg, hooks=hooks, checkpoint_dir=folder / "run=0")


def test_recorded_loss_is_the_training_loss(tmp_path: Path) -> None:
    x, y, ids = data()
    torch.manual_seed(0)
    head = make_head("linear", 5, 2)
    losses: list[float] = []

    class Keep:
        def on_epoch_start(self, epoch: int) -> None: ...

        def on_batch(self, epoch: int, batch: dict, out: dict) -> None:
            if epoch == 0:
                losses.append(float(out["loss"].detach()) * len(batch["label"]))

        def on_epoch_end(self, epoch: int) -> None: ...

    rec = DynamicsRecorder(tmp_path, ids, y.numpy(), 2)
    fit(
        ERM(head), TensorBatches(x, y, batch_size=16, seed=0), TrainConfig(epochs=2, batch_size=16), hooks=[rec, Keep()]
    )
    log = DynamicsLog.read(tmp_path)
    assert log.n_epochs == 2 and log.frame.height == 120 and rec.done_epochs() == {0, 1}
    assert log.at_epoch(0)["loss"].sum() == pytest.approx(sum(losses), rel=1e-5)
    feat = log.at_epoch(0).join(pl.DataFrame({"sample_id": ids, "n": x.norm(dim=1).numpy()}), on="sample_id")
    np.testing.assert_allclose(feat["feat_norm"], feat["n"], rtol=1e-5)  # linear head: features = inputs


def test_resume_after_crash_equals_uninterrupted(tmp_path: Path) -> None:
    run(tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed", crash_at=3)
    assert sorted(p.name for p in (tmp_path / "crashed" / "run=0").glob("epoch=*")) == [
        "epoch=0000.parquet",
        "epoch=0001.parquet",
        "epoch=0002.parquet",
    ]
    run(tmp_path / "crashed")
    a = DynamicsLog.read(tmp_path / "clean").frame.sort("epoch", "sample_id")
    b = DynamicsLog.read(tmp_path / "crashed").frame.sort("epoch", "sample_id")
    assert a.equals(b)


def test_proxy_trains_on_train_split_and_is_reproducible(tmp_path: Path, digits_dir: Path) -> None:
    table = api.load_dataset(digits_dir)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(table), 8)).astype(np.float32) + table.frame["label"].to_numpy()[:, None]
    emb = EmbeddingTable(table.ids, x)
    cfg = ProxyConfig(epochs=3, runs=2, seed=5, lr=0.05)
    log = train_proxy(emb, table, cfg, tmp_path / "a")
    assert log is not None and log.runs == [0, 1] and log.n_epochs == 3
    assert set(log.ids) == set(table.split("train").ids)
    again = train_proxy(emb, table, cfg, tmp_path / "b")
    assert again is not None and log.frame.sort("run", "epoch", "sample_id").equals(
        again.frame.sort("run", "epoch", "sample_id")
    )
    assert log.frame.group_by("epoch").agg(pl.col("correct").mean()).sort("epoch")["correct"][-1] > 0.9
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    train_proxy(emb, table, ProxyConfig(epochs=1, seed=9), tmp_path / "c")
    assert torch.rand(1) == before  # initialisation did not consume the global RNG


def test_proxy_errors(tmp_path: Path, digits_dir: Path) -> None:
    table = api.load_dataset(digits_dir)
    emb = EmbeddingTable(table.ids.head(10), np.zeros((10, 4), dtype=np.float32))
    with pytest.raises(IdMismatchError, match="ids in 'train split' not in 'embeddings'"):
        train_proxy(emb, table, ProxyConfig(epochs=1), tmp_path)
    with pytest.raises(ConfigError, match="'head' must be one of"):
        ProxyConfig(head="transformer")
    with pytest.raises(ConfigError, match="'epochs' must be an integer >= 1"):
        ProxyConfig(epochs=0)


def test_api_record_dynamics_caches_and_resumes(
    tmp_path: Path, digits_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = api.load_dataset(digits_dir)
    rng = np.random.default_rng(1)
    emb = EmbeddingTable(table.ids, rng.normal(size=(len(table), 6)).astype(np.float32), {"encoder": "random"})
    cfg = ProxyConfig(epochs=2)
    log = api.record_dynamics(table, emb, config=cfg, workspace=tmp_path / "ws")
    with caplog.at_level("INFO", logger="curate"):
        again = api.record_dynamics(table, emb, config=cfg, workspace=tmp_path / "ws")
    assert "loaded cached dynamics" in caplog.text and log.frame.equals(again.frame)
    bad = EmbeddingTable(emb.ids, emb.matrix.copy())
    bad.matrix[5, 0] = np.inf
    from curate.errors import InputDataError

    with pytest.raises(InputDataError, match="row 6"):
        api.record_dynamics(table, bad, config=cfg)


def test_resume_when_the_last_shard_was_lost(tmp_path: Path) -> None:
    """kill -9 while the background writer held epoch 2: checkpoint 2 exists, shard 2 does not."""
    run(tmp_path / "clean")
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "crashed", crash_at=3)
    (tmp_path / "crashed" / "run=0" / "epoch=0002.parquet").unlink()
    run(tmp_path / "crashed")  # falls back to checkpoint 1 and redoes epoch 2
    a = DynamicsLog.read(tmp_path / "clean").frame.sort("epoch", "sample_id")
    b = DynamicsLog.read(tmp_path / "crashed").frame.sort("epoch", "sample_id")
    assert a.equals(b)


def test_one_eval_pass_prediction_feeds_every_target_that_wants_the_epoch(tmp_path: Path) -> None:
    """The eval-mode passes (prune's EL2N at 40%, SPARE's outputs at the early epoch): one prediction
    per epoch, written to each target that wants it, the softmax kept where asked; an epoch counts as
    done for resume only when every target that wants it has its shard."""
    from curate.dynamics import EvalPass
    from curate.dynamics.log import OUTPUTS, early_epoch_index, epoch_at_fraction, output_epochs

    assert [early_epoch_index(n) for n in (1, 5, 20, 300)] == [0, 0, 2, 30]  # round(0.1·E)
    # SPARE's candidate epochs, round(f·E) for f = 0.02/0.05/0.1/0.2/0.4 (and the early epoch, 0.1):
    # 30 epochs -> after 2, 3, 4, 7, 13 epochs (the lab's inference models train 1-3, up to 20)
    assert output_epochs(30) == {1, 2, 3, 6, 12} and output_epochs(300) == {6, 15, 30, 60, 120}
    assert output_epochs(1) == {0} and output_epochs(4) == {0, 1, 2}
    assert epoch_at_fraction(25, 0.4) == 9 and epoch_at_fraction(3, 0.05) == 0  # round(f·E) − 1, at least 0
    ids, labels = ["a", "b", "c"], np.array([0, 1, 1])
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, -1.0]], dtype=np.float32)
    calls: list[int] = []

    def predict() -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        return logits, np.ones((3, 4), dtype=np.float32)

    ev = DynamicsRecorder(tmp_path / "eval", ids, labels, 2)
    out = DynamicsRecorder(tmp_path / OUTPUTS, ids, labels, 2, keep_probs=True)
    hook = EvalPass(predict, [(ev, {2}), (out, {1, 2})], 4)
    assert hook.done_epochs() == {0, 3}
    for epoch in range(4):
        hook.on_epoch_end(epoch)
    assert len(calls) == 2 and hook.done_epochs() == {0, 1, 2, 3}  # epoch 2: one prediction, two shards
    kept = DynamicsLog.read(tmp_path / OUTPUTS)
    np.testing.assert_allclose(
        np.asarray(kept.at_epoch(2)["probs"].to_list()), torch.softmax(torch.from_numpy(logits), 1).numpy(), atol=1e-6
    )
    assert kept.at_epoch(1)["correct"].to_list() == [True, True, False]
    assert "probs" not in DynamicsLog.read(tmp_path / "eval").frame.columns
    (tmp_path / OUTPUTS / "run=0" / "epoch=0002.parquet").unlink()  # killed between the two writes
    assert EvalPass(predict, [(ev, {2}), (out, {1, 2})], 4).done_epochs() == {0, 1, 3}
