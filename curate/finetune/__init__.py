"""Layer 5: train on a manifest and evaluate: ERM, GroupDRO and DFR on a head or the fine-tuned
network, MaskTune, and the multi-modal contrastive method, each answering one protocol
(:func:`train` with a :class:`TrainRequest`; registry :data:`FINETUNE_METHODS`)."""

from curate.finetune._base import FINETUNE_METHODS, FinetuneResult, Trainer, TrainRequest, train
from curate.finetune.classifier import train_classifier
from curate.finetune.config import METHODS, FinetuneConfig
from curate.finetune.contrastive import (
    ContrastiveConfig,
    clip_pair,
    contrastive_loss,
    fit_contrastive,
    train_contrastive,
)
from curate.finetune.dispel import DispelConfig, fit_dispel, mixed_set
from curate.finetune.groupdro import GroupDRO
from curate.finetune.heads import manifest_inputs, train_head
from curate.finetune.masktune import MaskTuneConfig, mask_above_threshold, masktune, saliency_masks, xgradcam
from curate.finetune.network import train_network

__all__ = [
    "FINETUNE_METHODS",
    "METHODS",
    "ContrastiveConfig",
    "DispelConfig",
    "FinetuneConfig",
    "FinetuneResult",
    "GroupDRO",
    "MaskTuneConfig",
    "TrainRequest",
    "Trainer",
    "clip_pair",
    "contrastive_loss",
    "fit_contrastive",
    "fit_dispel",
    "manifest_inputs",
    "mask_above_threshold",
    "masktune",
    "mixed_set",
    "saliency_masks",
    "train",
    "train_classifier",
    "train_contrastive",
    "train_head",
    "train_network",
    "xgradcam",
]
