"""Where ``balance`` cuts each class's pseudo-minority: the default bias-only detector's scores
(``features`` on images, ``artifacts`` on text) split by its own Otsu cut, by the bias-only model's
error set (p(label) < 0.5), and at each class's top share of :data:`RUN_GRIDS` ``["balance"]``; each
partition balanced and a head trained on it as ``curate run -m balance`` does, with model selection
on true val groups. Prints, per cut, the rows flagged and the true minority rows among them (train,
against the true groups, which the detector never sees), and test / val WGA (means over seeds).

Why: ``curate run -m balance`` picks the share on validation; this table shows what each point of
the grid gives and whether validation ranks them as the test does. The detector here is fixed (the
default); ``curate run`` first picks the detector on validation (README, "Detectors").

Run: ``.venv/bin/python -m benchmarks.balance_cuts [--benchmarks fmnist-mark] [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path
from typing import Any

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

ALL = ("digits-color", "fmnist-textures", "fmnist-mark", "fortunes-cue")


def _cuts(disc: Any, shares: tuple[float, ...]) -> dict[str, Any]:
    """The partitions compared: the detector's own (Otsu), the error set, each top share."""
    import numpy as np

    from benchmarks.detection import ERROR_SET
    from curate._core import schema as S
    from curate.detect import resplit
    from curate.detect._base import CONFLICT, build_discovery

    rows = disc.scores.select(S.SAMPLE_ID, S.LABEL)
    conflict = disc.scores[CONFLICT].to_numpy()
    errors = (conflict > ERROR_SET).astype(np.int64)
    out = {"otsu (the detector's)": disc}
    out["error set"] = build_discovery(
        rows, conflict, errors, detector=disc.detector, config=disc.config | {"cut": "error set"}, dynamics=None
    )
    out |= {f"top {share:.0%}": resplit(disc, share) for share in shares}
    return out


def main() -> None:
    import polars as pl

    from benchmarks._common import built_benchmark, report, workspace_of
    from benchmarks.quality import code_version
    from curate._core import schema as S
    from curate.data.workspace import Workspace
    from curate.eval import minority_flags
    from curate.finetune import TrainRequest, train
    from curate.pipeline import embed, record_dynamics
    from curate.pipeline._run_config import check_run_config
    from curate.pipeline.detect import DEFAULT_DETECTOR, cached_detect
    from curate.pipeline.dynamics import DYNAMICS_VERSION
    from curate.pipeline.run_plan import plan_method
    from curate.pipeline.select import select
    from curate.pipeline.tuning import RUN_GRIDS

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/quality"))
    ap.add_argument("--benchmarks", default=",".join(ALL))
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    shares = tuple(s for s in RUN_GRIDS["balance"]["minority_share"] if s is not None)
    lines = [
        f"balance's manifest at each cut of the default detector's scores; a head as `curate run -m balance`; "
        f"{args.seeds} seeds; curate code {code_version()}",
        "train groups: pseudo (the cut named); model selection: true val groups",
        "benchmark | detector | cut | true minority rows flagged / rows flagged (train, seed 0) | test WGA | val WGA",
    ]
    for name in args.benchmarks.split(","):
        table = built_benchmark(name, args.work / name / "data")
        ws = workspace_of(args.work / name, table)
        truth = minority_flags(table.frame).select(S.SAMPLE_ID, pl.col("minority").alias("true"))
        results: dict[str, list[tuple[float, float]]] = {}
        counts: dict[str, str] = {}
        for seed in range(args.seeds):
            plan = plan_method("balance", check_run_config({}), dev="cpu", backbone="head", seed=seed, encoder=None,
                               table=table)  # fmt: skip
            emb = embed(table, plan.encoder, device="cpu", workspace=ws)
            log = record_dynamics(table, emb, config=plan.proxy, device="cpu", workspace=ws)
            dyn = {"version": DYNAMICS_VERSION, **plan.proxy.to_dict()}
            disc = cached_detect(table, emb, log, plan.proxy, {"detector": DEFAULT_DETECTOR}, Workspace(ws).path,
                                 "cpu", dyn)  # fmt: skip
            for cut, d in _cuts(disc, shares).items():
                flagged = d.scores.filter(pl.col("cluster") == 1).join(truth, on=S.SAMPLE_ID)
                counts.setdefault(cut, f"{int(flagged['true'].sum())} / {flagged.height}")
                manifest = select("balance", table, d, plan.sel_cfg, dynamics=log)
                pseudo = d.scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP)
                r = train(
                    "erm", TrainRequest(table, manifest, emb, pseudo, "cpu", select_on="val-groups"), plan.train_cfg
                )
                results.setdefault(cut, []).append((r.test.acc_wg, r.val.acc_wg))
                print(f"{name} seed {seed} {cut}: test WGA {r.test.acc_wg:.4f}, val WGA {r.val.acc_wg:.4f}", flush=True)
        for cut, runs in results.items():
            test, val = [t for t, _ in runs], [v for _, v in runs]
            lines.append(
                f"{name} | {disc.detector} | {cut} | {counts[cut]} | {statistics.fmean(test):.3f} ± "
                f"{statistics.stdev(test):.3f} | {statistics.fmean(val):.3f}"
            )
    chosen = args.benchmarks.split(",")
    report("balance_cuts" + ("" if chosen == list(ALL) else "-" + "-".join(chosen)), lines)


if __name__ == "__main__":
    main()
