"""How much of each label-free method's shortfall is discovery's: the same method, the same defaults,
with its pseudo-groups replaced by the true train groups.

- ``prune`` with carriers from the true attribute column ``a`` (``[select] attribute = "a"``: the
  paper's identifiable setting with the attribute known) against ``prune`` on pseudo-groups;
- ``mix`` (DISPEL's last layer) with its group-labelled set from the true train groups
  (``[finetune] source = "train"``) against ``mix`` on pseudo-groups;
- ``balance`` on the true train groups is ``oracle``.

A row whose true-group variant also falls short of the ERM → oracle gap is short by the method on
that data, not by discovery. Two more tables run prune at each fixed ``p`` of the tuning grid, with
the true attribute and with the default pseudo-groups (test and val WGA, means over seeds), which
tells a method that cannot close the gap from a validation choice of ``p`` that misses the best one.
Their last column is a ceiling, not a selection rule: each seed's best ``p`` chosen on the *test*
split; no choice of ``p`` on validation can pass it (its gap share has a decimal, since it is
read against a target). Each run is ``curate run`` with its defaults (heads on EfficientNet-Lite0
or MiniLM embeddings on a CPU), 3 seeds, model selection on true val groups; gap shares from the means.

Run: ``.venv/bin/python -m benchmarks.known_groups [--benchmarks digits-color,fortunes-cue] [--seeds 3]``.
A subset of ``--benchmarks`` writes ``benchmarks/results/known_groups-<benchmarks>.txt`` (the full file stays).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

VARIANTS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    # row name: (method, run config)
    "erm": ("erm", {}),
    "prune (pseudo)": ("prune", {}),
    "prune (true attribute)": ("prune", {"select": {"attribute": "a"}}),
    "mix (pseudo)": ("mix", {}),
    "mix (true train groups)": ("mix", {"finetune": {"source": "train"}}),
    "balance (pseudo)": ("balance", {}),
    "oracle = balance (true train groups)": ("oracle", {}),
}


def main() -> None:
    from benchmarks._common import built_benchmark, gap_closed, report, run_once, workspace_of
    from benchmarks.quality import BENCHES, code_version
    from curate.pipeline.tuning import RUN_GRIDS

    prune_fractions = RUN_GRIDS["prune"]["fraction"]  # the p `curate run` tunes prune over
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/quality"))
    ap.add_argument("--benchmarks", default=",".join(BENCHES))
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    version = code_version()
    lines = [
        f"`curate run` defaults; {args.seeds} seeds; model selection: true val groups; curate code {version}",
        "benchmark | row | train groups | acc_wg | acc_avg | ERM->oracle WGA gap closed | chosen (per seed)",
    ]
    header = "benchmark | " + " | ".join(f"p {p}" for p in prune_fractions) + " | best p per seed on test (ceiling)"
    carriers = {"true attribute": {"attribute": "a"}, "pseudo-groups": {}}
    by_p = {
        how: [f"prune with the {how} at each fixed p: test WGA / val WGA (means over seeds); gap closed", header]
        for how in carriers
    }
    for name in args.benchmarks.split(","):
        table = built_benchmark(name, args.work / name / "data")
        common = {"encoder": BENCHES[name], "workspace": workspace_of(args.work / name, table), "device": "cpu"}
        results: dict[str, list[dict[str, Any]]] = {}
        for row, (method, config) in VARIANTS.items():
            for seed in range(args.seeds):
                m = run_once(args.work / name, f"known-{method}-seed{seed}", [version, name, method, config, seed],
                             table, method=method, seed=seed, config=config, **common)  # fmt: skip
                results.setdefault(row, []).append(m)
                print(f"{name} {row} seed {seed}: acc_wg {m['acc_wg']:.4f}", flush=True)
        erm = statistics.fmean(m["acc_wg"] for m in results["erm"])
        oracle = statistics.fmean(m["acc_wg"] for m in results["oracle = balance (true train groups)"])
        gap = functools.partial(gap_closed, erm=erm, oracle=oracle)

        for row, runs in results.items():
            wg, avg = [m["acc_wg"] for m in runs], [m["acc_avg"] for m in runs]
            lines.append(
                f"{name} | {row} | {runs[0]['train_groups']} | {statistics.fmean(wg):.3f} ± {statistics.stdev(wg):.3f}"
                f" | {statistics.fmean(avg):.3f} ± {statistics.stdev(avg):.3f} | {gap(statistics.fmean(wg)):+.0%}"
                f" | {_chosen(runs)}"
            )
        for how, select in carriers.items():
            cells, by_seed = [], []
            for p in prune_fractions:
                config = {"select": {**select, "fraction": p}}
                runs = []
                for seed in range(args.seeds):
                    tag = f"known-prune-{'' if select else 'pseudo-'}p{p}-seed{seed}"
                    runs.append(run_once(args.work / name, tag, [version, name, "prune", config, seed], table,
                                         method="prune", seed=seed, config=config, **common))  # fmt: skip
                test = statistics.fmean(m["acc_wg"] for m in runs)
                cells.append(
                    f"{test:.3f} / {statistics.fmean(m['val']['acc_wg'] for m in runs):.3f} ({gap(test):+.0%})"
                )
                by_seed.append([m["acc_wg"] for m in runs])
            ceiling = statistics.fmean(max(column) for column in zip(*by_seed, strict=True))
            by_p[how].append(f"{name} | " + " | ".join(cells) + f" | {ceiling:.3f} ({gap(ceiling):+.1%})")
            print(by_p[how][-1], flush=True)
    for table_lines in by_p.values():
        lines += table_lines
    chosen = args.benchmarks.split(",")
    report("known_groups" + ("" if chosen == list(BENCHES) else "-" + "-".join(chosen)), lines)


def _chosen(runs: list[dict[str, Any]]) -> str:
    """What validation chose in each run: prune's ``p``, DISPEL's ``s``/``C``, the detector; "-" if nothing."""
    out = []
    for m in runs:
        parts = []
        if m.get("tuning"):
            parts += [f"{k}={v}" for k, v in m["tuning"]["chosen"].items()]
        if "dispel" in m:
            parts += [f"s={m['dispel']['s']}", f"C={m['dispel']['C']}"]
        if m.get("detector_choice"):
            parts.append(m["detector_choice"]["chosen"])
        out.append(" ".join(parts) or "-")
    return "; ".join(out)


if __name__ == "__main__":
    main()
