"""The data-pruning paper's own ablation: at equal ``p``, pruning the hardest carriers (by early EL2N)
against pruning the easiest and a random subset of the same carriers.

Each run is ``curate run -m prune`` with its defaults (heads on EfficientNet-Lite0 or MiniLM
embeddings on a CPU; the detector chosen on validation; EL2N from the proxy's eval-mode pass at 40% of training;
carriers = each class's majority pseudo-group), with ``p`` fixed so that only the order differs.
Train groups: pseudo; model selection: true validation groups (as the papers). Every built-in
benchmark by default, the ones where prune does not help included; mean ± sample std over seeds.

Run: ``.venv/bin/python -m benchmarks.prune_ablation [--fractions 0.5,0.9] [--seeds 3]``.
A subset of ``--benchmarks`` writes ``benchmarks/results/prune_ablation-<benchmarks>.txt`` (the full file stays).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")


ALL = ("digits-color", "fmnist-textures", "fmnist-mark", "fortunes-cue")


def main() -> None:
    from benchmarks._common import built_benchmark, report, run_once, workspace_of
    from benchmarks.quality import code_version

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/prune_ablation"))
    ap.add_argument("--benchmarks", default=",".join(ALL))
    ap.add_argument("--fractions", default="0.5,0.9")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    version = code_version()
    lines = [
        f"`curate run -m prune` defaults with p fixed; {args.seeds} seeds; curate code {version}",
        "train groups: pseudo; model selection: true val groups",
        "benchmark | p | order | acc_wg | acc_avg",
    ]
    for name in args.benchmarks.split(","):
        data = args.work / name / "data"
        table = built_benchmark(name, data)
        for p in (float(f) for f in args.fractions.split(",")):
            for order in ("hardest", "easiest", "random"):
                runs = []
                for seed in range(args.seeds):
                    runs.append(run_once(
                        args.work / name, f"p{p}-{order}-seed{seed}", [version, name, p, order, seed], table,
                        method="prune", seed=seed, workspace=workspace_of(args.work / name, table),
                        config={"select": {"fraction": p, "order": order}}, device="cpu",
                    ))  # fmt: skip
                wg, avg = [m["acc_wg"] for m in runs], [m["acc_avg"] for m in runs]
                line = (
                    f"{name} | {p} | {order} | {statistics.fmean(wg):.3f} ± {statistics.stdev(wg):.3f} | "
                    f"{statistics.fmean(avg):.3f} ± {statistics.stdev(avg):.3f}"
                )
                lines.append(line)
                print(line, flush=True)
    chosen = args.benchmarks.split(",")
    report("prune_ablation" + ("" if chosen == list(ALL) else "-" + "-".join(chosen)), lines)


if __name__ == "__main__":
    main()
