"""Layer 5: train on a manifest (ERM, GroupDRO, DFR heads on frozen embeddings) and evaluate."""

from curate.finetune.heads import METHODS, FinetuneConfig, FinetuneResult, GroupDRO, manifest_inputs, train_head

__all__ = ["METHODS", "FinetuneConfig", "FinetuneResult", "GroupDRO", "manifest_inputs", "train_head"]
