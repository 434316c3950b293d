"""The encoder interface and the image preprocessing every image encoder describes itself with."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from curate.errors import ConfigError

ALLOW_DOWNLOADS_ENV = "CURATE_ALLOW_DOWNLOADS"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize (shorter side) → centre crop → [0, 1] tensor → normalise; part of the cache key."""

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (cache key and provenance)."""
        return asdict(self)

    def train_transform(self, scale: tuple[float, float] = (0.7, 1.0)) -> Callable[[Any], Any]:
        """Training augmentation (Sagawa et al.'s for Waterbirds/CelebA): a random resized crop of
        ``scale`` of the area to ``crop``, a random horizontal flip, then the same normalisation."""
        from torchvision import transforms as T

        modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
        return T.Compose(
            [
                T.RandomResizedCrop(self.crop, scale=scale, interpolation=modes[self.interpolation], antialias=True),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )

    def transform(self) -> Callable[[Any], Any]:
        """A torchvision transform taking a PIL image to a normalised ``(3, crop, crop)`` tensor."""
        from torchvision import transforms as T

        modes = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
        return T.Compose(
            [
                T.Resize(self.resize, interpolation=modes[self.interpolation], antialias=True),
                T.CenterCrop(self.crop),
                T.ToTensor(),
                T.Normalize(self.mean, self.std),
            ]
        )


class Encoder(abc.ABC):
    """A pretrained encoder. Constructors store settings only; :meth:`load` does the heavy work.

    Subclasses set ``modalities`` and implement the ``encode_*`` methods for them.
    """

    modalities: tuple[str, ...] = ()

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._device = "cpu"
        self._loaded = False

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything the output depends on (weights identity, preprocessing): the cache key."""

    @abc.abstractmethod
    def _load(self, device: str) -> None:
        """Load weights onto ``device``."""

    def load(self, device: str) -> Encoder:
        """Load weights once onto ``device`` (a resolved torch device string) and return self."""
        if not self._loaded or device != self._device:
            self._load(device)
            self._device = device
            self._loaded = True
        return self

    def check_modality(self, modality: str) -> None:
        """Raise :class:`ConfigError` unless this encoder handles ``modality`` data."""
        if modality not in self.modalities:
            raise ConfigError(
                f"encoder {self.spec!r} embeds {' and '.join(self.modalities)}, but the dataset holds {modality}; "
                f"pick {'an' if modality == 'image' else 'a'} {modality} encoder (see `curate list encoders`)"
            )

    def encode_text(self, texts: list[str]) -> Any:
        """Embed a batch of strings; returns a ``(B, d)`` tensor on the device."""
        raise NotImplementedError(f"{self.spec} does not embed text")

    def image_transform(self) -> Callable[[Any], Any]:
        """PIL image → input tensor (runs in DataLoader workers)."""
        raise NotImplementedError(f"{self.spec} does not embed images")

    def encode_images(self, pixels: Any) -> Any:
        """Embed a batch of transformed images; returns a ``(B, d)`` tensor on the device."""
        raise NotImplementedError(f"{self.spec} does not embed images")


def quiet_transformers() -> None:
    """Silence transformers' chatter on model load: its progress bars always, its warnings and load
    reports (e.g. a freshly initialised head) unless curate logs at debug level (``-v``)."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if logging.getLogger("curate").isEnabledFor(logging.DEBUG):
        hf_logging.set_verbosity_warning()
    else:
        hf_logging.set_verbosity_error()


def hf_from_pretrained(cls: Any, ref: str, **kwargs: Any) -> Any:
    """``cls.from_pretrained(ref)`` from a local folder or the local HF cache; fails with the fix.

    Nothing is downloaded unless ``CURATE_ALLOW_DOWNLOADS=1`` (then a model name may be fetched).

    Raises:
        MissingDependencyError: the model is neither a local folder nor in the local HF cache.
    """
    import os
    from pathlib import Path

    from curate.errors import MissingDependencyError

    quiet_transformers()
    allow_download = os.environ.get(ALLOW_DOWNLOADS_ENV, "") in ("1", "true", "yes")
    offline = Path(ref).exists() or not allow_download
    try:
        return cls.from_pretrained(ref, local_files_only=offline, **kwargs)
    except OSError as e:
        raise MissingDependencyError(
            f"cannot load {ref!r} ({type(e).__name__}: {str(e).splitlines()[0]}); pass a local model folder "
            "(config + weights) or put the model in the Hugging Face cache; nothing is downloaded at run time "
            f"unless {ALLOW_DOWNLOADS_ENV}=1"
        ) from e
