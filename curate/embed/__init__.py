"""Layer 2: pretrained encoders (registry, loading by name or path), batched embedding, and the
same networks as trainable backbones."""

from curate.embed._base import Encoder, ImagePreprocess
from curate.embed.backbones import BACKBONES, Backbone, create_backbone
from curate.embed.registry import DEFAULT_ENCODERS, ENCODERS, create_encoder, default_encoder
from curate.embed.run import embed_table
from curate.embed.table import EmbeddingTable

__all__ = [
    "BACKBONES",
    "DEFAULT_ENCODERS",
    "ENCODERS",
    "Backbone",
    "EmbeddingTable",
    "Encoder",
    "ImagePreprocess",
    "create_backbone",
    "create_encoder",
    "default_encoder",
    "embed_table",
]
