"""Discovery and curation on the built-in benchmarks, measured against their true groups.

For each benchmark (default sizes, seed 0) and its encoder — digits-color, fmnist-textures and
fmnist-mark with EfficientNet-Lite0, fortunes-cue with MiniLM — this embeds, records proxy dynamics (default
ProxyConfig), runs every detector and reports the AUROC of ``conflict_score`` for the true
minority (bias-conflicting) train samples (target >= 0.9 on fmnist-textures and fortunes-cue),
and SPARE's at each epoch whose outputs the recording keeps (the candidates `curate run` picks
among on validation; the table above reads the default, 10% of training), the bias-only detector's
(`features`, `artifacts`) AUROC and Otsu pseudo-minority at each ``top_k`` of 1, 2, 3, 5, 10 (their
shared default is chosen on the image lines), and, for the default
detector, how its pseudo-minority meets the true minority per class, by Otsu's cut and by the
bias-only model's own error set.
Then, with the default detector's pseudo-groups, it builds every selection method's manifest and
reports the distance of its weighted true-group shares from balance (total variation to uniform;
mixing counted by lambda) next to the input's, and checks that the same seed gives byte-identical
manifests. Everything is cached in ``--work`` (rerunning is cheap).
Run: ``.venv/bin/python -m benchmarks.detection [--only fortunes-cue]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
from pathlib import Path

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

BENCHES = {
    "digits-color": "efficientnet-lite0",
    "fmnist-textures": "efficientnet-lite0",
    "fmnist-mark": "efficientnet-lite0",
    "fortunes-cue": "minilm",
}


TOP_KS = (1, 2, 3, 5, 10)
ERROR_SET = 0.5
"""The bias-only model's error set: conflict score 1 - p(label) above this (its mistakes)."""


def _with_minority(table, discovery):  # type: ignore[no-untyped-def]
    """The discovery's train scores with ``minority``: the row is outside its class's largest true group."""
    import polars as pl

    s = discovery.scores.join(table.split("train").frame.select("sample_id", "group"), on="sample_id")
    majority = s.group_by("label", "group").len().sort("len", descending=True).unique("label", keep="first")
    return s.with_columns(~pl.col("group").is_in(majority["group"].to_list()).alias("minority"))


def _flags(table, discovery) -> str:  # type: ignore[no-untyped-def]
    """Per class, how the pseudo-minority of Otsu's cut and of the error set (score > 0.5) meet the true minority."""
    import polars as pl

    s = _with_minority(table, discovery)
    out = []
    for cut, flag in (("otsu", pl.col("cluster") == 1), ("error set", pl.col("conflict_score") > ERROR_SET)):
        per = s.group_by("label").agg(
            (flag & pl.col("minority")).sum().alias("hit"),
            flag.sum().alias("flagged"),
            pl.col("minority").sum().alias("n"),
        )
        out.append(f"{cut} " + ", ".join(f"{h}/{f}/{n}" for _, h, f, n in per.sort("label").iter_rows()))
    return "; ".join(out)


def _at_k(table, discovery) -> str:  # type: ignore[no-untyped-def]
    """AUROC, and how many true minority rows the Otsu pseudo-minority holds, out of how many it flags."""
    import polars as pl

    from curate import api

    flagged = _with_minority(table, discovery).filter(pl.col("cluster") == 1)
    return f"{api.detection_auroc(table, discovery):.3f} ({flagged['minority'].sum()}/{flagged.height})"


def main() -> None:
    from benchmarks._common import built_benchmark, report, workspace_of
    from curate import api

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/bench"))
    ap.add_argument("--only", action="append", default=None)
    args = ap.parse_args()
    from curate.dynamics.log import output_epochs

    lines = ["benchmark | encoder | detector | minority AUROC"]
    by_epoch = [
        "benchmark | SPARE minority AUROC by the epoch whose outputs it clusters (after N of the proxy's epochs)"
    ]
    balance = ["benchmark | method | TV from balance: input -> manifest | same seed, same bytes"]
    by_k = [
        "benchmark | bias-only detector | by top_k (the embedding dimensions or tokens its model reads): minority "
        "AUROC (true minority rows in the Otsu pseudo-minority / rows flagged, all classes)"
    ]
    flags = [
        "benchmark | auto detector | per class: true minority rows in the pseudo-minority / rows flagged / "
        "true minority rows, by Otsu's cut (the detector's) and by the bias-only model's error set (p(label) < 0.5)"
    ]
    for name, encoder in BENCHES.items():
        if args.only and name not in args.only:
            continue
        data = args.work / name / "data"
        table = built_benchmark(name, data, check_files=False)
        ws = workspace_of(args.work / name, table)
        emb = api.embed(table, encoder, workspace=ws)
        cfg = api.ProxyConfig()
        log = api.record_dynamics(table, emb, config=cfg, workspace=ws)
        found = {}
        for det in api.list_detectors()["name"]:
            if det == "artifacts" and table.modality != "text":
                continue
            d = api.detect(table, embeddings=emb, dynamics=log, detector=det, proxy_config=cfg)
            found[det] = d
            lines.append(f"{name} | {encoder} | {det} | {api.detection_auroc(table, d):.4f}")
        aurocs = []
        for e in sorted(output_epochs(log.n_epochs)):
            at = api.detect(table, embeddings=emb, dynamics=log, detector="spare", proxy_config=cfg, epoch=e)
            aurocs.append(f"{e + 1} of {log.n_epochs}: {api.detection_auroc(table, at):.3f}")
        by_epoch.append(f"{name} | " + " | ".join(aurocs))
        bias_only = api.AUTO_DETECTORS[table.modality]  # the bias-only model (their top_k chosen on these lines)
        by_k.append(
            f"{name} | {bias_only} | "
            + " | ".join(
                f"{k}: {_at_k(table, api.detect(table, embeddings=emb, detector=bias_only, top_k=k))}" for k in TOP_KS
            )
        )
        flags.append(
            f"{name} | {api.AUTO_DETECTORS[table.modality]} | {_flags(table, found[api.AUTO_DETECTORS[table.modality]])}"
        )
        d = found[api.AUTO_DETECTORS[table.modality]]
        for method in api.list_selectors()["name"]:
            disc = found["jtt"] if method == "jtt" else found["spare"] if method == "spare" else d
            digests = []
            for _ in range(2):
                m = api.select(method, table, disc, dynamics=log)
                with tempfile.TemporaryDirectory() as tmp:
                    p = api.write_manifest(m, Path(tmp) / "m.parquet")
                    digests.append(hashlib.sha256(p.read_bytes()).hexdigest())
            bal = api.group_balance(m, table)
            balance.append(
                f"{name} | {method} | {bal['input_tv']:.3f} -> {bal['manifest_tv']:.3f} | "
                f"{'yes' if digests[0] == digests[1] else 'NO'}"
            )
    report(
        "detection",
        [
            *lines,
            "",
            *by_epoch,
            "",
            *by_k,
            "",
            *flags,
            "",
            f"manifests (pseudo-groups from the auto detector: {api.AUTO_DETECTORS['text']} for text, {api.AUTO_DETECTORS['image']} for images; jtt/spare from their own):",
            *balance,
        ],
    )


if __name__ == "__main__":
    main()
