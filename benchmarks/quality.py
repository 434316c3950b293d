"""Worst-group quality of every method on every built-in benchmark: ``curate run`` end to end.

For each benchmark (default sizes; digits-color and fmnist-textures with EfficientNet-Lite0,
fortunes-cue with MiniLM), each method of ``curate run`` and seeds 0, 1, 2 (the seed of dynamics,
detection, selection and training; the dataset and its embeddings are fixed), this runs the whole
pipeline with default settings and reports test ``acc_wg`` and ``acc_avg`` as mean ± std, and the
share of the ERM → oracle worst-group gap each method closes (from the means). Methods that use
true group labels are marked. Embeddings, dynamics and discoveries are cached in each benchmark's
workspace, so a rerun is cheap.

Run: ``.venv/bin/python -m benchmarks.quality [--only fmnist-textures] [--seeds 3]
[--data NAME=DIR] [--workspace NAME=DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

BENCHES = {"digits-color": "efficientnet-lite0", "fmnist-textures": "efficientnet-lite0", "fortunes-cue": "minilm"}
IMAGE_ONLY = {"masktune"}


def _pairs(items: list[str]) -> dict[str, Path]:
    return {k: Path(v) for k, v in (i.split("=", 1) for i in items)}


def export_for_spuco(table, emb, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Standardised embeddings, labels and val/test groups of one benchmark for spuco_baselines.py."""
    import numpy as np

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    train = emb.select(table.split("train").frame["sample_id"]).matrix
    mu, sd = train.mean(0), np.where(train.std(0) > 1e-8, train.std(0), 1.0)
    for split in ("train", "val", "test"):
        f = table.split(split).frame
        out[f"x_{split}"] = ((emb.select(f["sample_id"]).matrix - mu) / sd).astype(np.float32)
        out[f"y_{split}"] = f["label"].to_numpy()
        out[f"g_{split}"] = f["group"].to_numpy()
    np.savez(path, **out)


def main() -> None:
    from benchmarks._common import report
    from curate import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/quality"))
    ap.add_argument("--only", action="append", default=None)
    ap.add_argument("--methods", default=",".join(api.RUN_METHODS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", action="append", default=[], help="NAME=DIR: an existing benchmark folder")
    ap.add_argument("--workspace", action="append", default=[], help="NAME=DIR: an existing workspace")
    ap.add_argument(
        "--spuco",
        type=Path,
        default=None,
        help="DIR: export embeddings for spuco_baselines.py there, and read its spuco.json",
    )
    args = ap.parse_args()
    data_dirs, ws_dirs = _pairs(args.data), _pairs(args.workspace)
    methods = args.methods.split(",")
    lines = [
        f"seeds: {args.seeds}; default settings of `curate run`; test split; mean ± std over seeds",
        "benchmark | method | group labels used | acc_wg | acc_avg | share of ERM->oracle WGA gap closed | minutes per run",
    ]
    for name, encoder in BENCHES.items():
        if args.only and name not in args.only:
            continue
        data = data_dirs.get(name, args.work / name / "data")
        if not (data / "metadata.csv").exists():
            api.make_benchmark(name, data, seed=0)
        table = api.load_dataset(data / "metadata.csv")
        ws = ws_dirs.get(name, args.work / name / "ws")
        if args.spuco is not None:
            export_for_spuco(table, api.embed(table, encoder, workspace=ws), args.spuco / f"{name}.npz")
        results: dict[str, list[dict]] = {}
        for method in methods:
            if method in IMAGE_ONLY and table.modality != "image":
                continue
            for seed in range(args.seeds):
                out = args.work / name / f"seed{seed}" / method
                done = out / "metrics.json"
                if done.exists():
                    metrics = json.loads(done.read_text())
                else:
                    metrics = api.run(table, method=method, out=out, encoder=encoder, seed=seed, workspace=ws)
                results.setdefault(method, []).append(metrics)
                print(f"{name} {method} seed {seed}: acc_wg {metrics['acc_wg']:.4f} acc_avg {metrics['acc_avg']:.4f}")

        erm = statistics.fmean(m["acc_wg"] for m in results["erm"])
        oracle = statistics.fmean(m["acc_wg"] for m in results["oracle"]) if "oracle" in results else float("nan")
        for method, runs in results.items():
            wg = [m["acc_wg"] for m in runs]
            avg = [m["acc_avg"] for m in runs]
            sd = statistics.stdev if len(runs) > 1 else (lambda _: 0.0)
            gap = (statistics.fmean(wg) - erm) / (oracle - erm) if oracle > erm else float("nan")
            walls = [m["wall_s"] for m in runs if "wall_s" in m]
            minutes = f"{statistics.fmean(walls) / 60:.1f}" if walls else "n/a (timed before wall_s was recorded)"
            lines.append(
                f"{name} | {method} | {runs[0]['group_labels']} | {statistics.fmean(wg):.3f} ± {sd(wg):.3f} | "
                f"{statistics.fmean(avg):.3f} ± {sd(avg):.3f} | {gap:+.0%} | {minutes}"
            )
        spuco = args.spuco / "spuco.json" if args.spuco is not None else None
        if spuco is not None and spuco.exists():
            labels = {"spuco dfr": "true val groups (last-layer retraining set)"}
            found = json.loads(spuco.read_text())
            for method, runs in found.get(name, {}).items():
                wg = [r["acc_wg"] for r in runs]
                avg = [r["acc_avg"] for r in runs]
                sd = statistics.stdev if len(runs) > 1 else (lambda _: 0.0)
                gap = (statistics.fmean(wg) - erm) / (oracle - erm) if oracle > erm else float("nan")
                lines.append(
                    f"{name} | {method} (SpuCo {found['_spuco_version']}, {len(runs)} seed{'s' if len(runs) > 1 else ''}) | {labels.get(method, 'none (label-free)')} | "
                    f"{statistics.fmean(wg):.3f} ± {sd(wg):.3f} | {statistics.fmean(avg):.3f} ± {sd(avg):.3f} | "
                    f"{gap:+.0%} | n/a (own venv)"
                )
    suffix = "" if not args.only else "-" + "-".join(args.only)
    report(f"quality{suffix}", lines)


if __name__ == "__main__":
    main()
