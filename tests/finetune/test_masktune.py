"""MaskTune: the xGradCAM maps and the mean + 2·std masking by hand, and an end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate import api
from curate.finetune import MaskTuneConfig, mask_above_threshold, saliency_masks, xgradcam


def test_threshold_is_mean_plus_two_std_of_the_positive_values() -> None:
    # map 0: positives 1 (x12) and 10; zeros elsewhere. Over the 13 positive values
    # mean = 22/13, population std = sqrt(mean of squares - mean^2) = sqrt(112/13 - (22/13)^2)
    maps = torch.zeros(2, 4, 4)
    maps[0].view(-1)[:12] = 1.0
    maps[0, 3, 3] = 10.0
    mean = 22 / 13
    thr = mean + 2 * np.sqrt(112 / 13 - mean**2)  # 6.88: only the 10 is above
    assert 1.0 < thr < 10.0
    # map 1: two positives (3 and 4) among 14 zeros: over all 16 values mean + 2 std = 2.84 would
    # mask both; over the positive values it is 3.5 + 2 * 0.5 = 4.5, and nothing is masked
    maps[1, 0, 0], maps[1, 0, 1] = 3.0, 4.0
    masks = saliency_masks(maps)
    assert masks[0].sum() == 1 and bool(masks[0, 3, 3])
    assert masks[1].sum() == 0
    x = torch.ones(2, 3, 4, 4)
    fill = torch.tensor([-1.0, -2.0, -3.0])
    masked, _ = mask_above_threshold(x, maps, fill=fill)
    assert masked[0, :, 3, 3].tolist() == [-1.0, -2.0, -3.0] and float(masked[0].sum()) == 3 * 15 - 6
    assert bool((masked[1] == 1).all())
    assert saliency_masks(torch.zeros(1, 2, 2)).sum() == 0  # no positive value: nothing masked


def test_xgradcam_by_hand() -> None:
    class Linear(torch.nn.Module):
        """maps = input; logits = W · mean(maps): ∂y_c/∂A_kij = W_ck / (H·W)."""

        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2, bias=False)
            with torch.no_grad():
                self.fc.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
            self.last_maps: torch.Tensor | None = None

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            self.last_maps = x
            h = x.mean(dim=(2, 3))
            return self.fc(h), h

    x = torch.rand(3, 2, 4, 4, generator=torch.Generator().manual_seed(0)) + 0.1
    labels = torch.tensor([0, 1, 0])
    cams = xgradcam(Linear(), x, labels)
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    for n in range(3):
        alpha = w[labels[n]] / 16  # Σ_ij (A/ΣA)·W/(HW) = W/(HW)
        expected = torch.relu((alpha[:, None, None] * x[n]).sum(0))
        expected = expected - expected.min()  # the authors' min shift (same size: no upsampling here)
        torch.testing.assert_close(cams[n], expected)
        assert cams[n].min() == 0


def test_masktune_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = api.make_benchmark("digits-color", tmp_path / "d", n_train=200, n_val_per_group=10, n_test_per_group=10)
    cfg = MaskTuneConfig(backbone="small-cnn", epochs=3)
    r = api.masktune(api.select("keep-all", table), table, cfg, out=tmp_path / "run", device="cpu")
    assert 0.0 < r.extra["masked_share"] < 0.3
    assert r.extra["erm_test"]["n"] == r.test.n == 40
    curve = r.extra["selective"]
    assert [c["target_coverage"] for c in curve] == list(cfg.coverages) and curve[0]["coverage"] == 1.0
    assert all(0.0 <= c["coverage"] <= 1.0 for c in curve)
    # the masked epoch continued the last ERM checkpoint: one more epoch, on the same batch stream
    ckpt = torch.load(tmp_path / "run" / "masked" / "checkpoints" / "checkpoint.pt", weights_only=True)
    assert int(ckpt["epoch"]) == cfg.epochs and ckpt["batches"]["n"] == 200
    assert np.isfinite(r.test.acc_wg)
    with pytest.raises(Exception, match="image dataset"):
        api.masktune(api.select("keep-all", table), table.with_frame(table.frame.rename({"path": "text"})), cfg)
    with pytest.raises(Exception, match="network"):
        MaskTuneConfig(backbone="head")


def test_the_masked_epoch_sees_black_pixels_exactly_where_the_mask_holds() -> None:
    """MaskTune degrades to one more ERM epoch if the masks never reach the pixels: check the loader
    of the masked epoch against a hand-made mask (bit-packed as stored)."""
    from curate.finetune.masktune import _Masked

    rng = np.random.default_rng(0)
    images = {"a": torch.as_tensor(rng.normal(size=(3, 5, 7)), dtype=torch.float32)}
    mask = np.zeros((5, 7), dtype=bool)
    mask[1:3, 2:6] = True
    fill = torch.tensor([-1.0, -2.0, -3.0])
    loader = _Masked(images.__getitem__, {"a": np.packbits(mask.reshape(-1))}, (5, 7), fill)
    out = loader("a")
    for c in range(3):
        assert torch.all(out[c][torch.from_numpy(mask)] == fill[c])
        torch.testing.assert_close(out[c][torch.from_numpy(~mask)], images["a"][c][torch.from_numpy(~mask)])
    images["b"] = images["a"] + 1  # a mixing partner outside the rows has no mask: unchanged
    torch.testing.assert_close(loader("b"), images["b"])
