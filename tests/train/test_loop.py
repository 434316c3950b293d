"""The one training loop: schedules, what a checkpoint holds, resume equal to an uninterrupted run,
and the DataLoader batch stream (order from the seed, rows drawn by weight)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from curate.errors import ConfigError
from curate.finetune import GroupDRO
from curate.train import ERM, LoaderBatches, TensorBatches, TrainConfig, fit, make_head
from curate.train.loop import CHECKPOINT, lr_factor


def test_schedules_by_hand() -> None:
    cfg = TrainConfig(epochs=1, scheduler="cosine", warmup_fraction=0.2)
    assert [lr_factor(s, 10, cfg) for s in (0, 1)] == [0.5, 1.0]  # warm-up over 2 of 10 steps
    assert lr_factor(2, 10, cfg) == 1.0 and lr_factor(6, 10, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    lin = TrainConfig(epochs=1, scheduler="linear")
    assert [lr_factor(s, 4, lin) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert lr_factor(3, 4, TrainConfig(epochs=1)) == 1.0
    with pytest.raises(ConfigError, match="scheduler"):
        TrainConfig(scheduler="step")
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")


def _data(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = (x[:, 0] > 0).long()
    groups = (x[:, 1] > 0).long()
    return x, y, groups


class Boom(Exception):
    pass


class CrashAt:
    """A hook that raises at the end of one epoch (a crash between checkpoints)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, epoch: int) -> None: ...

    def on_batch(self, epoch: int, batch: dict[str, Any], out: dict[str, Any]) -> None: ...

    def on_epoch_end(self, epoch: int) -> None:
        if epoch == self.epoch:
            raise Boom


def _dro_run(folder: Path | None, crash: int | None = None) -> GroupDRO:
    x, y, g = _data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.net(x), x

    method = GroupDRO(Wrap(), 2, eta=0.1)
    cfg = TrainConfig(epochs=5, batch_size=16, optimizer="sgd", lr=0.1, scheduler="cosine", seed=3)
    batches = TensorBatches(x, y, batch_size=16, seed=3, extra={"group": g})
    fit(method, batches, cfg, checkpoint_dir=folder, hooks=[CrashAt(crash)] if crash is not None else [])
    return method


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    """Dropout, the cosine schedule, SGD momentum and GroupDRO's q all continue where they were."""
    clean = _dro_run(tmp_path / "clean")
    with pytest.raises(Boom):
        _dro_run(tmp_path / "crashed", crash=2)
    state = torch.load(tmp_path / "crashed" / CHECKPOINT, weights_only=True)
    assert int(state["epoch"]) == 1  # epoch 2 crashed before its checkpoint
    assert set(state) >= {"model", "optimizer", "scheduler", "method", "batches", "epoch"}
    assert state["scheduler"]["last_epoch"] == 2 * 4 and state["method"]["q"].shape == (2,)
    resumed = _dro_run(tmp_path / "crashed")
    for a, b in zip(clean.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(clean.q, resumed.q)
    assert not torch.equal(clean.q, torch.full((2,), 0.5))


def test_frozen_parameters_do_not_move_and_all_frozen_is_an_error() -> None:
    x, y, _ = _data()
    head = make_head("mlp", 5, 2, hidden=4)
    frozen = head.body[0].weight.detach().clone()
    head.body[0].weight.requires_grad_(False)
    head.body[0].bias.requires_grad_(False)
    fit(ERM(head), TensorBatches(x, y, batch_size=16, seed=0), TrainConfig(epochs=2, lr=0.1))
    assert torch.equal(head.body[0].weight, frozen)
    for p in head.parameters():
        p.requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        fit(ERM(head), TensorBatches(x, y, batch_size=16, seed=0), TrainConfig(epochs=1))


class Items:
    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"x": torch.tensor([float(i)]), "index": i}


def test_loader_batches_order_comes_from_seed_and_epoch() -> None:
    a, b = LoaderBatches(Items(10), batch_size=4, seed=1), LoaderBatches(Items(10), batch_size=4, seed=1)
    assert a.batch_indices(3) == b.batch_indices(3) and a.batch_indices(3) != a.batch_indices(4)
    seen = [int(i) for batch in a(0) for i in batch["index"]]
    assert sorted(seen) == list(range(10)) and a.sampling == "permutation"
    assert a.dataset.epochs == [0]
    # a trailing batch of one row joins the batch before it (BatchNorm cannot train on one row)
    c = LoaderBatches(Items(9), batch_size=4, seed=0)
    assert [len(i) for i in c.batch_indices(0)] == [4, 5] and len(c) == 2
    with pytest.raises(ConfigError, match="another batch stream"):
        c.load_state_dict(a.state_dict())


def test_loader_batches_draw_rows_by_weight() -> None:
    w = np.array([1.0] * 90 + [9.0] * 10)  # the last 10 rows carry half the weight
    lb = LoaderBatches(Items(100), batch_size=50, seed=0, weights=w)
    drawn = np.concatenate([lb.order(e) for e in range(40)])
    assert lb.sampling == "weighted" and len(lb.order(0)) == 100
    assert (drawn >= 90).mean() == pytest.approx(0.5, abs=0.02)
    with pytest.raises(ConfigError, match="weights"):
        LoaderBatches(Items(3), batch_size=2, seed=0, weights=[1.0, 0.0, 1.0])


def test_a_row_drawn_twice_in_an_epoch_is_augmented_twice() -> None:
    """Augmentation is seeded by (seed, epoch, draw): repeated draws of an upweighted row differ, a
    rerun of the epoch is identical."""
    import polars as pl

    from curate.manifest import Manifest, ManifestDataset, manifest_frame

    ids = [f"s{i}" for i in range(20)]
    frame = pl.DataFrame({"sample_id": ids, "source": ids, "label": [0, 1] * 10, "weight": [99.0] + [1.0] * 19})
    data = ManifestDataset(Manifest(manifest_frame(frame)), lambda _: torch.rand(3), seed=7)
    lb = LoaderBatches(data, batch_size=64, seed=0, weights=frame["weight"].to_numpy())

    def epoch(e: int) -> tuple[list[int], torch.Tensor]:
        (batch,) = list(lb(e))
        return batch["index"].tolist(), batch["x"]

    rows, x = epoch(0)
    again_rows, again_x = epoch(0)
    assert rows == again_rows and torch.equal(x, again_x)
    a = x[torch.tensor(rows) == 0]
    assert len(a) > 5 and len(torch.unique(a, dim=0)) == len(a)
    assert not torch.equal(epoch(1)[1], x)
