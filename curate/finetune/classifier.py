"""ERM, GroupDRO, DFR and DISPEL^val on a manifest, on either backbone: a head on frozen embeddings or the
pretrained network itself (see :class:`~curate.finetune.config.FinetuneConfig`). JTT's second stage
is ERM on a ``jtt`` manifest (its error set upweighted)."""

from __future__ import annotations

from dataclasses import replace

from curate.finetune._base import FINETUNE_METHODS, FinetuneResult, Trainer, TrainRequest
from curate.finetune.config import FinetuneConfig
from curate.finetune.heads import train_head
from curate.finetune.network import train_network


def train_classifier(request: TrainRequest, cfg: FinetuneConfig) -> FinetuneResult:
    """Train ``cfg.method`` on ``cfg.backbone`` (``head`` or a network spec)."""
    return train_network(request, cfg) if cfg.is_network else train_head(request, cfg)


def _as(method: str) -> Trainer:
    return Trainer(FinetuneConfig, lambda request, cfg: train_classifier(request, replace(cfg, method=method)))


FINETUNE_METHODS.add("erm", _as("erm"), group_labels="none", description="weighted cross-entropy on the manifest")
FINETUNE_METHODS.add(
    "groupdro",
    _as("groupdro"),
    group_labels="train groups (true or pseudo)",
    description="GroupDRO (Sagawa et al. 2020), online group weights",
)
FINETUNE_METHODS.add(
    "dfr",
    _as("dfr"),
    group_labels="true val groups",
    description="DFR (Kirichenko et al. 2023): ERM, then the last layer refit (l1) on group-balanced val",
)
FINETUNE_METHODS.add(
    "dispel-val",
    _as("dispel-val"),
    group_labels="true val groups",
    description="DISPEL's last layer (l1 heads on mixed val features) on the ERM model, as DFR: any backbone",
)
