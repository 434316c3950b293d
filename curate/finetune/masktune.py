"""MaskTune (Taghanaki et al., NeurIPS 2022, "MaskTune: Mitigating Spurious Correlations by Forcing
to Explore").

1. Train ERM (here: a small CNN from scratch on the manifest's images).
2. For each training image, an xGradCAM saliency map of the trained model for its label:
   ``α_k = Σ_ij (A_kij / Σ_ij A_kij) · ∂y_c/∂A_kij``, map = ReLU(Σ_k α_k A_k), upsampled to the input.
3. Threshold each map at its ``mean + 2·std`` (from the authors' code) and zero the input pixels above it.
4. Fine-tune the ERM model for ONE epoch on the masked images (no new data, no group labels).
5. Selective classification: abstain where the ERM model and the masked model disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from curate._core import schema as S
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.errors import ConfigError
from curate.eval import EvalResult, evaluate_predictions
from curate.finetune._loop import eval_ids, prediction_frame
from curate.finetune.images import IMAGE_SIZE, load_images, small_cnn
from curate.manifest import Manifest
from curate.train import ERM, TensorBatches, TrainConfig, fit

THRESHOLD_STDS = 2.0  # mean + 2·std of each saliency map (authors' code)


@dataclass(frozen=True, kw_only=True)
class MaskTuneConfig:
    """ERM settings for step 1; step 4 always runs one epoch at ``finetune_lr``."""

    epochs: int = 10
    lr: float = 1e-3
    finetune_lr: float = 1e-4
    weight_decay: float = 1e-4
    batch_size: int = 128
    image_size: int = IMAGE_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError.bad_param("MaskTuneConfig()", "epochs", "an integer >= 1", self.epochs)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (provenance)."""
        return asdict(self)


def xgradcam(model: Any, x: Any, labels: Any, *, batch_size: int = 256) -> Any:
    """xGradCAM maps ``(N, H, W)`` for ``labels``, upsampled to the input size (torch tensor)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    out = []
    for s in range(0, len(x), batch_size):
        xb = x[s : s + batch_size].detach().requires_grad_(True)  # keeps maps in the graph for any model
        logits, _ = model(xb)
        maps = model.last_maps
        score = logits.gather(1, labels[s : s + batch_size, None]).sum()
        grads = torch.autograd.grad(score, maps)[0]
        with torch.no_grad():
            norm = maps / maps.sum(dim=(2, 3), keepdim=True).clamp(min=1e-8)
            alpha = (norm * grads).sum(dim=(2, 3), keepdim=True)
            cam = F.relu((alpha * maps).sum(dim=1, keepdim=True))
            out.append(F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0])
    model.last_maps = None  # drop the graph-holding activations
    return torch.cat(out)


def mask_above_threshold(x: Any, maps: Any, *, stds: float = THRESHOLD_STDS) -> tuple[Any, Any]:
    """Zero the pixels of ``x`` (N, C, H, W) whose saliency exceeds that map's ``mean + stds·std``.

    Returns the masked inputs and the boolean masks ``(N, H, W)`` (True = masked).
    """
    flat = maps.flatten(1)
    thr = flat.mean(1) + stds * flat.std(1)
    masks = maps > thr[:, None, None]
    return x * (~masks)[:, None].to(x.dtype), masks


@dataclass(frozen=True)
class MaskTuneResult:
    """ERM and MaskTune metrics on val/test, and selective classification on test."""

    erm_val: EvalResult
    erm_test: EvalResult
    val: EvalResult
    test: EvalResult
    coverage: float
    selective_accuracy: float
    masked_share: float
    config: dict[str, Any]


def masktune(manifest: Manifest, table: SampleTable, cfg: MaskTuneConfig | None = None) -> MaskTuneResult:
    """Run MaskTune on the manifest's images (weights honoured in the ERM step)."""
    import torch

    cfg = cfg or MaskTuneConfig()
    f = manifest.frame
    ids = f[S.SAMPLE_ID].to_list()
    x = torch.from_numpy(load_images(table, ids, size=cfg.image_size))
    y = torch.from_numpy(f[S.LABEL].to_numpy().astype(np.int64))
    w = torch.from_numpy(f[S.WEIGHT].to_numpy().astype(np.float32))
    val_ids, test_ids = eval_ids(table)
    xv = torch.from_numpy(load_images(table, val_ids, size=cfg.image_size))
    xt = torch.from_numpy(load_images(table, test_ids, size=cfg.image_size))
    n_classes = max(table.n_classes, int(y.max()) + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "masktune-init"))
        model = small_cnn(n_classes)
    tcfg = TrainConfig(
        epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, seed=cfg.seed
    )
    fit(ERM(model), TensorBatches(x, y, batch_size=cfg.batch_size, seed=cfg.seed, weight=w), tcfg, desc="MaskTune ERM")

    def predict(m: Any, xs: Any) -> np.ndarray:
        m.eval()
        with torch.no_grad():
            return torch.cat([m(xs[s : s + 512])[0].argmax(1) for s in range(0, len(xs), 512)]).numpy()

    erm_v, erm_t = predict(model, xv), predict(model, xt)
    maps = xgradcam(model, x, y)
    masked, masks = mask_above_threshold(x, maps)
    ft = TrainConfig(
        epochs=1,
        lr=cfg.finetune_lr,
        weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size,
        seed=derive_seed(cfg.seed, "masktune-ft"),
    )
    import copy

    model.last_maps = None
    tuned = copy.deepcopy(model)
    fit(
        ERM(tuned),
        TensorBatches(masked, y, batch_size=cfg.batch_size, seed=ft.seed, weight=w),
        ft,
        desc="MaskTune fine-tune",
    )
    mt_v, mt_t = predict(tuned, xv), predict(tuned, xt)

    def ev(split: str, split_ids: list[str], pred: np.ndarray) -> EvalResult:
        return evaluate_predictions(table, prediction_frame(split_ids, pred), split=split)

    agree = erm_t == mt_t
    labels_t = table.split("test").frame[S.LABEL].to_numpy()
    return MaskTuneResult(
        erm_val=ev("val", val_ids, erm_v),
        erm_test=ev("test", test_ids, erm_t),
        val=ev("val", val_ids, mt_v),
        test=ev("test", test_ids, mt_t),
        coverage=float(agree.mean()),
        selective_accuracy=float((mt_t[agree] == labels_t[agree]).mean()) if agree.any() else float("nan"),
        masked_share=float(masks.float().mean()),
        config=cfg.to_dict(),
    )
