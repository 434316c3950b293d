"""SPARE on a fine-tuned network: what it finds from the network's own eval-mode outputs early in
training (now), against what it found before (a proxy head retrained on the frozen embeddings).

For each benchmark (default: digits-color and fmnist-mark, EfficientNet-Lite0, seed 0), the ERM
fine-tuning that a ``curate run --backbone network`` records (CPU defaults: 96 px) is recorded once;
then, against the true train groups (SPARE uses none): the minority AUROC of SPARE's conflict
score, the size of its pseudo-minority, the share of it that is true minority (precision) and the
share of the true minority it holds (recall), from the network's outputs (now), from the proxy
retrained to the network's early epoch index (before), and from the proxy's own recording (what a
head run, the CPU default, uses); then SPARE from each recording at every epoch whose outputs it keeps
(the candidates `curate run` picks among on validation; ``epoch`` is the 0-based index).

Run: ``.venv/bin/python -m benchmarks.network_detectors [--only digits-color]``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

BENCHES = {"digits-color": "efficientnet-lite0", "fmnist-mark": "efficientnet-lite0"}


def main() -> None:
    from benchmarks._common import built_benchmark, report, workspace_of
    from curate import api
    from curate.dynamics import DynamicsLog

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/quality"))
    ap.add_argument("--only", action="append", default=None)
    args = ap.parse_args()
    lines = [
        "ERM fine-tuning of EfficientNet-Lite0 as `curate run --backbone network` records it (CPU defaults), "
        "seed 0; detectors use no group labels; scored against the true train groups",
        "benchmark | detector | outputs clustered | epoch | minority AUROC | flagged | precision | recall",
    ]
    for name, encoder in BENCHES.items():
        if args.only and name not in args.only:
            continue
        first = len(lines)
        table = built_benchmark(name, args.work / name / "data")
        ws = workspace_of(args.work / name, table)
        emb = api.embed(table, encoder, workspace=ws)
        net = api.record_network_dynamics(
            table, config=api.FinetuneConfig(backbone=encoder), device="cpu", workspace=ws
        )
        proxy_cfg = api.ProxyConfig()
        proxy = api.record_dynamics(table, emb, config=proxy_cfg, workspace=ws)
        before = DynamicsLog(net.frame, net.eval_pass)  # the network's recording without the outputs pass
        for what, log in (
            ("network eval-mode outputs (now)", net),
            ("proxy head retrained, network's epoch (before)", before),
            ("proxy head recording (head runs)", proxy),
        ):
            d = api.detect(table, embeddings=emb, dynamics=log, detector="spare", proxy_config=proxy_cfg)
            lines.append(_row(name, table, "spare", what, d, d.config["epoch"]))
        # every epoch whose outputs a recording keeps: the candidates `curate run` picks among
        for what, log in (
            ("network eval-mode outputs, each kept epoch", net),
            ("proxy head recording, each kept epoch", proxy),
        ):
            for e in log.outputs.epochs if log.outputs is not None else []:
                d = api.detect(table, embeddings=emb, dynamics=log, detector="spare", proxy_config=proxy_cfg, epoch=e)
                lines.append(_row(name, table, "spare", what, d, e))
        print("\n".join(lines[first:]), flush=True)
    report("network_detectors", lines)


def _row(name: str, table, det: str, what: str, d, epoch: int) -> str:  # type: ignore[no-untyped-def]
    """One result line: AUROC, the detector's minority flag's size, precision and recall."""
    import polars as pl

    from curate import api
    from curate.pipeline.detect import TRUE_MINORITY, score_frame

    s = score_frame(d, table)  # the detector's minority flag and the true one
    flagged = s.filter(pl.col("minority"))
    hits = int(flagged[TRUE_MINORITY].sum())
    return (
        f"{name} | {det} | {what} | {epoch} | {api.detection_auroc(table, d):.3f} | {flagged.height} | "
        f"{hits / max(flagged.height, 1):.3f} | {hits / max(int(s[TRUE_MINORITY].sum()), 1):.3f}"
    )


if __name__ == "__main__":
    main()
