"""The one protocol every trainer answers: a :class:`TrainRequest` and a config in, a
:class:`FinetuneResult` out (validation and test results, predictions; checkpoints and dynamics in
the request's run folder), registered by method name in :data:`FINETUNE_METHODS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from curate._core.registry import Registry
from curate.data.table import SampleTable
from curate.embed import EmbeddingTable
from curate.errors import ConfigError
from curate.eval import EvalResult, evaluate_predictions
from curate.manifest import Manifest, check_against_dataset

SELECT_ON = ("val-groups", "pseudo-groups", "classes", "mean")


@dataclass(frozen=True)
class TrainRequest:
    """What a trainer trains on and where.

    Attributes:
        table: the dataset (val and test splits are scored).
        manifest: the training rows (weights, mixing pairs).
        embeddings: the workspace's frozen embeddings (heads and the contrastive pair need them).
        pseudo_groups: ``[sample_id, pseudo_group]``: with ``select_on="pseudo-groups"`` it must
            cover the val rows (inferred without labels); otherwise it is the fallback when val has
            no groups (uncovered rows are scored by class).
        device: a resolved torch device; every stage of the trainer runs there.
        out: the run folder (checkpoints, dynamics; None: in memory, nothing resumable).
        hooks: extra training hooks (e.g. a benchmark's timer).
        dynamics_dir: where the dynamics shards go (default ``out/dynamics``).
        dynamics_run: the run number the shards are written as (``run=R``).
        select_on: which groups model selection takes worst-group accuracy over on val:
            ``val-groups`` (the true ones when the dataset has them, else classes),
            ``pseudo-groups`` (``pseudo_groups`` of the val rows), ``classes`` (worst-class
            accuracy: no group labels anywhere) or ``mean`` (mean accuracy first: plain ERM's
            model selection, no groups).
    """

    table: SampleTable
    manifest: Manifest
    embeddings: EmbeddingTable | None = None
    pseudo_groups: pl.DataFrame | None = None
    device: str = "cpu"
    out: Path | None = None
    hooks: tuple[Any, ...] = ()
    dynamics_dir: Path | None = None
    dynamics_run: int = 0
    select_on: str = "val-groups"

    def __post_init__(self) -> None:
        if self.select_on not in SELECT_ON:
            raise ConfigError.bad_param("TrainRequest()", "select_on", f"one of {SELECT_ON}", self.select_on)
        check_against_dataset(self.manifest, self.table.frame)  # ids known, labels not contradicted

    def score_val(self, predictions: pl.DataFrame) -> EvalResult:
        """Validation result of ``[sample_id, prediction]`` over the groups ``select_on`` names (model selection)."""
        if self.select_on == "val-groups":
            return evaluate_predictions(self.table, predictions, split="val", pseudo_groups=self.pseudo_groups)
        pseudo = self.pseudo_groups if self.select_on == "pseudo-groups" else None
        return evaluate_predictions(self.table.without_groups(), predictions, split="val", pseudo_groups=pseudo)

    def dynamics_folder(self) -> Path | None:
        """Where this training's dynamics go (None: not recorded)."""
        if self.dynamics_dir is not None:
            return Path(self.dynamics_dir)
        return None if self.out is None else Path(self.out) / "dynamics"


@dataclass(frozen=True)
class FinetuneResult:
    """The selected model's metrics and predictions (``[sample_id, prediction]`` for val and test),
    the settings it used, and method-specific outputs in ``extra``."""

    val: EvalResult
    test: EvalResult
    best_epoch: int | None
    predictions: pl.DataFrame
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Trainer:
    """A registered method: its config class and ``train(request, config) -> FinetuneResult``."""

    config: type
    train: Callable[[TrainRequest, Any], FinetuneResult]


FINETUNE_METHODS: Registry[Trainer] = Registry("finetune method")


def train(method: str, request: TrainRequest, config: Any = None) -> FinetuneResult:
    """Run finetune method ``method`` (see ``curate list finetune-methods``) on ``request``.

    Raises:
        UnknownNameError: unknown method. ConfigError: a config of another method's class.
    """
    trainer = FINETUNE_METHODS.get(method)
    cfg = config if config is not None else trainer.config()
    if not isinstance(cfg, trainer.config):
        raise ConfigError(f"finetune method {method!r} takes a {trainer.config.__name__}, got {type(cfg).__name__}")
    return trainer.train(request, cfg)
