"""MaskTune where its paper says it works — a localised shortcut — against its own ERM.

``curate run -m masktune`` (EfficientNet-Lite0 fine-tuned; on a CPU at 96 px, 8 epochs) on
``fmnist-mark`` (a 6×6 coloured corner mark carries the shortcut) and on ``digits-color`` (the whole
background carries it), 3 seeds: test worst-group and mean accuracy of MaskTune and of the ERM
network it starts from, the share of pixels masked, the spread of its test predictions over the
classes (a collapse to one class would show), and selective accuracy at 90% coverage.
Train groups: none; model selection: true validation groups (the papers').

Run: ``.venv/bin/python -m benchmarks.masktune_mark [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")


def main() -> None:
    import polars as pl

    from benchmarks._common import built_benchmark, report, workspace_of
    from benchmarks.quality import code_version
    from curate import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/masktune"))
    ap.add_argument("--benchmarks", default="fmnist-mark,digits-color")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    version = code_version()
    lines = [
        f"`curate run -m masktune` defaults (CPU); {args.seeds} seeds; curate code {version}",
        "train groups: none; model selection: true val groups",
        "benchmark | model | acc_wg | acc_avg | masked pixels | smallest class share of test predictions | "
        "selective accuracy at 90% coverage",
    ]
    for name in args.benchmarks.split(","):
        data = args.work / name / "data"
        table = built_benchmark(name, data)
        runs = []
        for seed in range(args.seeds):
            key = hashlib.sha256(json.dumps([version, name, seed]).encode()).hexdigest()[:10]
            out = args.work / name / f"seed{seed}-{key}"
            done = out / "metrics.json"
            m = json.loads(done.read_text()) if done.exists() else api.run(
                table, method="masktune", out=out, seed=seed, workspace=workspace_of(args.work / name, table), device="cpu"
            )  # fmt: skip
            preds = pl.read_parquet(out / "predictions.parquet").join(
                table.split("test").frame.select("sample_id"), on="sample_id"
            )
            m["_min_share"] = float(preds["prediction"].value_counts()["count"].min() / preds.height)
            if preds["prediction"].n_unique() < table.n_classes:
                m["_min_share"] = 0.0
            runs.append(m)
            print(name, seed, m["acc_wg"], m["erm_test"]["acc_wg"], flush=True)

        def ms(values: list[float]) -> str:
            return f"{statistics.fmean(values):.3f} ± {statistics.pstdev(values):.3f}"

        sel = [next(c["accuracy"] for c in m["selective"] if c["target_coverage"] == 0.9) for m in runs]
        lines.append(
            f"{name} | MaskTune | {ms([m['acc_wg'] for m in runs])} | {ms([m['acc_avg'] for m in runs])} | "
            f"{ms([m['masked_share'] for m in runs])} | {ms([m['_min_share'] for m in runs])} | {ms(sel)}"
        )
        lines.append(
            f"{name} | its ERM | {ms([m['erm_test']['acc_wg'] for m in runs])} | "
            f"{ms([m['erm_test']['acc_avg'] for m in runs])} | - | - | -"
        )
    report("masktune_mark", lines)


if __name__ == "__main__":
    main()
