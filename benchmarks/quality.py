"""Worst-group quality of every method on every built-in benchmark: ``curate run`` end to end.

For each benchmark (default sizes; images with EfficientNet-Lite0, fortunes-cue with MiniLM), each
method of ``curate run``, seeds 0, 1, 2 (the seed of dynamics, detection, selection and training;
the dataset and its embeddings are fixed) and each model-selection mode (``val-groups``: true
validation groups, as the papers; ``pseudo-groups``: no group labels anywhere, for the methods that
train without them), this runs the whole pipeline with default settings and reports test ``acc_wg``
and ``acc_avg`` as mean ± std, and the share of the ERM → oracle worst-group gap each method closes
(from the means, within the same selection mode). Every row says which labels it used: the groups
the method trains with, and what model selection saw.

A finished run is reused only when the curate source code and the settings are the ones it was
made with: its folder is keyed by a hash of every ``curate/*.py`` file and of (benchmark, method,
seed, mode). Embeddings are cached in each benchmark's workspace.

Run: ``.venv/bin/python -m benchmarks.quality [--only fmnist-textures] [--seeds 3] [--modes val-groups,pseudo-groups]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

BENCHES = {
    "digits-color": "efficientnet-lite0",
    "fmnist-textures": "efficientnet-lite0",
    "fmnist-mark": "efficientnet-lite0",
    "fortunes-cue": "minilm",
}
MASKTUNE_BENCHES = ("digits-color", "fmnist-mark")  # a fine-tuned network per run: the small image benchmarks
LABEL_FREE_TRAINING = ("none", "pseudo (inferred by the detector)")


def code_version() -> str:
    """A hash of every curate source file: a cached run is reused only by the same code."""
    root = Path(__file__).resolve().parents[1] / "curate"
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()[:12]


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
    from benchmarks._common import built_benchmark, gap_closed, report, workspace_of
    from curate import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/quality"))
    ap.add_argument("--only", action="append", default=None)
    ap.add_argument("--methods", default=",".join(api.RUN_METHODS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--modes", default="val-groups,pseudo-groups")
    ap.add_argument("--data", action="append", default=[], help="NAME=DIR: an existing benchmark folder")
    ap.add_argument(
        "--spuco", type=Path, default=None,
        help="DIR: export embeddings for spuco_baselines.py there, and add the rows of its spuco.json",
    )  # fmt: skip
    args = ap.parse_args()
    version = code_version()
    data_dirs = _pairs(args.data)
    methods, modes = args.methods.split(","), args.modes.split(",")
    lines = [
        f"seeds: {args.seeds}; default `curate run` on this machine (CPU: heads on frozen embeddings; MaskTune "
        f"fine-tunes the network); test split; mean ± std over seeds; curate code {version}",
        "benchmark | method | train groups | model selection | acc_wg | acc_avg | ERM->oracle WGA gap closed | minutes per run",
    ]
    for name, encoder in BENCHES.items():
        if args.only and name not in args.only:
            continue
        data = data_dirs.get(name)
        table = api.load_dataset(data / "metadata.csv") if data else built_benchmark(name, args.work / name / "data")
        ws = workspace_of(args.work / name, table)
        if args.spuco is not None:
            export_for_spuco(table, api.embed(table, encoder, workspace=ws), args.spuco / f"{name}.npz")
        for mode in modes:
            results: dict[str, list[dict]] = {}
            for method in methods:
                if method == "masktune" and name not in MASKTUNE_BENCHES:
                    continue
                if mode != "val-groups" and api.RUN_METHODS[method][2] not in LABEL_FREE_TRAINING:
                    continue  # trains with group labels anyway: only the papers' selection mode
                for seed in range(args.seeds):
                    key = hashlib.sha256(json.dumps([version, name, method, seed, mode]).encode()).hexdigest()[:10]
                    out = args.work / name / f"{method}-{mode}-seed{seed}-{key}"
                    done = out / "metrics.json"
                    if done.exists():  # a run folder is swapped in whole: metrics.json means finished
                        metrics = json.loads(done.read_text())
                    else:
                        metrics = api.run(
                            table, method=method, out=out, encoder=encoder, seed=seed, workspace=ws, select_on=mode
                        )
                    timing = out / "timing.json"  # timings live apart from metrics.json (older runs: inside)
                    metrics["wall_s"] = (
                        json.loads(timing.read_text())["wall_s"] if timing.exists() else metrics["wall_s"]
                    )
                    results.setdefault(method, []).append(metrics)
                    print(f"{name} {mode} {method} seed {seed}: acc_wg {metrics['acc_wg']:.4f} "
                          f"acc_avg {metrics['acc_avg']:.4f} ({metrics['wall_s']:.0f} s)", flush=True)  # fmt: skip
            if "erm" not in results:
                continue
            erm = statistics.fmean(m["acc_wg"] for m in results["erm"])
            oracle_runs = results.get("oracle")
            oracle = statistics.fmean(m["acc_wg"] for m in oracle_runs) if oracle_runs else None
            if oracle is None and mode != "val-groups":  # the oracle of the same data, selected on val groups
                oracle = ORACLES.get(name)
            for method, runs in results.items():
                wg, avg = [m["acc_wg"] for m in runs], [m["acc_avg"] for m in runs]
                sd = statistics.stdev if len(runs) > 1 else (lambda _: 0.0)
                gap = gap_closed(statistics.fmean(wg), erm=erm, oracle=oracle)
                minutes = statistics.fmean(m["wall_s"] for m in runs) / 60
                lines.append(
                    f"{name} | {method} | {runs[0]['train_groups']} | {runs[0]['model_selection']} | "
                    f"{statistics.fmean(wg):.3f} ± {sd(wg):.3f} | {statistics.fmean(avg):.3f} ± {sd(avg):.3f} | "
                    f"{gap:+.0%} | {minutes:.1f}"
                )
            if oracle_runs:
                ORACLES[name] = statistics.fmean(m["acc_wg"] for m in oracle_runs)
            spuco = None if args.spuco is None else args.spuco / "spuco.json"
            if mode == "val-groups" and spuco is not None and spuco.exists():
                found = json.loads(spuco.read_text())
                for method, runs in found.get(name, {}).items():
                    train_groups = "true val groups (DFR's last-layer set)" if method == "spuco dfr" else "pseudo"
                    wg, avg = [r["acc_wg"] for r in runs], [r["acc_avg"] for r in runs]
                    sd = statistics.stdev if len(runs) > 1 else (lambda _: 0.0)
                    gap = gap_closed(statistics.fmean(wg), erm=erm, oracle=oracle)
                    lines.append(
                        f"{name} | {method} (SpuCo {found['_spuco_version']}, {len(runs)} seeds) | {train_groups} | "
                        f"true val groups | {statistics.fmean(wg):.3f} ± {sd(wg):.3f} | "
                        f"{statistics.fmean(avg):.3f} ± {sd(avg):.3f} | {gap:+.0%} | n/a (own venv)"
                    )
    suffix = "" if not args.only else "-" + "-".join(args.only)
    report(f"quality{suffix}", lines)


ORACLES: dict[str, float] = {}

if __name__ == "__main__":
    main()
