"""Multi-modal contrastive fine-tuning with spurious attributes named in language (Yang, Nushi,
Palangi & Mirzasoleiman, ICML 2023, "Mitigating Spurious Correlations in Multi-modal Models during
Fine-tuning").

The model is a CLIP-style pair: the frozen input tower's embeddings (the workspace's: images, or
texts) and a frozen text tower for prompts, each followed by a trainable projection into a shared
space — the authors' recommended setting for Waterbirds (``--freeze_vision --freeze_language
--train_projection``). With a real ``CLIPModel`` (``clip:<path>`` embeddings, same model for the
prompts) the projections start as the identity, since both towers are already aligned; otherwise
(EfficientNet-Lite0 + MiniLM) they are first aligned on the class prompts for ``align_epochs``
epochs with the prompt cross-entropy alone.

Per batch of ``B`` samples with label ``y_i``, normalised image features ``f_i``, class-prompt
embeddings ``t_{k,c}`` (template ``k``, class ``c``; ``t̄_c`` their mean over templates) and
attribute-prompt embeddings ``s_{k,a}`` (``sim`` = cosine; ``mean_j`` over all columns, a masked
term counting zeros, as in their code; the terms and weights are their ``losses.py``):

* ``classification``: ``CE(τ·f_i·t̄ᵀ, y_i)`` over every class (their class loss; off in their command);
* ``clip``: the symmetric in-batch CLIP loss ``½[CE(L, I) + CE(Lᵀ, I)]``, ``L_ij = τ·f_i·t̄_{y_j}``;
* ``image``: ``−w₊·mean_j sim(f_i,f_j)[y_j=y_i] + w₋·mean_j sim(f_i,f_j)[y_j≠y_i]``;
* ``crossmodal``: the same form between ``f_i`` and every class prompt ``t_{k,c}``;
* ``language``: the same form among the class prompts, for the prompts of ``y_i`` (template mean);
* ``spurious``: ``w₋·(mean_{k,a} |sim(f_i, s_{k,a})| + mean_k mean_{k',a} |sim(t_{k,y_i}, s_{k',a})|)``,
  the image features and class prompts driven orthogonal to every named attribute;
* ``spurious_class``: ``CE(τ·f_i·Sᵀ, a_i)``, ``S`` the template-mean attribute prompts over their
  Frobenius norm (as in their code), ``a_i`` the sample's attribute: the model must represent the
  attribute in the direction of its words, apart from the class prompts. It needs each train
  sample's attribute (the dataset's attribute column ``a``): true attribute labels.

Loss = the weighted sum; the defaults are their Waterbirds command: classification 0, clip 1,
image 1, language 1, crossmodal 0, spurious 0, spurious-class 1, ``w₊ = w₋ = 1``, SGD with momentum
0.9, lr 1e-4, weight decay 1e-5, batch 128. Rows are averaged with the manifest's weights. Their
prompt rows are template-major but labelled class-major (their bug); curate labels them
consistently. Prediction: the class prompt with the highest similarity; the epoch is selected on
validation worst-group accuracy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.cache import fingerprint
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError
from curate.eval import evaluate_predictions
from curate.finetune._base import FINETUNE_METHODS, FinetuneResult, Trainer, TrainRequest
from curate.finetune._loop import claim_run, eval_ids, fit_selected, prediction_frame, selection_score
from curate.finetune.contrastive_loss import TERMS, contrastive_loss, normalize
from curate.finetune.contrastive_prompts import attributes_of, prompt_embeddings
from curate.finetune.heads import manifest_inputs
from curate.manifest import Manifest
from curate.train import HEAD_TRAINING, TensorBatches, TrainConfig, fit, forward


@dataclass(frozen=True, kw_only=True)
class ContrastiveConfig:
    """Settings; ``spurious``: the attribute values in words (default: the dataset's attribute names);
    ``text_encoder``: the prompt tower (default: the same ``clip:`` model when the embeddings are
    CLIP's, whose projections then start aligned, else ``minilm``). ``backbone``: ``head`` trains the
    projections over the frozen towers (their ``--freeze_vision --freeze_language
    --train_projection``); a network spec (``efficientnet-lite0``, ``clip:<model>``, ...) fine-tunes
    that input tower too, from ``train_from`` on, at ``image_size`` (the network trainer's data path
    and CPU defaults); the prompt tower stays frozen."""

    spurious: tuple[str, ...] = ()
    text_encoder: str | None = None
    backbone: str = "head"
    train_from: str = "all"
    image_size: int | None = None
    templates: tuple[str, ...] | None = None
    classification_weight: float = 0.0
    clip_weight: float = 1.0
    image_weight: float = 1.0
    crossmodal_weight: float = 0.0
    language_weight: float = 1.0
    spurious_weight: float = 0.0
    spurious_class_weight: float = 1.0
    pos_weight: float = 1.0
    neg_weight: float = 1.0
    proj_dim: int = 256
    align_epochs: int = 5
    align_lr: float = 1e-3
    epochs: int | None = None  # projections over frozen towers: 30; a fine-tuned tower: the network trainer's
    optimizer: str = "sgd"
    lr: float = 1e-4
    weight_decay: float = 1e-5
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "proj_dim", "batch_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError.bad_param("ContrastiveConfig()", name, "an integer >= 1", getattr(self, name))
        if self.templates is not None and not all("{}" in t for t in self.templates):
            raise ConfigError.bad_param("ContrastiveConfig()", "templates", "strings with a '{}'", self.templates)

    def weights(self) -> dict[str, float]:
        """The weight of each loss term."""
        return {t: float(getattr(self, f"{t}_weight")) for t in TERMS}

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (provenance)."""
        return asdict(self)


def clip_pair(
    in_dim: int, class_text: np.ndarray, spurious_text: np.ndarray | None, proj_dim: int, *, identity: bool
) -> Any:
    """The trainable part over frozen tower outputs: two projections and a logit scale.

    ``forward(x)`` returns ``(logits, normalised image features)``; ``prompts()`` the projected
    ``(T, C, d)`` class prompts and ``(T, A, d)`` attribute prompts. ``class_text``: ``(T, C, d_t)``
    frozen prompt embeddings; ``identity``: start both projections as the identity (towers already
    aligned, e.g. a CLIPModel; needs equal widths).
    """
    import torch
    from torch import nn

    d_t = class_text.shape[-1]
    if identity and in_dim != d_t:
        raise ConfigError(f"identity projections need equal tower widths, got {in_dim} and {d_t}")
    width = in_dim if identity else proj_dim

    class Pair(nn.Module):
        class_text: torch.Tensor
        spurious_text: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.image_proj = nn.Linear(in_dim, width, bias=False)
            self.text_proj = nn.Linear(d_t, width, bias=False)
            if identity:
                with torch.no_grad():
                    self.image_proj.weight.copy_(torch.eye(width))
                    self.text_proj.weight.copy_(torch.eye(width))
            self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0 if identity else 1 / 0.07)))  # CLIP: 100
            self.register_buffer("class_text", torch.as_tensor(class_text, dtype=torch.float32))
            spur = np.zeros((0, 0, d_t), np.float32) if spurious_text is None else spurious_text
            self.register_buffer("spurious_text", torch.as_tensor(spur, dtype=torch.float32))

        def prompts(self) -> tuple[torch.Tensor, torch.Tensor | None]:
            c = normalize(self.text_proj(self.class_text))
            s = normalize(self.text_proj(self.spurious_text)) if self.spurious_text.numel() else None
            return c, s

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            f = normalize(self.image_proj(x))
            c, _ = self.prompts()
            return self.scale() * f @ normalize(c.mean(0)).T, f

        def scale(self) -> torch.Tensor:
            """The logit scale τ (at most 100, as CLIP clamps it)."""
            return self.logit_scale.clamp(max=math.log(100)).exp()

    return Pair()


class Contrastive:
    """Training step of the method (the loop's method protocol)."""

    def __init__(self, model: Any, cfg: ContrastiveConfig, *, align_only: bool = False) -> None:
        self.model = model
        self.cfg = cfg
        self.weights = {t: float(t == "clip") for t in TERMS} if align_only else cfg.weights()

    def step(self, batch: dict[str, Any]) -> dict[str, Any]:
        logits, feats = forward(self.model, batch)
        prompts, spur = self.model.prompts()
        loss, _ = contrastive_loss(
            feats,
            batch["label"],
            logits,
            prompts,
            spur,
            self.weights,
            attributes=batch.get("attribute"),
            scale=self.model.scale(),
            pos_weight=self.cfg.pos_weight,
            neg_weight=self.cfg.neg_weight,
        )
        w = batch.get("weight")
        total = loss.mean() if w is None else (loss * w).sum() / w.sum()
        return {"loss": total, "logits": logits, "features": feats}


def train_contrastive(request: TrainRequest, cfg: ContrastiveConfig) -> FinetuneResult:
    """The method on a request: the input tower is the one that made ``request.embeddings``, the
    prompt tower ``cfg.text_encoder``, both on ``request.device``.

    Raises:
        InputDataError: no embeddings, no class names, or no spurious attributes in words.
        ConfigError: the prompt tower cannot embed text.
    """
    import torch

    from curate.embed import create_encoder

    emb = request.embeddings
    if emb is None and cfg.backbone == "head":
        raise InputDataError(
            "the contrastive method trains on the workspace's embeddings", file=request.table.where,
            fix="run `curate embed` first, or fine-tune the input tower (backbone = a network)",
        )  # fmt: skip
    source = cfg.backbone if cfg.backbone != "head" else str(emb.meta.get("encoder", "") if emb else "")
    is_clip = source.startswith("clip:")
    spec = cfg.text_encoder or (source if is_clip else "minilm")
    encoder = create_encoder(spec)
    encoder.check_modality("text")

    def encode_text(texts: list[str]) -> np.ndarray:
        encoder.load(request.device)
        with torch.inference_mode():
            return encoder.encode_text(texts).float().cpu().numpy()

    if cfg.backbone != "head":
        from curate.finetune.contrastive_network import fit_contrastive_network

        return fit_contrastive_network(request, cfg, encode_text, identity=is_clip and spec == source)
    assert emb is not None
    result = fit_contrastive(
        request.manifest, request.table, emb, encode_text, cfg, identity=is_clip and spec == source,
        pseudo_groups=request.pseudo_groups, out=request.out, device=request.device, hooks=request.hooks,
        score_val=request.score_val,
    )  # fmt: skip
    val_predictions = result.predictions.filter(pl.col(S.SAMPLE_ID).is_in(request.table.split("val").ids.to_list()))
    return replace(result, extra=result.extra | {"selection": selection_score(request, val_predictions)})


def fit_contrastive(
    manifest: Manifest,
    table: SampleTable,
    emb: EmbeddingTable,
    encode_text: Any,
    cfg: ContrastiveConfig,
    *,
    identity: bool = False,
    pseudo_groups: pl.DataFrame | None = None,
    out: str | Path | None = None,
    device: str = "cpu",
    hooks: tuple[Any, ...] = (),
    score_val: Any = None,
) -> FinetuneResult:
    """Fine-tune the projections of a CLIP-style pair on the manifest's rows (Yang et al. 2023).

    Args:
        encode_text: the frozen text tower, ``list[str] -> (n, d_t)`` array.
        identity: the towers are already aligned (a CLIPModel): projections start as the identity
            and the alignment stage is skipped.

    Raises:
        InputDataError: no class names or no spurious attributes in words.
    """
    import torch

    class_text, spur_text, spurious, templates = prompt_embeddings(table, cfg, encode_text)
    n_c = class_text.shape[1]

    f = manifest.frame
    extra = {}
    if cfg.spurious_class_weight > 0:
        extra["attribute"] = torch.from_numpy(attributes_of(table, f, len(spurious)))
    zero, one = np.zeros(emb.dim, np.float32), np.ones(emb.dim, np.float32)
    x = manifest_inputs(manifest, emb, zero, one)
    y = f[S.LABEL].to_numpy().astype(np.int64)
    w = f[S.WEIGHT].to_numpy().astype(np.float32)
    val_ids, test_ids = eval_ids(table)
    xv = np.asarray(emb.select(val_ids, what="val split").matrix, np.float32)
    xt = np.asarray(emb.select(test_ids, what="test split").matrix, np.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "contrastive-init"))
        model = clip_pair(emb.dim, class_text, spur_text, cfg.proj_dim, identity=identity)

    def batches(seed: int) -> TensorBatches:
        return TensorBatches(
            torch.from_numpy(x), torch.from_numpy(y), batch_size=cfg.batch_size, seed=seed,
            weight=torch.from_numpy(w), device=device, extra=extra,
        )  # fmt: skip

    folder = None if out is None else Path(out)
    if folder is not None:
        key = fingerprint(
            "contrastive", f, cfg.to_dict(), table.fingerprint(), emb.meta, class_text, spur_text, identity
        )
        claim_run(folder, key)
    if not identity and cfg.align_epochs > 0:
        align = TrainConfig(
            epochs=cfg.align_epochs,
            lr=cfg.align_lr,
            weight_decay=cfg.weight_decay,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
        )
        fit(
            Contrastive(model, cfg, align_only=True),
            batches(derive_seed(cfg.seed, "align")),
            align,
            checkpoint_dir=None if folder is None else folder / "align",
            desc="contrastive: align projections",
            device=device,
        )

    def predict(xs: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.inference_mode():
            return model(torch.from_numpy(xs).to(device))[0].argmax(1).cpu().numpy()

    tcfg = TrainConfig(
        epochs=cfg.epochs or HEAD_TRAINING["epochs"],  # projections over frozen towers: a head's epochs
        lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
        optimizer=cfg.optimizer, seed=cfg.seed,
    )  # fmt: skip
    best = fit_selected(
        Contrastive(model, cfg),
        batches(cfg.seed),
        tcfg,
        lambda: (
            score_val(prediction_frame(val_ids, predict(xv)))
            if score_val is not None
            else evaluate_predictions(
                table, prediction_frame(val_ids, predict(xv)), split="val", pseudo_groups=pseudo_groups
            )
        ),
        out=folder,
        record=(f[S.SAMPLE_ID].to_list(), y, n_c),
        desc="contrastive",
        device=device,
        hooks=hooks,
    )
    pred_v, pred_t = predict(xv), predict(xt)
    val = evaluate_predictions(table, prediction_frame(val_ids, pred_v), split="val", pseudo_groups=pseudo_groups)
    test = evaluate_predictions(table, prediction_frame(test_ids, pred_t), split="test", pseudo_groups=pseudo_groups)
    config = cfg.to_dict() | {"method": "contrastive", "spurious": list(spurious), "templates": list(templates)}
    return FinetuneResult(
        val, test, best, pl.concat([prediction_frame(val_ids, pred_v), prediction_frame(test_ids, pred_t)]), config
    )


FINETUNE_METHODS.add(
    "contrastive",
    Trainer(ContrastiveConfig, train_contrastive),
    group_labels="none",
    description="multi-modal contrastive fine-tuning (Yang et al. 2023), spurious attributes named in words",
)
