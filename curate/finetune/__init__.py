"""Layer 5: train on a manifest (ERM, GroupDRO, DFR, MaskTune, the multi-modal contrastive method) and evaluate."""

from curate.finetune.contrastive import ContrastiveConfig, clip_pair, contrastive_loss, train_contrastive
from curate.finetune.heads import (
    BACKBONES,
    METHODS,
    FinetuneConfig,
    FinetuneResult,
    GroupDRO,
    manifest_inputs,
    train_head,
)
from curate.finetune.masktune import MaskTuneConfig, MaskTuneResult, mask_above_threshold, masktune, xgradcam

__all__ = [
    "BACKBONES",
    "METHODS",
    "ContrastiveConfig",
    "FinetuneConfig",
    "FinetuneResult",
    "GroupDRO",
    "MaskTuneConfig",
    "MaskTuneResult",
    "clip_pair",
    "contrastive_loss",
    "manifest_inputs",
    "mask_above_threshold",
    "masktune",
    "train_contrastive",
    "train_head",
    "xgradcam",
]
