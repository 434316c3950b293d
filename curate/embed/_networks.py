"""The torch modules behind :data:`curate.embed.backbones.BACKBONES` (imported lazily by ``build``).

Every network is a :class:`Network`: ``forward(x, mix_x=None, mix_lambda=None)`` returns
``(logits, features)``, ``features`` being the input of the new linear head. Mixing pairs are
applied to the pixels of images (``λ·mix_x + (1 − λ)·x``) and to the token-embedding output of
texts (the word embeddings, before position embeddings are added; the attention mask is the
union of both). Image networks keep the last convolutional feature maps of a forward pass in
``last_maps`` when ``keep_maps`` is set (for Grad-CAM saliency).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from curate.errors import ConfigError, did_you_mean

HEAD = "head"


BLOCK = re.compile(r"(\w*_)?\d+")  # a numbered block: `12`, or `encoder_layer_3` (torchvision ViT)


def stage_of(param_name: str) -> str:
    """The stage of a parameter of a :class:`Network`: ``head`` for the new classifier; else, inside the
    body, its module path up to the first numbered block (``_blocks.12``, ``layer4.1``,
    ``encoder.layers.encoder_layer_3``), or the first module name (``_conv_head``, ``embeddings``), or
    the parameter's own name when it sits directly on the body (a ViT's ``class_token``)."""
    parts = param_name.split(".")
    if parts[0] != "body":
        return HEAD
    parts = parts[1:]
    if len(parts) == 1:
        return parts[0]
    modules = parts[:-1]
    for k, p in enumerate(modules):
        if BLOCK.fullmatch(p):
            return ".".join(modules[: k + 1])
    return modules[0]


class Network(nn.Module):
    """A pretrained ``body`` producing features, the body's dropout, and a new linear ``head``."""

    def __init__(self, body: nn.Module, dim: int, n_classes: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.body: Any = body
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, n_classes)
        self.keep_maps = False
        self.last_maps: torch.Tensor | None = None
        self._frozen: list[nn.Module] = []

    def features(self, x: Any, mix_x: Any = None, mix_lambda: Any = None) -> torch.Tensor:
        """The head's input for a batch."""
        raise NotImplementedError

    def forward(self, x: Any, mix_x: Any = None, mix_lambda: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x, mix_x, mix_lambda)
        return self.head(self.dropout(h)), h

    def stages(self) -> list[str]:
        """Stage names in forward (parameter) order, ``head`` last."""
        out: list[str] = []
        for name, _ in self.named_parameters():
            s = stage_of(name)
            if s not in out:
                out.append(s)
        return out

    def freeze_before(self, stage: str | None) -> None:
        """Train every parameter from ``stage`` on (None: all); freeze the rest and keep the fully
        frozen modules in eval mode (BatchNorm statistics, dropout and drop-connect fixed).

        Raises:
            ConfigError: ``stage`` is not one of :meth:`stages`.
        """
        stages = self.stages()
        if stage is not None and stage not in stages:
            raise ConfigError(
                f"unknown stage {stage!r} for --train-from{did_you_mean(stage, stages)}; the stages are "
                + ", ".join(stages)
            )
        # parameters train from the first one of ``stage`` on, in forward (parameter) order
        hit = stage is None
        for name, p in self.named_parameters():
            hit = hit or stage_of(name) == stage
            p.requires_grad_(hit)
        self._frozen = [
            m
            for m in self.modules()
            if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())
        ]
        self.train(self.training)

    def train(self, mode: bool = True) -> Network:
        super().train(mode)
        for m in self._frozen:
            m.eval()
        return self


class ImageNetwork(Network):
    """An image network: pixel mixing, then :meth:`extract` → ``(maps | None, features)``."""

    def extract(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        raise NotImplementedError

    def features(self, x: Any, mix_x: Any = None, mix_lambda: Any = None) -> torch.Tensor:
        if mix_x is not None:
            lam = mix_lambda.to(x.dtype).view(-1, 1, 1, 1)
            x = lam * mix_x + (1 - lam) * x
        maps, h = self.extract(x)
        self.last_maps = maps if self.keep_maps else None
        return h


class LiteNetwork(ImageNetwork):
    """EfficientNet-Lite0: ``extract_features`` maps, global average pooling."""

    def extract(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        maps = self.body.extract_features(x)
        return maps, maps.mean(dim=(2, 3))


class TorchvisionNetwork(ImageNetwork):
    """A torchvision classifier whose last ``Linear`` is the identity; maps are the input of ``avgpool``."""

    def __init__(self, body: nn.Module, dim: int, n_classes: int) -> None:
        super().__init__(body, dim, n_classes)
        self._maps: torch.Tensor | None = None
        pool = getattr(body, "avgpool", None)
        if isinstance(pool, nn.Module):
            pool.register_forward_pre_hook(self._grab_maps)

    def _grab_maps(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._maps = args[0] if self.keep_maps else None

    def extract(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        h = self.body(x).flatten(1)
        maps, self._maps = self._maps, None
        return maps, h


class SmallCNNNetwork(ImageNetwork):
    """Three conv blocks (GroupNorm), global average pooling."""

    def extract(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        maps = self.body(x)
        return maps, maps.mean(dim=(2, 3))


class CLIPImageNetwork(ImageNetwork):
    """CLIP's vision transformer and visual projection (no convolutional maps)."""

    def __init__(self, body: nn.Module, dim: int, n_classes: int, *, interpolate: bool) -> None:
        super().__init__(body, dim, n_classes)
        self.interpolate = interpolate

    def extract(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        out = self.body.vision_model(pixel_values=x, interpolate_pos_encoding=self.interpolate)
        return None, self.body.visual_projection(out.pooler_output)


class TextNetwork(Network):
    """A transformers text encoder: token-embedding mixing, encoder, pooling (``mean`` or ``cls``)."""

    def __init__(self, body: nn.Module, dim: int, n_classes: int, *, pooling: str = "mean") -> None:
        super().__init__(body, dim, n_classes)
        self.pooling = pooling

    def token_embedding(self) -> nn.Module:
        """The module whose output the mixing replaces."""
        return self.body.get_input_embeddings()

    def encode(self, x: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        extra = {k: v for k, v in x.items() if k not in ("input_ids", "attention_mask")}
        hidden = self.body(input_ids=x["input_ids"], attention_mask=mask, **extra).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def features(self, x: Any, mix_x: Any = None, mix_lambda: Any = None) -> torch.Tensor:
        mask = x["attention_mask"]
        if mix_x is None:
            return self.encode(x, mask).float()
        emb = self.token_embedding()
        partner = emb(mix_x["input_ids"])
        lam = mix_lambda.view(-1, 1, 1)

        def mixed(module: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
            w = lam.to(out.dtype)
            return w * partner.to(out.dtype) + (1 - w) * out

        # a mixed row attends to the tokens of both texts; a row with lambda 0 stays as it is
        union = torch.where((mix_lambda > 0)[:, None], torch.maximum(mask, mix_x["attention_mask"]), mask)
        handle = emb.register_forward_hook(mixed)
        try:
            return self.encode(x, union).float()
        finally:
            handle.remove()


class CLIPTextNetwork(TextNetwork):
    """CLIP's text transformer (pooled at the end-of-text token) and text projection."""

    def token_embedding(self) -> nn.Module:
        return self.body.text_model.embeddings.token_embedding

    def encode(self, x: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        out = self.body.text_model(input_ids=x["input_ids"], attention_mask=mask)
        return self.body.text_projection(out.pooler_output)


def efficientnet_lite0(weights: str, n_classes: int, image_size: int) -> Network:
    """EfficientNet-Lite0 from ``weights`` with 'same' padding computed for ``image_size`` inputs."""
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=image_size)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    dim = model._fc.in_features
    dropout = float(model._global_params.dropout_rate or 0.0)
    model._fc = nn.Identity()
    return LiteNetwork(model, dim, n_classes, dropout=dropout)


def torchvision_model(arch: str, weights: str, n_classes: int) -> Network:
    """A torchvision architecture with a state dict (or ``random``) and its last Linear replaced."""
    from torchvision import models

    model = models.get_model(arch, weights=None)
    if weights != "random":
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ConfigError(f"torchvision:{arch} has no Linear classifier to replace")
    parent: nn.Module = model
    *path, leaf = last.split(".")
    for p in path:
        parent = getattr(parent, p)
    dim = int(getattr(parent, leaf).in_features)
    setattr(parent, leaf, nn.Identity())
    return TorchvisionNetwork(model, dim, n_classes)


def hf_text(model_ref: str, pooling: str, n_classes: int) -> Network:
    """A transformers ``AutoModel`` text encoder with a linear head."""
    from transformers import AutoModel

    from curate.embed._base import hf_from_pretrained

    body = hf_from_pretrained(AutoModel, model_ref)
    return TextNetwork(body, int(body.config.hidden_size), n_classes, pooling=pooling)


def clip_tower(model_ref: str, modality: str, n_classes: int, *, interpolate: bool = False) -> Network:
    """The ``modality`` tower of a ``CLIPModel`` with its projection (the other tower is dropped)."""
    from transformers import CLIPModel

    from curate.embed._base import hf_from_pretrained

    clip = hf_from_pretrained(CLIPModel, model_ref)
    dim = int(clip.config.projection_dim)
    body = nn.Module()
    if modality == "image":
        body.vision_model, body.visual_projection = clip.vision_model, clip.visual_projection
        return CLIPImageNetwork(body, dim, n_classes, interpolate=interpolate)
    body.text_model, body.text_projection = clip.text_model, clip.text_projection
    return CLIPTextNetwork(body, dim, n_classes)


def small_cnn(n_classes: int, *, width: int = 32) -> Network:
    """Three conv blocks (GroupNorm: no train/eval statistics gap) and a linear head."""
    body = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.GroupNorm(8, width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.GroupNorm(8, 2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1),
        nn.GroupNorm(8, 4 * width),
        nn.ReLU(),
    )
    return SmallCNNNetwork(body, 4 * width, n_classes)
