"""MaskTune (Taghanaki et al., NeurIPS 2022, "MaskTune: Mitigating Spurious Correlations by Forcing
to Explore"), on a fine-tuned network (``backbone``: any image backbone with convolutional maps).

1. Train ERM on the manifest (the network trainer; model selection on validation WGA).
2. For each training row, an xGradCAM map of the **best** ERM model for its label:
   ``α_k = Σ_ij (A_kij / Σ_ij A_kij) · ∂y_c/∂A_kij``, map = ReLU(Σ_k α_k A_k), shifted to a minimum
   of 0 and upsampled to the input (their code's order: the threshold is taken on the upsampled map).
3. Threshold each map at ``mean + 2·std`` of its **positive** values (the authors' code takes
   nanmean/nanstd over ``heat_maps > 0``) and zero the input pixels above it (black pixels: the
   normalised value of 0).
4. Fine-tune for **one epoch** on the masked rows, continuing from the **last** ERM checkpoint with
   its optimiser (and schedule), no new data and no group labels.
5. Selective classification: confidence = max of ``normalise(p_erm · p_masked)``, thresholds
   calibrated on validation for target coverages; the test accuracy–coverage curve is reported.
It targets *localised* shortcuts that saliency can find.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from curate._core import schema as S
from curate.errors import ConfigError, InputDataError
from curate.eval import evaluate_predictions
from curate.finetune._base import FINETUNE_METHODS, FinetuneResult, Trainer, TrainRequest
from curate.finetune._loop import CHECKPOINTS, eval_ids, prediction_frame, selection_score
from curate.finetune.config import FinetuneConfig
from curate.finetune.network import NetworkInputs, _Rows, train_network
from curate.manifest import ManifestDataset
from curate.train import ERM, LoaderBatches, fit
from curate.train.loop import CHECKPOINT

logger = logging.getLogger(__name__)

THRESHOLD_STDS = 2.0  # mean + 2·std of the map's positive values (authors' code)
COVERAGES = (1.0, 0.99, 0.98, 0.97, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7)


@dataclass(frozen=True, kw_only=True)
class MaskTuneConfig(FinetuneConfig):
    """The ERM stage's settings (a :class:`FinetuneConfig` on a network backbone), the masking
    threshold in standard deviations, and the target coverages of selective classification."""

    backbone: str = "efficientnet-lite0"
    threshold_stds: float = THRESHOLD_STDS
    coverages: tuple[float, ...] = COVERAGES

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method != "erm":
            raise ConfigError.bad_param("MaskTuneConfig()", "method", "'erm' (its first stage)", self.method)
        if not self.is_network:
            raise ConfigError(
                "MaskTune masks the saliency of a fine-tuned network; set backbone to an image network "
                "(e.g. efficientnet-lite0), not 'head'"
            )
        if not all(0.0 < c <= 1.0 for c in self.coverages):
            raise ConfigError.bad_param("MaskTuneConfig()", "coverages", "floats in (0, 1]", self.coverages)


def xgradcam(model: Any, x: Any, labels: Any) -> Any:
    """xGradCAM maps ``(N, H, W)`` of ``model`` for ``labels``, upsampled to the input size (torch).

    ``model(x)`` returns ``(logits, features)`` and leaves its last convolutional maps in
    ``model.last_maps`` (networks do when ``keep_maps`` is set).
    """
    import torch
    import torch.nn.functional as F

    model.eval()
    xb = x.detach().requires_grad_(True)  # keeps the maps in the graph even with frozen layers
    logits, _ = model(xb)
    maps = model.last_maps
    if maps is None:
        raise ConfigError("this backbone has no convolutional maps for Grad-CAM; use a CNN backbone")
    score = logits.float().gather(1, labels[:, None]).sum()
    grads = torch.autograd.grad(score, maps)[0]
    with torch.no_grad():
        maps, grads = maps.float(), grads.float()
        norm = maps / maps.sum(dim=(2, 3), keepdim=True).clamp(min=1e-8)
        alpha = (norm * grads).sum(dim=(2, 3), keepdim=True)
        cam = F.relu((alpha * maps).sum(dim=1, keepdim=True))
        # as the authors' Grad-CAM code: shift each map to a minimum of 0 (their min-max scaling; the
        # division by the max cannot move a mean + k·std threshold), upsample, shift again
        cam = cam - cam.amin(dim=(2, 3), keepdim=True)
        up = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return up - up.amin(dim=(1, 2), keepdim=True)


def saliency_masks(maps: Any, *, stds: float = THRESHOLD_STDS) -> Any:
    """Boolean masks ``(N, H, W)``: True where a map exceeds ``mean + stds·std`` of its positive values
    (population std, as numpy's ``nanstd`` in the authors' code; a map with no positive value masks
    nothing)."""
    import torch

    flat = maps.flatten(1)
    pos = flat > 0
    n = pos.sum(1).clamp(min=1)
    mean = (flat * pos).sum(1) / n
    var = (((flat - mean[:, None]) ** 2) * pos).sum(1) / n
    thr = torch.where(pos.any(1), mean + stds * var.sqrt(), torch.full_like(mean, float("inf")))
    return maps > thr[:, None, None]


def mask_above_threshold(x: Any, maps: Any, *, stds: float = THRESHOLD_STDS, fill: Any = 0.0) -> tuple[Any, Any]:
    """Set the pixels of ``x`` (N, C, H, W) where :func:`saliency_masks` holds to ``fill`` (a scalar or a
    per-channel tensor: the normalised value of a black pixel). Returns the masked inputs and masks."""
    import torch

    masks = saliency_masks(maps, stds=stds)
    fill_t = torch.as_tensor(fill, dtype=x.dtype, device=x.device).reshape(1, -1, 1, 1)
    return torch.where(masks[:, None], fill_t.expand_as(x[:1]), x), masks


class _Masked:
    """``source`` → the eval-preprocessed image with its saliency mask applied (picklable). Masks are
    stored bit-packed; an image without one (a mixing partner outside the rows) stays as it is."""

    def __init__(self, load: Any, masks: dict[str, np.ndarray], shape: tuple[int, int], fill: Any) -> None:
        self.load, self.masks, self.shape, self.fill = load, masks, shape, fill

    def __call__(self, source: str) -> Any:
        import torch

        x = self.load(source)
        bits = self.masks.get(source)
        if bits is None:
            return x
        h, w = self.shape
        m = torch.from_numpy(np.unpackbits(bits, count=h * w).reshape(h, w).astype(bool))
        return torch.where(m[None], self.fill.reshape(-1, 1, 1), x)


def selective_curve(
    p_erm: np.ndarray, p_mask: np.ndarray, labels: np.ndarray, val_conf: np.ndarray, coverages: tuple[float, ...]
) -> list[dict[str, float]]:
    """Accuracy at each target coverage: the threshold is the validation confidence quantile that
    accepts that share of val; on these rows the prediction is argmax of ``p_erm · p_masked``."""
    prod = p_erm * p_mask
    prod = prod / prod.sum(1, keepdims=True)
    conf, pred = prod.max(1), prod.argmax(1)
    out = []
    for c in coverages:
        thr = float(np.quantile(val_conf, 1.0 - c)) if c < 1.0 else -np.inf
        keep = conf >= thr
        out.append(
            {
                "target_coverage": c,
                "threshold": thr,
                "coverage": float(keep.mean()),
                "accuracy": float((pred[keep] == labels[keep]).mean()) if keep.any() else float("nan"),
            }
        )
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def masktune(request: TrainRequest, cfg: MaskTuneConfig | None = None) -> FinetuneResult:
    """Run MaskTune on the manifest's images; ``extra`` holds the ERM stage's results, the masked
    share of pixels and the selective-classification curve.

    Raises:
        InputDataError: a text dataset. ConfigError: a backbone without convolutional maps.
    """
    import torch

    cfg = cfg or MaskTuneConfig()
    table, manifest, dev = request.table, request.manifest, request.device
    if table.modality != "image":
        raise InputDataError("MaskTune masks image saliency and needs an image dataset", file=table.where)
    tmp = None if request.out is not None else tempfile.mkdtemp(prefix="curate-masktune-")
    root = Path(request.out) if request.out is not None else Path(str(tmp))
    try:
        erm_cfg = FinetuneConfig(**{k: v for k, v in cfg.to_dict().items() if k not in ("threshold_stds", "coverages")})
        captured: dict[str, Any] = {}
        erm = train_network(replace(request, out=root / "erm"), erm_cfg, keep=captured)
        model, settings, inputs = captured["model"], erm.config, captured["inputs"]
        f = manifest.frame
        unique = f.unique(S.SOURCE, keep="first", maintain_order=True)
        sources = unique[S.SOURCE].to_list()
        pre = captured["backbone"].preprocess(settings["image_size"])
        fill = -torch.tensor(pre.mean) / torch.tensor(pre.std)  # a black pixel, normalised
        masks, shares = _masks(model, inputs, settings, sources, unique[S.LABEL].to_numpy(), cfg)
        if not any(shares):
            logger.warning(
                "MaskTune: no saliency map has a pixel above its threshold: the masked epoch is one more ERM "
                "epoch (masked_share 0 in metrics.json)"
            )
        erm_val_ids, test_ids = eval_ids(table)
        p_erm = {s: _softmax(captured["predict"](ids)[0]) for s, ids in (("val", erm_val_ids), ("test", test_ids))}
        # the masked epoch: the last ERM checkpoint (model, optimiser, schedule) + one epoch
        ckpt = root / "masked" / CHECKPOINTS
        ckpt.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / "erm" / CHECKPOINTS / CHECKPOINT, ckpt / CHECKPOINT)
        tcfg = erm_cfg.train_config(settings)
        masked_load = _Masked(inputs.eval_load, masks, (settings["image_size"], settings["image_size"]), fill)
        data = ManifestDataset(manifest, masked_load, sources=inputs.sources, mix="pair")  # no augmentation
        batches = LoaderBatches(
            data, batch_size=tcfg.batch_size, seed=cfg.seed, weights=f[S.WEIGHT].to_numpy(),
            num_workers=settings["num_workers"], collate=inputs.collate, pin_memory=dev.startswith("cuda"),
        )  # fmt: skip
        model.keep_maps = False
        fit(
            ERM(model), batches, replace(tcfg, epochs=tcfg.epochs + 1), checkpoint_dir=ckpt,
            desc="MaskTune: masked epoch", device=dev, channels_last=settings["channels_last"],
        )  # fmt: skip
        p_mask = {s: _softmax(captured["predict"](ids)[0]) for s, ids in (("val", erm_val_ids), ("test", test_ids))}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    preds = {s: prediction_frame(ids, p_mask[s].argmax(1)) for s, ids in (("val", erm_val_ids), ("test", test_ids))}
    val = evaluate_predictions(table, preds["val"], split="val", pseudo_groups=request.pseudo_groups)
    test = evaluate_predictions(table, preds["test"], split="test", pseudo_groups=request.pseudo_groups)
    prod_v = p_erm["val"] * p_mask["val"]
    val_conf = (prod_v / prod_v.sum(1, keepdims=True)).max(1)
    labels_t = _labels(table, test_ids)
    extra = {
        "erm_val": erm.val.to_dict(),
        "erm_test": erm.test.to_dict(),
        "erm_best_epoch": erm.best_epoch,
        "masked_share": float(np.mean(shares)),
        "selective": selective_curve(p_erm["test"], p_mask["test"], labels_t, val_conf, cfg.coverages),
        "selection": selection_score(request, preds["val"]),
    }
    import polars as pl

    config = settings | {"method": "masktune", "threshold_stds": cfg.threshold_stds}
    return FinetuneResult(val, test, erm.best_epoch, pl.concat([preds["val"], preds["test"]]), config, extra)


def _labels(table: Any, ids: list[str]) -> np.ndarray:
    import polars as pl

    frame = pl.DataFrame({S.SAMPLE_ID: ids}).join(
        table.frame.select(S.SAMPLE_ID, S.LABEL), on=S.SAMPLE_ID, how="left", maintain_order="left"
    )
    return frame[S.LABEL].to_numpy()


def _masks(
    model: Any, inputs: NetworkInputs, settings: dict[str, Any], sources: list[str], labels: np.ndarray, cfg: Any
) -> tuple[dict[str, np.ndarray], list[float]]:
    """Per source, the bit-packed boolean mask of its image under the best ERM model; and each mask's share."""
    import torch
    from torch.utils.data import DataLoader

    from curate.train import to_device

    rows: Any = _Rows(sources, inputs.eval_load)
    loader: Any = DataLoader(rows, batch_size=settings["batch_size"], collate_fn=inputs.collate)
    model.keep_maps = True
    masks: dict[str, np.ndarray] = {}
    shares: list[float] = []
    y_all = torch.as_tensor(np.array(labels), dtype=torch.long)
    for batch in loader:
        b = to_device(batch, settings["device"], channels_last=settings["channels_last"])
        idx = batch["index"]
        maps = xgradcam(model, b["x"], y_all[idx].to(settings["device"]))
        m = saliency_masks(maps, stds=cfg.threshold_stds).cpu().numpy()
        for k, i in enumerate(idx.tolist()):
            masks[sources[i]] = np.packbits(m[k].reshape(-1))
            shares.append(float(m[k].mean()))
    model.keep_maps = False
    return masks, shares


FINETUNE_METHODS.add(
    "masktune",
    Trainer(MaskTuneConfig, masktune),
    group_labels="none",
    description="MaskTune (Taghanaki et al. 2022): xGradCAM masks of the ERM network, one masked epoch",
)
