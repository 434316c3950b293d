"""CLIP: the image and text towers of a transformers ``CLIPModel`` (by local path or cached name).

``clip:<path>`` embeds images with ``get_image_features`` and texts with ``get_text_features``;
the tower is picked by the dataset's modality. Preprocessing comes from the model's own image
processor and tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from curate.embed._base import Encoder, hf_from_pretrained
from curate.embed.text import _identity
from curate.embed.vision import _HFTransform


class CLIPEncoder(Encoder):
    """Both towers of a ``CLIPModel``; outputs are the projected features, L2-normalised."""

    modalities = ("image", "text")

    def __init__(self, spec: str, model: str, *, normalize: bool = True) -> None:
        super().__init__(spec)
        self.model_ref = model
        self.normalize = normalize

    def describe(self) -> dict[str, Any]:
        return {"kind": "clip", "model": _identity(self.model_ref), "normalize": self.normalize}

    def _load(self, device: str) -> None:
        from transformers import AutoTokenizer, CLIPModel

        self.model = hf_from_pretrained(CLIPModel, self.model_ref).to(device).eval()
        self.tokenizer = hf_from_pretrained(AutoTokenizer, self.model_ref)

    def _norm(self, x: Any) -> Any:
        import torch

        x = _features(x).float()
        return torch.nn.functional.normalize(x, dim=-1) if self.normalize else x

    def encode_text(self, texts: list[str]) -> Any:
        max_len = int(self.model.config.text_config.max_position_embeddings)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=max_len, return_tensors="pt")
        batch = {k: v.to(self._device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}
        return self._norm(self.model.get_text_features(**batch))

    def image_transform(self) -> Callable[[Any], Any]:
        from transformers import AutoImageProcessor

        return _HFTransform(hf_from_pretrained(AutoImageProcessor, self.model_ref))

    def encode_images(self, pixels: Any) -> Any:
        return self._norm(self.model.get_image_features(pixel_values=pixels))


def _features(out: Any) -> Any:
    """transformers returns a tensor (4.x) or an output object with ``pooler_output`` (5.x)."""
    if hasattr(out, "pooler_output") and out.pooler_output is not None:
        return out.pooler_output
    return out
