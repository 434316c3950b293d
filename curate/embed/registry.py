"""``ENCODERS``: encoder factories by name; ``create_encoder`` parses a spec string.

Specs: ``minilm``, ``efficientnet-lite0``, ``hf-text:<name|path>``, ``hf-vision:<name|path>``,
``clip:<name|path>``, ``torchvision:<arch>[:<weights file>|:random]``, or a bare local model folder
(its ``config.json`` tells text, vision or CLIP).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from curate._core.registry import Registry
from curate.embed._base import Encoder
from curate.embed.clip import CLIPEncoder
from curate.embed.text import HFTextEncoder, minilm
from curate.embed.vision import EfficientNetLite0Encoder, HFVisionEncoder, TorchvisionEncoder
from curate.errors import ConfigError

Factory = Callable[[str, str | None], Encoder]
ENCODERS: Registry[Factory] = Registry("encoder")

VISION_MODEL_TYPES = (
    "vit",
    "dinov2",
    "convnext",
    "resnet",
    "swin",
    "beit",
    "deit",
    "efficientnet",
    "regnet",
    "siglip_vision_model",
)


def _needs_arg(name: str, arg: str | None) -> str:
    if not arg:
        raise ConfigError(f"encoder {name!r} needs a model: {name}:<name or local folder>")
    return arg


def _torchvision(spec: str, arg: str | None) -> Encoder:
    arch, _, weights = _needs_arg("torchvision", arg).partition(":")
    return TorchvisionEncoder(spec, arch, weights or None)


ENCODERS.add(
    "minilm",
    lambda spec, arg: minilm(spec),
    modality="text",
    dim=384,
    description="all-MiniLM-L6-v2 (offline package), mean pooling + L2 norm",
)
ENCODERS.add(
    "efficientnet-lite0",
    lambda spec, arg: EfficientNetLite0Encoder(spec, arg),
    modality="image",
    dim=1280,
    description="EfficientNet-Lite0 ImageNet weights (offline package), pooled 1280-d",
)
ENCODERS.add(
    "hf-text",
    lambda spec, arg: HFTextEncoder(spec, _needs_arg("hf-text", arg)),
    modality="text",
    description="transformers AutoModel text encoder, mean pooling + L2 norm",
)
ENCODERS.add(
    "hf-vision",
    lambda spec, arg: HFVisionEncoder(spec, _needs_arg("hf-vision", arg)),
    modality="image",
    description="transformers vision AutoModel + AutoImageProcessor, pooled output",
)
ENCODERS.add(
    "clip",
    lambda spec, arg: CLIPEncoder(spec, _needs_arg("clip", arg)),
    modality="image+text",
    description="transformers CLIPModel image and text towers, L2-normalised",
)
ENCODERS.add(
    "torchvision",
    _torchvision,
    modality="image",
    description="torchvision:<arch>[:<state dict file>|:random], last Linear removed",
)


# The encoder used when none is named, by the dataset's modality (``curate embed``, ``curate run``, ``api.score``).
DEFAULT_ENCODERS = {"image": "efficientnet-lite0", "text": "minilm"}


def default_encoder(modality: str) -> str:
    """The encoder spec used for ``modality`` (``image`` or ``text``) data when none is named.

    Raises:
        ConfigError: an unknown modality.
    """
    if modality not in DEFAULT_ENCODERS:
        raise ConfigError.bad_param("default_encoder()", "modality", f"one of {tuple(DEFAULT_ENCODERS)}", modality)
    return DEFAULT_ENCODERS[modality]


def create_encoder(spec: str) -> Encoder:
    """Build the encoder named by ``spec`` (settings only; weights load on first use).

    Raises:
        UnknownNameError: the name part is not a registered encoder (with the closest match).
        ConfigError: the spec lacks its model argument.
    """
    p = Path(spec)
    if p.is_dir() and (p / "config.json").exists():
        model_type = json.loads((p / "config.json").read_text()).get("model_type", "")
        name = "clip" if model_type == "clip" else "hf-vision" if model_type in VISION_MODEL_TYPES else "hf-text"
        return ENCODERS.get(name)(spec, spec)
    name, _, arg = spec.partition(":")
    return ENCODERS.get(name)(spec, arg or None)
