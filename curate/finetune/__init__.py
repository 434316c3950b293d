"""Layer 5: train on a manifest (ERM, GroupDRO, DFR heads on frozen embeddings) and evaluate."""

from curate.finetune.heads import METHODS, FinetuneConfig, FinetuneResult, GroupDRO, manifest_inputs, train_head
from curate.finetune.masktune import MaskTuneConfig, MaskTuneResult, mask_above_threshold, masktune, xgradcam

__all__ = [
    "METHODS",
    "FinetuneConfig",
    "FinetuneResult",
    "GroupDRO",
    "MaskTuneConfig",
    "MaskTuneResult",
    "manifest_inputs",
    "mask_above_threshold",
    "masktune",
    "train_head",
    "xgradcam",
]
