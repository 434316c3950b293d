"""Layer 2: pretrained encoders (registry, loading by name or path) and batched embedding."""

from curate.embed._base import Encoder, ImagePreprocess
from curate.embed.registry import ENCODERS, create_encoder
from curate.embed.run import embed_table
from curate.embed.table import EmbeddingTable

__all__ = ["ENCODERS", "EmbeddingTable", "Encoder", "ImagePreprocess", "create_encoder", "embed_table"]
