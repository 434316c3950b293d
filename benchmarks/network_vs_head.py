"""ERM and the pseudo-group-balanced manifest, trained two ways: the pretrained network fine-tuned
end to end (``curate run --backbone network``) and a head on its frozen embeddings (``--backbone
head``), on the built-in image benchmarks, 3 seeds: test worst-group and mean accuracy.

Labels used: no train group labels for either method (``balance`` balances the pseudo-groups of
the detector ``curate run`` picks); model selection (the epoch, the detector, the head used for
the choice) on the validation split's true groups, as in the papers. Every run is ``curate run``
with its defaults for the device (here: CPU, EfficientNet-Lite0 at 96 px, every layer trained, 8
epochs of SGD; see ``FinetuneConfig``). A finished run is reused only when the curate source code
and the settings are the ones it was made with (its folder is keyed by both).

Run: ``.venv/bin/python -m benchmarks.network_vs_head [--only digits-color] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

BENCHES = ("digits-color", "fmnist-textures")
METHODS = ("erm", "balance")
BACKBONES = ("head", "network")
ENCODER = "efficientnet-lite0"


def code_version() -> str:
    """A hash of every curate source file: a cached run is reused only by the same code."""
    root = Path(__file__).resolve().parents[1] / "curate"
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()[:12]


def main() -> None:
    from benchmarks._common import built_benchmark, report, workspace_of
    from curate import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/network_vs_head"))
    ap.add_argument("--only", action="append", default=None)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    version = code_version()
    lines = [
        f"seeds: {args.seeds}; `curate run` defaults on this machine (CPU): EfficientNet-Lite0; curate code {version}",
        "train group labels: none (balance: pseudo-groups); model selection: true validation groups",
        "benchmark | method | backbone | acc_wg | acc_avg | minutes per run",
    ]
    for name in BENCHES:
        if args.only and name not in args.only:
            continue
        data = args.work / name / "data"
        table = built_benchmark(name, data)
        ws = workspace_of(args.work / name, table)
        for method in METHODS:
            for backbone in BACKBONES:
                runs = []
                for seed in range(args.seeds):
                    key = hashlib.sha256(json.dumps([version, name, method, backbone, seed]).encode()).hexdigest()[:10]
                    out = args.work / name / f"{method}-{backbone}-seed{seed}-{key}"
                    done = out / "metrics.json"
                    if done.exists():  # a run folder is swapped in whole: metrics.json means finished
                        metrics = json.loads(done.read_text())
                    else:
                        metrics = api.run(
                            table, method=method, out=out, encoder=ENCODER, seed=seed, workspace=ws,
                            device="cpu", backbone=backbone,
                        )  # fmt: skip
                    timing = out / "timing.json"  # timings live apart from metrics.json (older runs: inside)
                    metrics["wall_s"] = (
                        json.loads(timing.read_text())["wall_s"] if timing.exists() else metrics["wall_s"]
                    )
                    runs.append(metrics)
                    print(f"{name} {method} {backbone} seed {seed}: acc_wg {metrics['acc_wg']:.4f} "
                          f"acc_avg {metrics['acc_avg']:.4f} ({metrics['wall_s']:.0f} s)", flush=True)  # fmt: skip
                wg, avg = [m["acc_wg"] for m in runs], [m["acc_avg"] for m in runs]
                sd = statistics.stdev if len(runs) > 1 else (lambda _: 0.0)
                minutes = statistics.fmean(m["wall_s"] for m in runs) / 60
                lines.append(
                    f"{name} | {method} | {runs[0]['backbone']} | {statistics.fmean(wg):.3f} ± {sd(wg):.3f} | "
                    f"{statistics.fmean(avg):.3f} ± {sd(avg):.3f} | {minutes:.1f}"
                )
    suffix = "" if not args.only else "-" + "-".join(args.only)
    report(f"network_vs_head{suffix}", lines)


if __name__ == "__main__":
    main()
