"""Detect + select at N = 10k, 100k and 1M synthetic 384-d embeddings, out of core.

The embeddings are written to disk once (float32 ``embeddings.npy``, 2 classes, a planted
attribute that agrees with the class 95% of the time) and memory-mapped by each measurement.
Each measurement runs in a fresh process and reports wall time, peak RSS (``VmHWM``; mapped
file pages count) and the RSS before the matrix is touched (Python + torch + faiss), both against
the matrix size:

* ``detect+select``: the ``knn`` detector (FAISS; neighbours among a seeded 200k-row reference
  sample above that size, queries streamed in chunks) and the ``balance`` selection, with the
  minority-detection AUROC as a sanity check;
* ``cluster``: per-class spherical k-means (k = 8, trained on a sample, assignment streamed);
* both again with ``engine="ray"`` at 100k (kNN query chunks and classes as Ray tasks on a local
  Ray cluster; its start-up is not timed; RSS is the driver's).

Run: ``.venv/bin/python -m benchmarks.scale [--sizes 10000,100000,1000000] [--work work/scale]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

D = 384
STRENGTH = 0.95


def write_embeddings(folder: Path, n: int, seed: int = 0) -> None:
    """Synthetic embeddings in chunks (never the whole matrix in memory) + the dataset's labels."""
    import numpy as np
    import polars as pl

    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    attr = np.where(rng.random(n) < STRENGTH, labels, 1 - labels)
    out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float32, shape=(n, D))
    step = 100_000
    for s in range(0, n, step):
        e = min(n, s + step)
        block = rng.standard_normal((e - s, D), dtype=np.float32)
        block[:, 0] += 3.0 * (2 * attr[s:e] - 1)  # the attribute: a strong direction
        block[:, 1] += 1.0 * (2 * labels[s:e] - 1)  # the class: a weaker one
        out[s:e] = block
    out.flush()
    del out
    ids = [f"s{i:07d}" for i in range(n)]
    pl.DataFrame({"sample_id": ids}).write_parquet(folder / "ids.parquet")
    (folder / "meta.json").write_text(json.dumps({"encoder": "synthetic", "shape": [n, D]}))
    pl.DataFrame({"id": ids, "y": labels, "a": attr}).write_parquet(folder / "labels.parquet")
    (folder / "done").write_text("ok")


CHILD = """
import json, os, sys, time
os.environ["CURATE_NO_PROGRESS"] = "1"
import numpy as np, polars as pl, faiss, torch  # noqa: F401  (the baseline includes them)
from curate import api
from curate.data.table import SampleTable
from curate.embed import EmbeddingTable
from curate.index import KMeansConfig, cluster_per_class

def status_mb(key):  # this process's own figures (ru_maxrss would inherit the parent's peak at fork)
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

folder, task, engine = sys.argv[1], sys.argv[2], sys.argv[3]
baseline = status_mb("VmRSS")
lab = pl.read_parquet(f"{folder}/labels.parquet")
frame = lab.select(
    pl.col("id").alias("sample_id"), pl.col("y").alias("label"), pl.lit("train").alias("split"),
    pl.lit("").alias("text"), pl.col("a"), (pl.col("y") * 2 + pl.col("a")).alias("group"),
)
table = SampleTable(frame, name="synthetic")
emb = EmbeddingTable.load(folder, mmap=True)
if engine == "ray":
    from curate._core.engine import ray_session
    ray_session()  # starting the local Ray cluster is not part of the measured work
t0 = time.perf_counter()
extra = {}
if task == "detect+select":
    d = api.detect(table, embeddings=emb, detector="knn", engine=engine)
    m = api.select("balance", table, d)
    extra = {"auroc": api.detection_auroc(table, d), "manifest_rows": len(m)}
else:
    cluster_per_class(emb.matrix, table.ids, frame["label"].to_numpy(), KMeansConfig(k=8), engine=engine)
wall = time.perf_counter() - t0
peak = status_mb("VmHWM")
print(json.dumps({"wall_s": wall, "peak_mb": peak, "baseline_mb": baseline, **extra}))
"""


def measure(folder: Path, task: str, engine: str = "local") -> dict:
    """Run one measurement in a fresh process; its JSON result."""
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(folder), task, engine], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from benchmarks._common import report

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/scale"))
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--ray-size", type=int, default=100_000)
    args = ap.parse_args()
    os.environ.setdefault("CURATE_NO_PROGRESS", "1")
    lines = [
        f"synthetic {D}-d float32 embeddings on disk, memory-mapped; 2 classes, attribute agreement {STRENGTH}",
        "N | task | engine | wall s | us per sample | peak RSS MB | RSS before the matrix MB | matrix MB"
        " | peak / matrix | (peak - before) / matrix | note",
    ]
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = [(n, "detect+select", "local") for n in sizes] + [(n, "cluster", "local") for n in sizes]
    if args.ray_size:
        runs += [(args.ray_size, "detect+select", "ray"), (args.ray_size, "cluster", "ray")]
    for n, task, engine in runs:
        folder = args.work / f"n{n}"
        t = time.perf_counter()
        write_embeddings(folder, n)
        print(f"data n={n}: {time.perf_counter() - t:.1f} s", flush=True)
        r = measure(folder, task, engine)
        matrix_mb = n * D * 4 / 2**20
        note = f"AUROC {r['auroc']:.3f}, {r['manifest_rows']} manifest rows" if "auroc" in r else "k = 8 per class"
        lines.append(
            f"{n} | {task} | {engine} | {r['wall_s']:.1f} | {1e6 * r['wall_s'] / n:.1f} | {r['peak_mb']:.0f} | "
            f"{r['baseline_mb']:.0f} | {matrix_mb:.0f} | {r['peak_mb'] / matrix_mb:.2f} | "
            f"{(r['peak_mb'] - r['baseline_mb']) / matrix_mb:.2f} | {note}"
        )
        print(lines[-1], flush=True)
    report("scale", lines)


if __name__ == "__main__":
    main()
