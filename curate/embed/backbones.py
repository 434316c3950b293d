"""``BACKBONES``: the encoders' networks as trainable classifiers (a pretrained body + a linear head).

Specs use the encoders' names: ``efficientnet-lite0`` (offline ImageNet weights),
``torchvision:<arch>:<state dict file>|random``, ``hf-text:<name|path>`` (a transformers text
encoder, mean pooled as the encoder pools it), ``minilm`` (the offline all-MiniLM-L6-v2),
``clip:<name|path>`` (the image or the text tower of a ``CLIPModel``, by the data's modality), and
``small-cnn`` (a small randomly initialised CNN, for tests and tiny data). A bare local model
folder works as for encoders. Settings only here: :meth:`Backbone.build` imports torch and makes
the module (see ``curate.embed._networks``).

Which layers train: every parameter from a named *stage* on (``train_from``), the rest frozen; a
stage is a parameter-name prefix up to its first block number (``_blocks.12``, ``layer4.1``,
``encoder.layer.5``) or the first name part (``_conv_head``, ``embeddings``), and ``head`` is the
new classifier. :func:`Backbone.stages` lists them in forward order.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from curate._core.registry import Registry
from curate.embed._base import ImagePreprocess
from curate.embed.registry import VISION_MODEL_TYPES
from curate.embed.text import _identity, minilm_path
from curate.embed.vision import LITE_PREPROCESS, EfficientNetLite0Encoder, _torchvision_preprocess
from curate.errors import ConfigError, MissingDependencyError

SMALL_CNN_SIZE = 32
FIXED_SIZE_ARCHS = ("vit_", "swin_", "maxvit_")  # torchvision architectures built for one input size


class Backbone:
    """A trainable network named by ``spec``: constructors store settings; :meth:`build` makes it."""

    modalities: tuple[str, ...] = ("image",)
    pretrained = True  # the papers' fine-tuning defaults apply (a random initialisation trains like a head)

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def describe(self) -> dict[str, Any]:
        """Everything the initial network depends on (weights identity): part of a run's key."""
        raise NotImplementedError

    def check_modality(self, modality: str) -> None:
        """Raise :class:`ConfigError` unless this backbone takes ``modality`` inputs."""
        if modality not in self.modalities:
            raise ConfigError(
                f"backbone {self.spec!r} takes {' or '.join(self.modalities)}, but the dataset holds {modality}; "
                f"pick a {modality} backbone (see `curate list backbones`)"
            )

    # images
    _native: ImagePreprocess = LITE_PREPROCESS

    @property
    def native_preprocess(self) -> ImagePreprocess:
        """The preprocessing the pretrained weights expect."""
        return self._native

    def preprocess(self, image_size: int | None = None) -> ImagePreprocess:
        """The pretrained preprocessing, rescaled to crop ``image_size`` (None: the native size)."""
        p = self.native_preprocess
        if image_size is None or image_size == p.crop:
            return p
        return replace(p, resize=max(image_size, round(image_size * p.resize / p.crop)), crop=image_size)

    def build(self, n_classes: int, *, modality: str = "image", image_size: int | None = None) -> Any:
        """The ``torch.nn.Module``: ``forward(x, mix_x=None, mix_lambda=None) -> (logits, features)``."""
        raise NotImplementedError

    # text
    def tokenizer(self) -> Any:
        """The tokenizer of a text backbone."""
        raise ConfigError(f"backbone {self.spec!r} takes no text")

    _max_length: int = 512

    @property
    def max_length(self) -> int:
        """The longest input in tokens the text model takes."""
        return self._max_length


class EfficientNetLite0Backbone(Backbone):
    """EfficientNet-Lite0 with ImageNet weights (offline packages); its 1000-way classifier is
    replaced by a new head on the pooled 1280-d features, after the network's own dropout (0.2)."""

    def __init__(self, spec: str = "efficientnet-lite0", weights: str | None = None) -> None:
        super().__init__(spec)
        self.encoder = EfficientNetLite0Encoder(spec, weights)
        self._native = LITE_PREPROCESS

    def describe(self) -> dict[str, Any]:
        return {"kind": "efficientnet-lite0", "weights": _identity(self.encoder._weights_path())}

    def build(self, n_classes: int, *, modality: str = "image", image_size: int | None = None) -> Any:
        from curate.embed import _networks

        return _networks.efficientnet_lite0(self.encoder._weights_path(), n_classes, self.preprocess(image_size).crop)


class TorchvisionBackbone(Backbone):
    """A torchvision classification model; its last ``Linear`` becomes a new head."""

    def __init__(self, spec: str, arch: str, weights: str | None) -> None:
        super().__init__(spec)
        if weights is None:
            raise ConfigError(
                f"backbone {spec!r}: torchvision weights are not downloaded at run time; "
                f"use torchvision:{arch}:/path/to/weights.pth (a state dict) or torchvision:{arch}:random"
            )
        if weights != "random" and not Path(weights).exists():
            raise MissingDependencyError(f"weights file {weights} for {spec!r} not found")
        self.arch = arch
        self.weights = weights
        self.pretrained = weights != "random"
        self._native = _torchvision_preprocess(arch)

    def describe(self) -> dict[str, Any]:
        w = "random" if self.weights == "random" else _identity(self.weights)
        return {"kind": "torchvision", "arch": self.arch, "weights": w}

    def build(self, n_classes: int, *, modality: str = "image", image_size: int | None = None) -> Any:
        from curate.embed import _networks

        native = self.native_preprocess.crop
        if image_size not in (None, native) and self.arch.startswith(FIXED_SIZE_ARCHS):
            raise ConfigError(
                f"backbone {self.spec!r} takes {native} px inputs (its position embeddings are fixed); "
                f"set image_size={native}"
            )
        return _networks.torchvision_model(self.arch, self.weights, n_classes)


class HFTextBackbone(Backbone):
    """A transformers text encoder as a sequence classifier: encoder → pooling → linear head.

    Pooling is the encoder's (mean over the attention mask for sentence-transformers models such as
    MiniLM, whose pooled vector is what they were trained to produce).
    """

    modalities = ("text",)

    def __init__(self, spec: str, model: str, *, pooling: str = "mean", max_length: int | None = None) -> None:
        super().__init__(spec)
        from curate.embed.text import _sentence_bert_max_length

        self.model_ref, self.pooling = model, pooling
        self._max_length = max_length or _sentence_bert_max_length(model) or 512

    def describe(self) -> dict[str, Any]:
        return {"kind": "hf-text", "model": _identity(self.model_ref), "pooling": self.pooling}

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        from curate.embed._base import hf_from_pretrained

        return hf_from_pretrained(AutoTokenizer, self.model_ref)

    def build(self, n_classes: int, *, modality: str = "text", image_size: int | None = None) -> Any:
        from curate.embed import _networks

        return _networks.hf_text(self.model_ref, self.pooling, n_classes)


class CLIPBackbone(Backbone):
    """One tower of a transformers ``CLIPModel`` (image or text, by the data) with its projection,
    then a linear head on the projected features."""

    modalities = ("image", "text")

    def __init__(self, spec: str, model: str) -> None:
        super().__init__(spec)
        self.model_ref = model
        self._preprocess: ImagePreprocess | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": "clip", "model": _identity(self.model_ref)}

    @property
    def native_preprocess(self) -> ImagePreprocess:
        """The model's own image processor (shortest edge, crop, mean, std), as an ImagePreprocess."""
        if self._preprocess is None:
            from transformers import AutoImageProcessor

            from curate.embed._base import hf_from_pretrained

            proc = hf_from_pretrained(AutoImageProcessor, self.model_ref)
            size = proc.size.get("shortest_edge") or proc.size.get("height")
            crop = (proc.crop_size or {}).get("height", size)
            self._preprocess = ImagePreprocess(
                resize=int(size), crop=int(crop), mean=tuple(proc.image_mean), std=tuple(proc.image_std),
                interpolation="bicubic",
            )  # fmt: skip
        return self._preprocess

    def tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        from curate.embed._base import hf_from_pretrained

        return hf_from_pretrained(AutoTokenizer, self.model_ref)

    @property
    def max_length(self) -> int:
        from transformers import CLIPConfig

        from curate.embed._base import hf_from_pretrained

        return int(hf_from_pretrained(CLIPConfig, self.model_ref).text_config.max_position_embeddings)

    def build(self, n_classes: int, *, modality: str = "image", image_size: int | None = None) -> Any:
        from curate.embed import _networks

        native = self.native_preprocess.crop
        return _networks.clip_tower(self.model_ref, modality, n_classes, interpolate=image_size not in (None, native))


class SmallCNNBackbone(Backbone):
    """Three conv blocks and a linear head, randomly initialised (tests, tiny data, no pretraining)."""

    pretrained = False

    def __init__(self, spec: str = "small-cnn") -> None:
        super().__init__(spec)
        self._native = ImagePreprocess(resize=SMALL_CNN_SIZE, crop=SMALL_CNN_SIZE, mean=(0.0,) * 3, std=(1.0,) * 3)

    def describe(self) -> dict[str, Any]:
        return {"kind": "small-cnn", "weights": "random"}

    def build(self, n_classes: int, *, modality: str = "image", image_size: int | None = None) -> Any:
        from curate.embed import _networks

        return _networks.small_cnn(n_classes)


BACKBONES: Registry[Any] = Registry("backbone")
BACKBONES.add("efficientnet-lite0", lambda spec, arg: EfficientNetLite0Backbone(spec, arg), modality="image",
              description="EfficientNet-Lite0, ImageNet weights (offline package)")  # fmt: skip
BACKBONES.add(
    "torchvision",
    lambda spec, arg: TorchvisionBackbone(spec, *_arch_and_weights(arg)),
    modality="image",
    description="torchvision:<arch>:<state dict file>|random",
)
BACKBONES.add("hf-text", lambda spec, arg: HFTextBackbone(spec, _needs("hf-text", arg)), modality="text",
              description="transformers text encoder + mean pooling + linear head")  # fmt: skip
BACKBONES.add("minilm", lambda spec, arg: HFTextBackbone(spec, minilm_path()), modality="text",
              description="all-MiniLM-L6-v2 (offline package) + mean pooling + linear head")  # fmt: skip
BACKBONES.add("clip", lambda spec, arg: CLIPBackbone(spec, _needs("clip", arg)), modality="image+text",
              description="one CLIPModel tower (image or text, by the data) + projection + linear head")  # fmt: skip
BACKBONES.add("small-cnn", lambda spec, arg: SmallCNNBackbone(spec), aliases=("cnn",), modality="image",
              description="small CNN, random initialisation (tests and tiny data)")  # fmt: skip


def _needs(name: str, arg: str | None) -> str:
    if not arg:
        raise ConfigError(f"backbone {name!r} needs a model: {name}:<name or local folder>")
    return arg


def _arch_and_weights(arg: str | None) -> tuple[str, str | None]:
    arch, _, weights = _needs("torchvision", arg).partition(":")
    return arch, weights or None


def create_backbone(spec: str) -> Backbone:
    """Build the backbone named by ``spec`` (settings only; nothing loads until ``build``).

    Raises:
        UnknownNameError: the name part is not a registered backbone (with the closest match).
        ConfigError: the spec lacks its model argument.
    """
    p = Path(spec)
    if p.is_dir() and (p / "config.json").exists():
        model_type = json.loads((p / "config.json").read_text()).get("model_type", "")
        if model_type == "clip":
            return CLIPBackbone(spec, spec)
        if model_type in VISION_MODEL_TYPES:
            raise ConfigError(
                f"backbone {spec!r}: transformers vision models are embed-only; use clip: or torchvision:"
            )
        return HFTextBackbone(spec, spec)
    name, _, arg = spec.partition(":")
    return BACKBONES.get(name)(spec, arg or None)
