"""SpuCo's label-free methods (JTT, SPARE) and DFR on curate's embeddings, for the quality table.

Runs in its own virtual environment with ``spuco`` installed (it does not import curate):

    python3 -m venv work/spuco-venv
    work/spuco-venv/bin/pip install torch==2.14.1 torchvision==0.29.1 spuco
    .venv/bin/python -m benchmarks.quality --export-spuco work/spuco-data      # curate's side
    work/spuco-venv/bin/python benchmarks/spuco_baselines.py work/spuco-data   # this script

Each ``<benchmark>.npz`` holds the standardised train/val/test embeddings, labels and the
val/test groups; every benchmark runs with seeds 0, 1, 2. The model is SpuCo's ``SpuCoModel`` with an identity backbone (a linear head on
the embeddings), trained with SpuCo's own classes: ``JTTInference`` on an ERM model trained for one
epoch, then ``CustomSampleERM`` with the error set repeated ``lambda_up`` times (λ_up from
{6, 20, 50, 100} by validation worst-group accuracy); ``SpareInference`` on the outputs of that
early ERM model, then ``SpareTrain``; ``DFR`` on the validation split's groups (half for C
selection) over the ERM model's features. 30 epochs, Adam lr 1e-3, batch 128, as curate's heads.
Writes ``spuco.json`` beside the data: {benchmark: {method: [{seed, acc_wg, acc_avg}]}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

EPOCHS, LR, BATCH = 30, 1e-3, 128
LAMBDAS = (6, 20, 50, 100)


class Embeddings(Dataset):
    """(x, y) pairs, the form SpuCo's trainers read."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = torch.from_numpy(x.astype(np.float32))
        self.y = torch.from_numpy(y.astype(np.int64))
        self.labels = self.y.tolist()
        self.group_partition: dict = {}

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        return self.x[i], self.y[i]


def head(d: int, n_classes: int, seed: int):  # type: ignore[no-untyped-def]
    from spuco.models import SpuCoModel

    torch.manual_seed(seed)
    return SpuCoModel(backbone=nn.Identity(), representation_dim=d, num_classes=n_classes)


def predict(model, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x.astype(np.float32))).argmax(1).numpy()


def wga(pred: np.ndarray, y: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    accs = [float((pred[g == k] == y[g == k]).mean()) for k in np.unique(g)]
    return min(accs), float((pred == y).mean())


def run(data: dict, seed: int) -> dict[str, dict[str, float]]:
    from spuco.datasets import GroupLabeledDatasetWrapper
    from spuco.group_inference import JTTInference, SpareInference
    from spuco.last_layer_retrain import DFR
    from spuco.robust_train import ERM, CustomSampleERM, SpareTrain

    xtr, ytr = data["x_train"], data["y_train"]
    d, c = xtr.shape[1], int(ytr.max()) + 1
    trainset = Embeddings(xtr, ytr)
    out: dict[str, dict[str, float]] = {}

    def adam(m):  # type: ignore[no-untyped-def]
        return torch.optim.Adam(m.parameters(), lr=LR)

    early = head(d, c, seed)
    ERM(early, trainset, BATCH, adam(early), num_epochs=1).train()
    preds = predict(early, xtr)

    # JTT: error set of the early model, upweighted; lambda_up by validation WGA
    partition = JTTInference(predictions=preds.tolist(), class_labels=ytr.tolist()).infer_groups()
    errors = partition[(0, 1)]
    best = None
    for lam in LAMBDAS:
        m = head(d, c, seed)
        CustomSampleERM(m, trainset, BATCH, adam(m), EPOCHS, list(range(len(ytr))) + errors * (lam - 1)).train()
        v = wga(predict(m, data["x_val"]), data["y_val"], data["g_val"])
        if best is None or v > best[0]:
            best = (v, m)
    assert best is not None
    out["spuco jtt"] = dict(
        zip(("acc_wg", "acc_avg"), wga(predict(best[1], data["x_test"]), data["y_test"], data["g_test"]), strict=True)
    )

    # SPARE: cluster the early outputs per class, sample clusters by 1/size^power
    early.eval()
    with torch.no_grad():
        logits = early(torch.from_numpy(xtr.astype(np.float32)))
    spare = SpareInference(logits=torch.softmax(logits, 1), class_labels=ytr.tolist(), max_clusters=5)
    groups = spare.infer_groups()
    m = head(d, c, seed)
    grouped = Embeddings(xtr, ytr)
    grouped.group_partition = groups  # what SpuCo's group-balanced trainers read
    SpareTrain(m, grouped, groups, spare.sampling_powers, BATCH, adam(m), EPOCHS).train()
    out["spuco spare"] = dict(
        zip(("acc_wg", "acc_avg"), wga(predict(m, data["x_test"]), data["y_test"], data["g_test"]), strict=True)
    )

    # DFR on the validation split's true groups, over the ERM model's features
    erm = head(d, c, seed)
    ERM(erm, trainset, BATCH, adam(erm), num_epochs=EPOCHS).train()
    # SpuCo's own half split calls random.sample on a set (a TypeError on Python >= 3.11), so the
    # same 50/50 split of val is made here and passed as its validation_set
    half = np.random.default_rng(seed).random(len(data["y_val"])) < 0.5

    def grouped(mask: np.ndarray):  # type: ignore[no-untyped-def]
        g = data["g_val"][mask]
        part = {(int(k),): np.flatnonzero(g == k).tolist() for k in np.unique(g)}
        return GroupLabeledDatasetWrapper(Embeddings(data["x_val"][mask], data["y_val"][mask]), part)

    dfr = DFR(grouped(half), erm, validation_set=grouped(~half))
    dfr.train()
    _, coef, intercept, _ = dfr.linear_model
    z = data["x_test"] @ np.asarray(coef).T + np.asarray(intercept)
    pred = (z[:, 0] > 0).astype(int) if z.shape[1] == 1 else z.argmax(1)
    out["spuco dfr"] = dict(zip(("acc_wg", "acc_avg"), wga(pred, data["y_test"], data["g_test"]), strict=True))
    return out


def main() -> None:
    """``spuco_baselines.py DIR [SEEDS] [NAME,NAME]``: results merge into ``DIR/spuco.json``."""
    folder = Path(sys.argv[1])
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    out = folder / "spuco.json"
    results: dict = json.loads(out.read_text()) if out.exists() else {}
    for f in sorted(folder.glob("*.npz")):
        if names is not None and f.stem not in names:
            continue
        results[f.stem] = {}
        data = dict(np.load(f))
        for seed in range(seeds):
            for method, r in run(data, seed).items():
                results.setdefault(f.stem, {}).setdefault(method, []).append({"seed": seed, **r})
                print(f.stem, method, seed, r, flush=True)
    from importlib.metadata import version

    results["_spuco_version"] = version("spuco")
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
