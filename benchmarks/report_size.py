"""The HTML report's size and build time as the workspace grows: a synthetic image dataset of n train
images (16-px PNGs: a bar whose orientation is the class on a background whose colour is the spurious
attribute, 95% aligned; SubpopBench layout), random 64-d embeddings with the attribute as a direction,
the ``knn`` detection, a ``balance`` manifest and a head fine-tuned on it; then ``curate report``
(report.md + report.html). The page must stay usable: it draws a sample (≤ 5,000 map points, ≤ 24
thumbnails a card, 20 flagged rows) and stays under ~20 MB whatever n.
Run: ``.venv/bin/python -m benchmarks.report_size [--n 1000 --n 100000 --n 1000000]`` (default: the first two).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")


def synthetic(out: Path, n: int, per_group: int = 50, seed: int = 0):  # type: ignore[no-untyped-def]
    """Write ``n`` train images (and ``per_group`` val/test images per group) and load the dataset."""
    import numpy as np
    import polars as pl
    from PIL import Image

    from curate import api

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    a = np.where(rng.random(n) < 0.95, y, 1 - y)
    ev = np.repeat(np.arange(4), per_group)
    ys = np.concatenate([y, ev // 2, ev // 2])
    As = np.concatenate([a, ev % 2, ev % 2])
    split = np.concatenate([np.zeros(n, int), np.ones(4 * per_group, int), np.full(4 * per_group, 2)])
    (out / "images").mkdir(parents=True)
    names = []
    for i, (yi, ai) in enumerate(zip(ys, As, strict=True)):
        img = np.zeros((16, 16, 3), np.uint8)
        img[:] = (200, 60, 60) if ai else (60, 60, 200)
        if yi:
            img[7:9, 2:14] = 255
        else:
            img[2:14, 7:9] = 255
        img = np.clip(img.astype(int) + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)
        names.append(f"images/s{i:07d}.png")
        Image.fromarray(img).save(out / names[-1])
    frame = pl.DataFrame(
        {"id": [f"s{i:07d}" for i in range(len(ys))], "filename": names, "split": split, "y": ys, "a": As}
    )
    frame.write_csv(out / "metadata.csv")
    return api.load_dataset(out / "metadata.csv")


def one(n: int, work: Path) -> str:
    """Build the workspace and the run for ``n`` train samples, write the report; one result line."""
    import numpy as np

    from benchmarks._common import timed
    from curate import api
    from curate.embed import EmbeddingTable

    root = work / f"n{n}"
    shutil.rmtree(root, ignore_errors=True)
    t_data, table = timed(lambda: synthetic(root / "data", n))
    ws = api.Workspace(root / "ws").attach(table)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(len(table), 64)).astype(np.float32)
    x[:, 0] += 3.0 * (2 * table.frame["a"].to_numpy() - 1)
    x[:, 1] += 1.5 * (2 * table.frame["label"].to_numpy() - 1)
    emb = EmbeddingTable(table.ids, x, {"encoder": "planted"})
    ws.record("embed", "planted", emb.save(root / "ws" / "embed" / "planted"))
    t_det, disc = timed(lambda: api.detect(table, embeddings=emb, detector="knn"))
    api.save_discovery(ws, disc)
    manifest = api.select("balance", table, disc)
    run = root / "runs" / "balance"
    api.finetune(table, emb, manifest, api.FinetuneConfig(epochs=5), out=run, device="cpu")
    t_rep, md = timed(lambda: api.report([run], root / "report", workspace=root / "ws"))
    html = Path(md).with_name("report.html")
    mb = html.stat().st_size / 1e6
    return f"{n:>7,} train samples | report.html {mb:5.1f} MB | report (md + html) {t_rep:5.1f} s | detect {t_det:5.1f} s | data {t_data:5.1f} s"


def main() -> None:
    from benchmarks._common import report

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/bench/report_size"))
    ap.add_argument("--n", type=int, action="append", default=None)
    args = ap.parse_args()
    lines = ["n | size | time (2-core CPU)"]
    for n in args.n or [1000, 100_000]:
        lines.append(one(n, args.work))
        print(lines[-1], flush=True)
    report("report_size", lines)


if __name__ == "__main__":
    main()
