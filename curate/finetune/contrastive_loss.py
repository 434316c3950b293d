"""The loss of the multi-modal contrastive method (Yang et al., ICML 2023), term by term as in the
authors' ``losses.py``; see :mod:`curate.finetune.contrastive` for what each term does and the
weights of their Waterbirds command."""

from __future__ import annotations

from typing import Any

from curate.errors import ConfigError

TERMS = ("classification", "clip", "image", "crossmodal", "language", "spurious", "spurious_class")


def normalize(x: Any) -> Any:
    """Rows scaled to unit L2 norm."""
    import torch

    return torch.nn.functional.normalize(x, dim=-1, eps=1e-6)


def _similarity_loss(a: Any, b: Any, la: Any, lb: Any, pos_w: float, neg_w: float) -> Any:
    """Per row of ``a``: ``−pos_w·mean_j cos·[same label] + neg_w·mean_j cos·[other label]``."""
    cos = normalize(a) @ normalize(b).T
    same = (la[:, None] == lb[None, :]).to(cos.dtype)
    return -pos_w * (cos * same).mean(1) + neg_w * (cos * (1 - same)).mean(1)


def contrastive_loss(
    features: Any,
    labels: Any,
    logits: Any,
    class_prompts: Any,
    spurious_prompts: Any | None,
    weights: dict[str, float],
    *,
    attributes: Any = None,
    scale: Any = 1.0,
    pos_weight: float = 1.0,
    neg_weight: float = 1.0,
) -> tuple[Any, dict[str, Any]]:
    """Per-sample loss of Yang et al. (2023) and its terms (see the module docstring).

    Args:
        features: ``(B, d)`` normalised image features; labels ``(B,)``; logits ``(B, C)``: ``τ·f·t̄ᵀ``.
        class_prompts: ``(T, C, d)`` normalised projected class-prompt embeddings.
        spurious_prompts: ``(T, A, d)`` normalised projected attribute-prompt embeddings, or None.
        attributes: ``(B,)`` each sample's attribute index (needed when ``spurious_class`` weighs).
        scale: the logit scale ``τ``.
    """
    import torch
    import torch.nn.functional as F

    n_t, n_c, d = class_prompts.shape
    prompts = class_prompts.reshape(n_t * n_c, d)
    prompt_labels = torch.arange(n_c, device=prompts.device).repeat(n_t)  # template-major rows
    zero = torch.zeros(len(labels), device=features.device, dtype=features.dtype)
    terms = {"classification": F.cross_entropy(logits, labels, reduction="none")}
    pair = scale * features @ class_prompts.mean(0)[labels].T  # (B, B): image i vs the prompt of y_j
    targets = torch.arange(len(labels), device=features.device)
    terms["clip"] = 0.5 * (
        F.cross_entropy(pair, targets, reduction="none") + F.cross_entropy(pair.T, targets, reduction="none")
    )
    terms["image"] = _similarity_loss(features, features, labels, labels, pos_weight, neg_weight)
    terms["crossmodal"] = _similarity_loss(features, prompts, labels, prompt_labels, pos_weight, neg_weight)
    per_prompt = _similarity_loss(prompts, prompts, prompt_labels, prompt_labels, pos_weight, neg_weight)
    terms["language"] = per_prompt.view(n_t, n_c).mean(0)[labels]
    terms["spurious"] = terms["spurious_class"] = zero
    if spurious_prompts is not None:
        spur = normalize(spurious_prompts.reshape(-1, d))
        cross = (normalize(features) @ spur.T).abs().mean(1)
        lang = (normalize(prompts) @ spur.T).abs().mean(1).view(n_t, n_c).mean(0)[labels]
        # as their losses.py: the image part rides the cross-modal weight, the prompt part the language
        # weight (each then times the spurious weight)
        terms["spurious"] = neg_weight * (weights.get("crossmodal", 0.0) * cross + weights.get("language", 0.0) * lang)
        if weights.get("spurious_class", 0.0) > 0:
            if attributes is None:
                raise ConfigError("the spurious-class term needs each training sample's attribute")
            attr = spurious_prompts.mean(0)
            attr = attr / attr.norm()  # the Frobenius norm of the (A, d) matrix, as in their code
            terms["spurious_class"] = F.cross_entropy(scale * features @ attr.T, attributes, reduction="none")
    total = sum(weights.get(k, 0.0) * terms[k] for k in TERMS)
    return total, terms
