"""The multi-modal contrastive method with its input tower fine-tuned (``ContrastiveConfig.backbone`` a
network): the tower's features go through the trainable image projection of the CLIP-style pair,
the prompt tower stays frozen, and training runs through the network trainer's data path (manifest
weights by a weighted sampler, mixing pairs inside the model, decoding in workers, channels-last,
mixed precision on CUDA, the CPU step budget) and the one loop (checkpoints, dynamics, selection).
An offline pair (not a CLIPModel) first aligns its projections with the CLIP term, the tower frozen.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.seed import derive_seed
from curate.embed import create_backbone
from curate.eval import evaluate_predictions
from curate.finetune._base import FinetuneResult, TrainRequest
from curate.finetune._loop import claim_run, eval_ids, fit_selected, prediction_frame, selection_score, unique_rows
from curate.finetune.config import FinetuneConfig
from curate.finetune.contrastive import Contrastive, ContrastiveConfig, clip_pair
from curate.finetune.contrastive_prompts import attributes_of, prompt_embeddings
from curate.finetune.network import NetworkInputs, build_network, network_settings, predictor, run_key
from curate.manifest import ManifestDataset
from curate.train import LoaderBatches, fit


def _pair_model(net: Any, pair: Any) -> Any:
    """The input tower's features through the pair: ``forward(x[, mix]) -> (logits, features)``."""
    from torch import nn

    class TowerPair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.pair = net, pair

        def forward(self, x: Any, mix_x: Any = None, mix_lambda: Any = None) -> Any:
            return self.pair(self.net.features(x, mix_x, mix_lambda))

        def prompts(self) -> Any:
            return self.pair.prompts()

        def scale(self) -> Any:
            return self.pair.scale()

    return TowerPair()


class _Rows:
    """Manifest rows with their sample's position (the recorder's index) and attribute."""

    def __init__(self, data: ManifestDataset, unique_index: np.ndarray, attributes: np.ndarray | None) -> None:
        self.data, self.unique_index, self.attributes = data, unique_index, attributes

    def set_epoch(self, epoch: int) -> None:
        self.data.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.get(i, i)

    def get(self, i: int, draw: int) -> dict[str, Any]:
        item = self.data.get(i, draw)
        item["index"] = int(self.unique_index[i])
        if self.attributes is not None:
            item["attribute"] = int(self.attributes[i])
        return item


def fit_contrastive_network(
    request: TrainRequest, cfg: ContrastiveConfig, encode_text: Any, *, identity: bool
) -> FinetuneResult:
    """Fine-tune the input tower and the projections on the manifest's rows with the method's loss."""
    import torch

    table, manifest, dev = request.table, request.manifest, request.device
    class_text, spur_text, spurious, templates = prompt_embeddings(table, cfg, encode_text)
    backbone = create_backbone(cfg.backbone)
    backbone.check_modality(table.modality)
    tower_cfg = FinetuneConfig(
        backbone=cfg.backbone, train_from=cfg.train_from, image_size=cfg.image_size, epochs=cfg.epochs,
        lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, optimizer=cfg.optimizer, seed=cfg.seed,
    )  # fmt: skip
    settings = network_settings(tower_cfg, backbone, table, dev, len(manifest))
    n_c = class_text.shape[1]
    net = build_network(backbone, n_c, table.modality, settings, cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "contrastive-init"))
        pair = clip_pair(net.head.in_features, class_text, spur_text, cfg.proj_dim, identity=identity)
    net.head.requires_grad_(False)  # the pair predicts from the prompts; the classifier head is unused
    model = _pair_model(net, pair)
    f = manifest.frame
    inputs = NetworkInputs.create(backbone, table, settings)
    uniq, uniq_labels, row_index = unique_rows(f)
    attrs = attributes_of(table, f, len(spurious)) if cfg.spurious_class_weight > 0 else None
    seed = cfg.seed if settings["augment"] else None
    data = ManifestDataset(manifest, inputs.train_load, sources=inputs.sources, seed=seed, mix="pair")
    batches = LoaderBatches(
        _Rows(data, row_index, attrs), batch_size=settings["batch_size"], seed=cfg.seed,
        weights=f[S.WEIGHT].to_numpy(), num_workers=settings["num_workers"], collate=inputs.collate,
        pin_memory=dev.startswith("cuda"),
    )  # fmt: skip
    out = None if request.out is None else Path(request.out)
    if out is not None:
        claim_run(out, run_key(manifest, table, settings, cfg.to_dict(), class_text, spur_text, identity))
    tcfg = tower_cfg.train_config(settings)
    if not identity and cfg.align_epochs > 0:
        flags = [p.requires_grad for p in net.parameters()]
        net.requires_grad_(False)
        align = replace(tcfg, epochs=cfg.align_epochs, lr=cfg.align_lr, optimizer="adamw", scheduler="constant")
        fit(
            Contrastive(model, cfg, align_only=True), batches, align,
            checkpoint_dir=None if out is None else out / "align", desc="contrastive: align projections",
            device=dev, channels_last=settings["channels_last"],
        )  # fmt: skip
        for p, flag in zip(net.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    predict = predictor(model, inputs, settings)
    val_ids, test_ids = eval_ids(table)
    best = fit_selected(
        Contrastive(model, cfg), batches, tcfg,
        lambda: request.score_val(prediction_frame(val_ids, predict(val_ids)[0].argmax(1))),
        out=out, record=(uniq, uniq_labels, n_c), desc=f"contrastive ({backbone.spec})", device=dev,
        hooks=request.hooks, channels_last=settings["channels_last"],
        dynamics=(request.dynamics_dir, request.dynamics_run), select_on=request.select_on,
    )  # fmt: skip
    pv = prediction_frame(val_ids, predict(val_ids)[0].argmax(1))
    pt = prediction_frame(test_ids, predict(test_ids)[0].argmax(1))
    val = evaluate_predictions(table, pv, split="val", pseudo_groups=request.pseudo_groups)
    test = evaluate_predictions(table, pt, split="test", pseudo_groups=request.pseudo_groups)
    config = (
        settings | cfg.to_dict() | {"method": "contrastive", "spurious": list(spurious), "templates": list(templates)}
    )
    extra = {"selection": selection_score(request, pv)}
    return FinetuneResult(val, test, best, pl.concat([pv, pt]), config, extra)
