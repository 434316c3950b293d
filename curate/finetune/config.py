"""``FinetuneConfig``: how ERM, GroupDRO and DFR train on a manifest, and where each default comes from.

Two backbones: ``head`` (a linear or MLP head on the frozen embeddings of the workspace: fast, the
CPU default of ``curate run``) and a *network* (any :data:`curate.embed.BACKBONES` spec, e.g.
``efficientnet-lite0``: the pretrained network itself fine-tuned, as every method's paper does).
Fields left at ``None`` (or ``"auto"``) take the defaults below for the backbone, the data's
modality and the device; :meth:`FinetuneConfig.settings` returns the concrete values used, and
they are what a run records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from curate.errors import ConfigError
from curate.train import HEAD_TRAINING, HEADS, PRECISIONS, TrainConfig
from curate.train.loop import OPTIMIZERS, SCHEDULERS

METHODS = ("erm", "groupdro", "dfr", "dispel-val")
HEAD = "head"

# A head on frozen embeddings: curate.train.HEAD_TRAINING (the proxy head's settings too).
# Fine-tuning a pretrained network, the papers' settings:
# images — Sagawa et al. (GroupDRO), JTT and the data-pruning authors' CelebA run train an ImageNet
#   ResNet-50 with SGD, momentum 0.9, lr 1e-3, weight decay 1e-4, batch 128, constant rate, no
#   augmentation; 25 epochs is the data-pruning run (its EL2N is read at epoch index 9, 40%).
# text — WILDS CivilComments / JTT's BERT: AdamW, lr 1e-5, weight decay 0.01 (not on biases and
#   LayerNorm weights), batch 16, 5 epochs, linearly decaying rate, gradient norm clipped at 1.
NETWORK_DEFAULTS: dict[str, dict[str, Any]] = {
    "image": {"epochs": 25, "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128, "optimizer": "sgd",
              "scheduler": "constant", "max_grad_norm": None},
    "text": {"epochs": 5, "lr": 1e-5, "weight_decay": 0.01, "batch_size": 16, "optimizer": "adamw",
             "scheduler": "linear", "max_grad_norm": 1.0},
}  # fmt: skip
# A randomly initialised network (small-cnn) is outside the papers' settings: AdamW as for heads.
SCRATCH_DEFAULTS: dict[str, Any] = {**HEAD_TRAINING}
# On a CPU the papers' settings take hours per epoch (EfficientNet-Lite0 at 224 px: ~5 images/s
# per 2 threads). Measured on a 2-core VM (benchmarks/cpu_settings.py; README): at 96 px with every
# layer trained in channels-last, fine-tuning runs at ~150 images/s, ~1.2 minutes per epoch for
# 10,000 images. The CPU budget is a number of optimisation steps, not of epochs: SGD at the papers'
# lr needs steps, and 8 epochs of a 1,000-image dataset are 128 steps (ERM then barely leaves
# chance). CPU_STEPS steps (8 epochs of 10,000 images at batch 64), at least 8 and at most
# CPU_MAX_EPOCHS epochs, keep any run of `curate run` near a quarter of an hour.
CPU_NETWORK: dict[str, dict[str, Any]] = {
    "image": {"image_size": 96, "batch_size": 64},
    "text": {"max_length": 128},
}
CPU_STEPS = 1200
CPU_MIN_EPOCHS, CPU_MAX_EPOCHS = 8, 100
EVAL_FRACTION = 0.4  # the eval-mode pass for EL2N: 40% into training (the data-pruning authors' epoch 9 of 25)


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig:
    """Training settings; ``None``/``"auto"`` fields take the documented defaults (see module docstring).

    Attributes:
        method: ``erm``, ``groupdro``, ``dfr`` or ``dispel-val`` (ERM, then DISPEL's last layer on the
            model's features with the group-labelled set from the true val groups: DFR's protocol).
        backbone: ``head`` or a network spec (``efficientnet-lite0``, ``minilm``, ``torchvision:...``,
            ``hf-text:...``, ``clip:...``, ``small-cnn``/``cnn``).
        head: ``linear`` or ``mlp`` (backbone ``head`` only); ``hidden``: the MLP's width.
        train_from: network stage from which layers train (``all``; ``head`` = a linear probe).
        image_size: network input crop in pixels (the pretrained preprocessing rescaled).
        max_length: text truncation in tokens.
        augment: random resized crops (scale 0.7–1) and horizontal flips (Sagawa et al.'s
            augmentation; off by default, as in their Waterbirds/CelebA runs).
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32``, ``bf16``, ``fp16``.
        num_workers: DataLoader workers decoding images (None: up to 8 on CUDA; on a CPU a quarter of
            the cores beyond 4, else 0: on 2 cores a worker competes with the two compute threads
            and a fine-tuning epoch took 1.8× longer with one than with none, measured).
        eval_fraction: where in training the eval-mode dynamics pass runs: a network's recording, and on
            a head run the proxy head's (which trains with these head settings).
        dro_eta: GroupDRO's step size; ``groups``: GroupDRO's groups, ``true`` or ``pseudo``.
    """

    method: str = "erm"
    backbone: str = HEAD
    head: str = "linear"
    hidden: int = 256
    epochs: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    scheduler: str | None = None
    max_grad_norm: float | None = None
    train_from: str = "all"
    image_size: int | None = None
    max_length: int | None = None
    augment: bool = False
    precision: str = "auto"
    num_workers: int | None = None
    eval_fraction: float = EVAL_FRACTION
    dro_eta: float = 0.01
    groups: str = "true"
    seed: int = 0

    def __post_init__(self) -> None:
        where = "FinetuneConfig()"
        if self.method not in METHODS:
            raise ConfigError.bad_param(where, "method", f"one of {METHODS}", self.method)
        if self.head not in HEADS:
            raise ConfigError.bad_param(where, "head", f"one of {HEADS}", self.head)
        if self.groups not in ("true", "pseudo"):
            raise ConfigError.bad_param(where, "groups", "'true' or 'pseudo'", self.groups)
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise ConfigError.bad_param(where, "optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise ConfigError.bad_param(where, "scheduler", f"one of {SCHEDULERS}", self.scheduler)
        if self.precision not in ("auto", *PRECISIONS):
            raise ConfigError.bad_param(where, "precision", f"one of auto, {', '.join(PRECISIONS)}", self.precision)
        for name in ("epochs", "batch_size", "image_size", "max_length"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError.bad_param(where, name, "an integer >= 1 (or None: the default)", v)
        if self.num_workers is not None and self.num_workers < 0:
            raise ConfigError.bad_param(where, "num_workers", "an integer >= 0", self.num_workers)
        if not 0.0 < self.eval_fraction <= 1.0:
            raise ConfigError.bad_param(where, "eval_fraction", "a float in (0, 1]", self.eval_fraction)

    @property
    def is_network(self) -> bool:
        """Whether a network is fine-tuned (rather than a head on frozen embeddings)."""
        return self.backbone != HEAD

    def settings(
        self, *, modality: str, device: str, pretrained: bool = True, n_rows: int | None = None
    ) -> dict[str, Any]:
        """Every field with its default filled in for this ``modality``, resolved ``device`` and number
        of training rows (the CPU step budget of an image network)."""
        cuda = device.startswith("cuda")
        if not self.is_network:
            base = dict(HEAD_TRAINING)
        elif not pretrained:
            base = dict(SCRATCH_DEFAULTS)
        else:
            base = dict(NETWORK_DEFAULTS[modality]) | ({} if cuda else CPU_NETWORK[modality])
            if not cuda and modality == "image":
                del base["epochs"]  # the CPU step budget below
        out = asdict(self)
        for f in fields(self):
            if out[f.name] is None and f.name in base:
                out[f.name] = base[f.name]
        if out["epochs"] is None:  # an image network on a CPU: a budget of steps
            steps = -(-(n_rows or 10_000) // out["batch_size"])
            out["epochs"] = min(CPU_MAX_EPOCHS, max(CPU_MIN_EPOCHS, -(-CPU_STEPS // steps)))
        if out["precision"] == "auto":
            out["precision"] = "bf16" if cuda and self.is_network else "fp32"
        if out["num_workers"] is None:
            import os

            cores = os.cpu_count() or 1
            out["num_workers"] = min(8, cores - 1) if cuda else (cores // 4 if cores > 4 else 0)
        out["device"] = device
        return out

    def train_config(self, settings: dict[str, Any] | None = None) -> TrainConfig:
        """The loop settings (the best epoch is picked by a hook on validation WGA)."""
        s = settings or self.settings(modality="image", device="cpu")
        return TrainConfig(
            epochs=s["epochs"],
            lr=s["lr"],
            weight_decay=s["weight_decay"],
            batch_size=s["batch_size"],
            optimizer=s["optimizer"],
            scheduler=s["scheduler"],
            max_grad_norm=s["max_grad_norm"],
            precision=s["precision"],
            decay_matrices_only=s["optimizer"] == "adamw" and self.is_network,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (provenance)."""
        return asdict(self)
