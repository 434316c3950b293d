"""DFR (Kirichenko et al., ICLR 2023): keep the ERM network's features, retrain only the last layer
with ℓ1 logistic regression on a group-balanced held-out set (the val split, with its true groups).

``C`` from {1, .7, .3, .1, .07, .03, .01} is chosen on one half of val by worst-group accuracy on
the other; the final head averages ``DFR_HEADS`` heads fit on fresh group-balanced draws of all of
val (their code: 20). Features are standardised with val statistics, as in their code.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.linear import l1_logistic, linear_predict
from curate._core.seed import derive_seed
from curate.data.table import SampleTable
from curate.errors import InputDataError

DFR_CS = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
DFR_HEADS = 20


def val_features(
    hv: np.ndarray, ht: np.ndarray, table: SampleTable, val_ids: list[str], method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A trained model's val and test features standardised with val statistics (as DFR's code), and
    the val rows' labels and true groups: the held-out set a last-layer method refits on.

    Returns:
        ``(val features, test features, val labels, val groups)``.

    Raises:
        InputDataError: the dataset has no true val groups (names ``method``).
    """
    if not table.has_groups:
        raise InputDataError(
            f"{method} refits the last layer on validation data with its true groups, and this dataset has none",
            file=table.where,
            fix="use a dataset with group labels",
        )
    groups = pl.DataFrame({S.SAMPLE_ID: val_ids}).join(
        table.split("val").frame.select(S.SAMPLE_ID, S.LABEL, S.GROUP), on=S.SAMPLE_ID, maintain_order="left"
    )
    mu, sd = hv.mean(0), hv.std(0)
    sd = np.where(sd > 1e-8, sd, 1.0)
    return (hv - mu) / sd, (ht - mu) / sd, groups[S.LABEL].to_numpy(), groups[S.GROUP].to_numpy()


def dfr_predict(
    hv: np.ndarray, ht: np.ndarray, table: SampleTable, val_ids: list[str], seed: int
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """DFR^val on val features ``hv`` (rows = ``val_ids``): predictions for val and test features.

    Returns:
        ``(val predictions, test predictions, {"C": chosen C, "heads": count})``.

    Raises:
        InputDataError: the dataset has no true val groups.
    """
    zv, zt, y, g = val_features(hv, ht, table, val_ids, "DFR")
    rng = np.random.default_rng(derive_seed(seed, "dfr"))
    half = rng.random(len(y)) < 0.5

    def balanced(idx: np.ndarray) -> np.ndarray:
        gs = np.unique(g[idx])
        m = min(int((g[idx] == k).sum()) for k in gs)
        return np.concatenate([rng.choice(idx[g[idx] == k], size=m, replace=False) for k in gs])

    def wga(pred: np.ndarray, idx: np.ndarray) -> float:
        return min(float((pred[g[idx] == k] == y[idx][g[idx] == k]).mean()) for k in np.unique(g[idx]))

    a, b = np.flatnonzero(half), np.flatnonzero(~half)
    scores = {}
    for c in DFR_CS:
        sel = balanced(a)
        clf = l1_logistic(c, seed=seed).fit(zv[sel], y[sel])
        scores[c] = wga(clf.predict(zv[b]), b)
    best_c = max(DFR_CS, key=lambda c: (scores[c], c))
    coefs, intercepts = [], []
    for _ in range(DFR_HEADS):
        sel = balanced(np.arange(len(y)))
        clf = l1_logistic(best_c, seed=seed).fit(zv[sel], y[sel])
        coefs.append(clf.coef_)
        intercepts.append(clf.intercept_)
    coef, intercept = np.mean(coefs, axis=0), np.mean(intercepts, axis=0)
    return linear_predict(coef, intercept, zv), linear_predict(coef, intercept, zt), {"C": best_c, "heads": DFR_HEADS}
