"""Embedding with Ray Data: ``map_batches`` over actors that each hold the encoder (one GPU per
actor where the cluster has GPUs, else one CPU core and one torch thread per actor).

Used by :func:`curate.embed.shards.embed_sharded` with ``engine="ray"``; the result equals the
local path's up to float rounding (batches are cut in row order rather than by text length).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.engine import ray_gpus, ray_session
from curate.data.table import SampleTable
from curate.embed.table import EmbeddingTable


class _EmbedActor:
    """A Ray actor: loads the encoder once, embeds batches of texts or image paths."""

    def __init__(self, spec: str, modality: str, gpu: bool) -> None:
        import torch

        from curate.embed.registry import create_encoder

        if not gpu:
            torch.set_num_threads(1)
        self.device = "cuda" if gpu else "cpu"
        self.encoder = create_encoder(spec).load(self.device)
        self.modality = modality
        self.transform = self.encoder.image_transform() if modality == "image" else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            if self.modality == "text":
                emb = self.encoder.encode_text([str(t) for t in batch["x"]])
            else:
                from PIL import Image

                assert self.transform is not None
                pixels = []
                for p in batch["x"]:
                    with Image.open(str(p)) as im:
                        pixels.append(self.transform(im.convert("RGB")))
                emb = self.encoder.encode_images(torch.stack(pixels).to(self.device))
        return {"i": batch["i"], "emb": emb.float().cpu().numpy()}


def embed_table_ray(table: SampleTable, spec: str, *, device: str = "cpu", batch_size: int = 64) -> EmbeddingTable:
    """Embed ``table`` with encoder ``spec`` on the Ray cluster (see :func:`curate._core.engine.ray_session`).

    ``device`` is accepted for symmetry with the local path; Ray places actors on GPUs when the
    cluster has them.
    """
    ray = ray_session()
    gpus = ray_gpus()
    if table.modality == "text":
        values = table.frame[S.TEXT].to_list()
    else:
        values = [str(table.resolve(p)) for p in table.frame[S.PATH]]
    ds = ray.data.from_items([{"i": i, "x": v} for i, v in enumerate(values)])
    cpus = int(ray.cluster_resources().get("CPU", 1))
    actors = max(1, int(gpus)) if gpus else max(1, min(cpus, len(values) // batch_size + 1))
    out = ds.map_batches(
        _EmbedActor,
        fn_constructor_args=(spec, table.modality, gpus > 0),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=0 if gpus else 1,
    )
    rows: list[Any] = out.take_all()
    order = np.argsort([int(r["i"]) for r in rows])
    matrix = np.stack([np.asarray(rows[j]["emb"], dtype=np.float32) for j in order])
    ids = pl.Series(S.SAMPLE_ID, table.frame[S.SAMPLE_ID].to_list(), dtype=pl.String)
    return EmbeddingTable(ids, matrix, {"encoder": spec, "engine": "ray"})
