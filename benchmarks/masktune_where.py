"""Where MaskTune's masks fall on fmnist-mark: on the mark (the shortcut) or elsewhere.

For each finished fmnist-mark run of ``benchmarks/masktune_mark.py``: the xGradCAM masks of its
**best** ERM checkpoint over the train images (the masks MaskTune trained on, recomputed with the
code, ``curate.finetune.masktune._masks``), against the mark's pixels, found by colour (the mark is the only saturated
colour; the object and the gravel are grey). Per true train group: the share of images whose mask
covers at least half of the mark, the share of masked pixels that lie on the mark, and for scale the
mark's share of the image. If ERM leaned on the mark, its saliency (and so the mask) would sit on it.

Run: ``.venv/bin/python -m benchmarks.masktune_where [--work work/masktune]`` (after masktune_mark).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("CURATE_NO_PROGRESS", "1")

SATURATION = 0.35  # max - min over RGB in [0, 1]: the mark is >= 0.6, grey pixels ~0


def main() -> None:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from benchmarks._common import built_benchmark, report
    from curate._core import schema as S
    from curate.embed.backbones import create_backbone
    from curate.finetune.masktune import _masks
    from curate.finetune.network import NetworkInputs, _Rows, build_network

    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("work/masktune"))
    args = ap.parse_args()
    table = built_benchmark("fmnist-mark", args.work / "fmnist-mark" / "data")
    train = table.split("train").frame
    sources = train[S.source_column(train)].to_list()
    labels = train[S.LABEL].to_numpy()
    groups = train[S.GROUP].to_numpy()
    runs = sorted(p for p in (args.work / "fmnist-mark").glob("seed*") if (p / "metrics.json").exists())
    lines = [
        "fmnist-mark train images; masks of each MaskTune run's best ERM checkpoint (mean + 2 std of the map's "
        "positive values); the mark found by colour",
        "run | group | images | mask covers >= half the mark | share of masked pixels on the mark | mark share of image",
    ]
    per_run: list[float] = []
    for run in runs:
        settings = json.loads((run / "metrics.json").read_text())["config"]
        backbone = create_backbone(settings["backbone"])
        model = build_network(backbone, table.n_classes, "image", settings, settings["seed"])
        saved = torch.load(run / "train" / "erm" / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(saved["state"])
        inputs = NetworkInputs.create(backbone, table, settings)
        cfg = SimpleNamespace(threshold_stds=settings["threshold_stds"])
        packed, _ = _masks(model, inputs, settings, sources, labels, cfg)  # MaskTune's own masks
        pre = backbone.preprocess(settings["image_size"])
        mean, std = torch.tensor(pre.mean).reshape(1, 3, 1, 1), torch.tensor(pre.std).reshape(1, 3, 1, 1)
        side = settings["image_size"]
        loader = DataLoader(_Rows(sources, inputs.eval_load), batch_size=256, collate_fn=inputs.collate)  # type: ignore[arg-type]
        covered, on_mark, mark_share = [], [], []
        for batch in loader:
            rgb = (batch["x"] * std + mean).clamp(0, 1)
            mark = (rgb.amax(1) - rgb.amin(1)) > SATURATION
            bits = [np.unpackbits(packed[sources[i]], count=side * side) for i in batch["index"].tolist()]
            masks = torch.from_numpy(np.stack(bits).astype(bool)).reshape(-1, side, side)
            n_mark = mark.flatten(1).sum(1).clamp(min=1)
            both = (masks & mark).flatten(1).sum(1)
            covered += (both / n_mark >= 0.5).tolist()
            on_mark += (both / masks.flatten(1).sum(1).clamp(min=1)).tolist()
            mark_share += mark.flatten(1).float().mean(1).tolist()
        cov, onm, share = np.array(covered), np.array(on_mark), np.array(mark_share)
        per_run.append(float(cov.mean()))
        for g in [None, *sorted(set(groups.tolist()))]:
            sel = np.ones(len(groups), bool) if g is None else groups == g
            name = "all" if g is None else table.group_name(int(g))
            lines.append(
                f"{run.name} | {name} | {int(sel.sum())} | {cov[sel].mean():.3f} | {onm[sel].mean():.3f} | "
                f"{share[sel].mean():.4f}"
            )
        print(lines[-1], flush=True)
    if per_run:
        lines.append(f"runs: {len(per_run)}; all images, mask covers >= half the mark: {statistics.fmean(per_run):.3f}")
    report("masktune_where", lines)


if __name__ == "__main__":
    main()
