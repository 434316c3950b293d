"""A small digits-color workspace with planted embeddings, a detection, and three fake runs (with
manifests that keep, prune and mix), for the HTML report's tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from curate import api
from curate.embed import EmbeddingTable


def build(root: Path, dataset: Path, *, detector: str = "knn") -> tuple[Path, list[Path]]:
    """The workspace ``root/ws`` and run folders ``root/runs/{erm,prune,mix}``."""
    table = api.load_dataset(dataset)
    ws = api.Workspace(root / "ws").attach(table)
    rng = np.random.default_rng(0)
    a = table.frame["a"].to_numpy()
    y = table.frame["label"].to_numpy()
    x = rng.normal(size=(len(table), 16)).astype(np.float32)
    x[:, 0] += 4.0 * (2 * a - 1)
    x[:, 1] += 1.0 * (2 * y - 1)
    emb = EmbeddingTable(table.ids, x, {"encoder": "planted"})
    ws.record("embed", "planted", emb.save(root / "ws" / "embed" / "planted"))
    disc = api.detect(table, embeddings=emb, detector=detector)
    api.save_discovery(ws, disc)
    train = disc.scores.sort(["conflict_score", "sample_id"], descending=[True, False])["sample_id"].to_list()
    base = table.split("train").frame.select("sample_id", pl.col("path").alias("source"), "label")
    base = base.with_columns(
        pl.lit(1.0).alias("weight"),
        pl.lit(None, dtype=pl.String).alias("mix_with"),
        pl.lit(None, dtype=pl.Float64).alias("mix_lambda"),
    )
    manifests = {
        "erm": base,
        "prune": base.filter(~pl.col("sample_id").is_in(train[:5])),
        "mix": base.with_columns(
            pl.when(pl.col("sample_id") == train[0])
            .then(pl.lit(train[-1]))
            .otherwise(pl.col("mix_with"))
            .alias("mix_with"),
            pl.when(pl.col("sample_id") == train[0]).then(0.3).otherwise(pl.col("mix_lambda")).alias("mix_lambda"),
        ),
    }
    runs = []
    for k, (name, m) in enumerate(manifests.items()):
        run = root / "runs" / name
        run.mkdir(parents=True)
        groups = {str(g): 0.9 - 0.1 * k * (g % 2) for g in range(4)}
        metrics = {
            "method": name,
            "manifest": {"method": name},
            "train_groups": "none" if name == "erm" else "pseudo (inferred by the detector)",
            "model_selection": "val pseudo-groups",
            "test": {
                "acc_avg": float(np.mean(list(groups.values()))),
                "acc_wg": min(groups.values()),
                "groups": groups,
                "group_source": "true",
            },
        }
        (run / "metrics.json").write_text(json.dumps(metrics))
        m.write_parquet(run / "manifest.parquet")
        runs.append(run)
    return root / "ws", runs
