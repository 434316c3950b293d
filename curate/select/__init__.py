"""Layer 5: turn scores and groups into manifests (prune, mix, balance, jtt, spare, keep-all, oracle)."""

from curate.select._base import SELECTORS, group_weights
from curate.select.methods import (
    BalanceConfig,
    JTTConfig,
    MixConfig,
    SelectConfig,
    effective_group_shares,
)
from curate.select.prune import PruneConfig

__all__ = [
    "SELECTORS",
    "BalanceConfig",
    "JTTConfig",
    "MixConfig",
    "PruneConfig",
    "SelectConfig",
    "effective_group_shares",
    "group_weights",
]
