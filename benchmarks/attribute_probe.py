"""Is the spurious attribute in the embedding, and do the detectors find its carriers?

For each image benchmark (default size, EfficientNet-Lite0 embeddings from the quality benchmark's
workspace): a logistic probe trained on the train split's TRUE attribute labels, scored on test
(AUROC, overall and within each class), and each detector's minority AUROC on train (proxy dynamics
of seed 0). A decodable attribute that no detector finds is a low-variance direction: present, but
neither dominating distances (knn, cluster) nor used by the ERM proxy (jtt, el2n).
Diagnostic only: the probe uses group labels no curate method sees.

Run: ``.venv/bin/python -m benchmarks.attribute_probe [--work work/quality]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

DETECTORS = ("features", "ensemble", "knn", "jtt", "el2n", "cluster", "spare")


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from benchmarks._common import built_benchmark, report, workspace_of
    from curate import api
    from curate.data.workspace import Workspace
    from curate.pipeline.detect import cached_detect, detection_auroc
    from curate.pipeline.dynamics import record_dynamics
    from curate.pipeline.embed import embed

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/quality"))
    ap.add_argument("--benchmarks", default="digits-color,fmnist-textures,fmnist-mark")
    args = ap.parse_args()
    lines = [
        "benchmark | attribute probe test AUROC: all / class 0 / class 1 | minority AUROC of each detector (train)"
    ]
    for name in args.benchmarks.split(","):
        data = args.work / name / "data"
        table = built_benchmark(name, data)
        ws = workspace_of(args.work / name, table)
        emb = embed(table, "efficientnet-lite0", device="cpu", workspace=ws)
        tr, te = table.split("train").frame, table.split("test").frame
        x_tr, x_te = emb.select(tr["sample_id"]).matrix, emb.select(te["sample_id"]).matrix
        probe = LogisticRegression(C=1.0, max_iter=3000).fit(x_tr, tr["a"].to_numpy())
        p, a, y = probe.predict_proba(x_te)[:, 1], te["a"].to_numpy(), te["label"].to_numpy()
        aucs = [roc_auc_score(a, p)] + [roc_auc_score(a[y == c], p[y == c]) for c in (0, 1)]
        proxy = api.ProxyConfig(seed=0)
        log = record_dynamics(table, emb, config=proxy, device="cpu", workspace=ws)
        root = Workspace(ws).path
        found = {
            d: detection_auroc(table, cached_detect(table, emb, log, proxy, {"detector": d}, root)) for d in DETECTORS
        }
        lines.append(
            f"{name} | {' / '.join(f'{v:.3f}' for v in aucs)} | " + ", ".join(f"{d} {v:.3f}" for d, v in found.items())
        )
        print(lines[-1], flush=True)
    report("attribute_probe", lines)


if __name__ == "__main__":
    main()
