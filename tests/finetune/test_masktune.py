"""MaskTune: the xGradCAM maps and the mean + 2·std masking by hand, and an end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from curate import api
from curate.finetune import MaskTuneConfig, mask_above_threshold, masktune, xgradcam


def test_mask_exactly_the_pixels_above_mean_plus_two_std() -> None:
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 0] = 10.0  # one hot spot
    maps[0, 1, 1] = 1.0
    flat = maps.flatten()
    thr = flat.mean() + 2 * flat.std()
    x = torch.ones(1, 3, 4, 4)
    masked, masks = mask_above_threshold(x, maps)
    assert masks.sum() == int((flat > thr).sum()) == 1 and bool(masks[0, 0, 0])
    assert float(masked[0, :, 0, 0].sum()) == 0.0 and float(masked.sum()) == 3 * 15


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
        torch.testing.assert_close(cams[n], expected)


def test_masktune_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = api.make_benchmark("digits-color", tmp_path / "d", n_train=200, n_val_per_group=10, n_test_per_group=10)
    r = masktune(api.select("keep-all", table), table, MaskTuneConfig(epochs=3))
    assert 0.0 <= r.coverage <= 1.0 and 0.0 < r.masked_share < 0.2
    assert r.erm_test.n == r.test.n == 40
    assert np.isfinite(r.test.acc_wg)
    with pytest.raises(Exception, match="image dataset"):
        masktune(api.select("keep-all", table), table.with_frame(table.frame.rename({"path": "text"})))
