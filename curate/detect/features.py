"""``features``: a bias-only model on the embedding features most tied to one label.

The embedding analogue of ``artifacts`` (which does this with tokens on text). A shortcut is a
feature that alone predicts the label for most of the train set (a background colour or texture,
a coloured mark); a pretrained encoder carries such a simple attribute in a few channels, while
the object that defines the class is spread over many. Each embedding dimension is scored by its
one-vs-rest Welch t-statistic for every class (the continuous counterpart of Gardner et al.'s
z-statistic for a token); a logistic regression on the ``top_k`` dimensions by ``max_c |t_c|``
(standardised) is a *bias-only* model (Clark et al. 2019), and ``conflict_score = 1 − p_bias(y)``
is high for the samples whose strongest features point to another class — the bias-conflicting
ones. Pseudo-groups: a per-class Otsu split of the score; ``top_k``: :data:`~curate.detect._base.BIAS_TOP_K`.
The model reads any embedding, so val rows are scored by it directly (:func:`score_split`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.detect._base import (
    BIAS_TOP_K,
    DETECTORS,
    Discovery,
    Signals,
    bias_conflict,
    build_discovery,
    check_refit,
    split_by_score,
    train_rows,
)
from curate.embed import EmbeddingTable
from curate.errors import ConfigError
from curate.index.knn import CHUNK


def feature_t(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(dim, n_classes)`` one-vs-rest Welch t-statistics of every embedding dimension; ``x`` is
    read in chunks (a memory map larger than memory works). A constant dimension scores 0."""
    classes = np.unique(labels)
    d = x.shape[1]
    s1 = np.zeros((len(classes), d))
    s2 = np.zeros((len(classes), d))
    n = np.array([np.sum(labels == c) for c in classes], dtype=np.float64)
    for start in range(0, len(x), CHUNK):
        xb = np.asarray(x[start : start + CHUNK], dtype=np.float64)
        yb = labels[start : start + CHUNK]
        for j, c in enumerate(classes):
            m = yb == c
            s1[j] += xb[m].sum(axis=0)
            s2[j] += (xb[m] ** 2).sum(axis=0)
    t = np.zeros((d, len(classes)))
    tot1, tot2, tot_n = s1.sum(axis=0), s2.sum(axis=0), n.sum()
    for j in range(len(classes)):
        n_in, n_out = n[j], tot_n - n[j]
        mean_in, mean_out = s1[j] / n_in, (tot1 - s1[j]) / n_out
        var_in = np.maximum(s2[j] / n_in - mean_in**2, 0.0) * n_in / max(n_in - 1, 1)
        var_out = np.maximum((tot2 - s2[j]) / n_out - mean_out**2, 0.0) * n_out / max(n_out - 1, 1)
        se = np.sqrt(var_in / n_in + var_out / n_out)
        with np.errstate(divide="ignore", invalid="ignore"):
            t[:, j] = np.where(se > 0, (mean_in - mean_out) / se, 0.0)
    return t


@dataclass(frozen=True)
class BiasFeatureModel:
    """A logistic regression on the standardised ``dims`` of an embedding (fitted on train); it
    reads any row's embedding, so it scores the rows of every split."""

    dims: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    model: Any

    def conflict(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``1 − p_bias(label)`` of each row; raises on a label the train split lacks."""
        return bias_conflict(self.model, (np.asarray(x[:, self.dims], dtype=np.float64) - self.mean) / self.std, labels)


def fit_bias_features(x: np.ndarray, labels: np.ndarray, *, top_k: int, seed: int) -> BiasFeatureModel:
    """The bias-only model on the ``top_k`` dimensions of ``x`` by ``max_c |t_c|`` (:func:`feature_t`)."""
    from sklearn.linear_model import LogisticRegression

    if top_k < 1:
        raise ConfigError.bad_param("detector 'features'", "top_k", "an integer >= 1", top_k)
    tie = np.abs(feature_t(x, labels)).max(axis=1)
    dims = np.sort(np.argsort(-tie, kind="stable")[: min(top_k, x.shape[1])])
    sub = np.asarray(x[:, dims], dtype=np.float64)
    mean, std = sub.mean(axis=0), sub.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit((sub - mean) / std, labels)
    return BiasFeatureModel(dims, mean, std, model)


def _train_model(
    table: SampleTable, emb: EmbeddingTable, *, top_k: int, seed: int
) -> tuple[pl.DataFrame, np.ndarray, BiasFeatureModel]:
    rows = train_rows(table)
    x = emb.select(rows[S.SAMPLE_ID], what="train split").check_finite().matrix
    return rows, x, fit_bias_features(x, rows[S.LABEL].to_numpy(), top_k=top_k, seed=seed)


def score_split(discovery: Discovery, table: SampleTable, split: str, embeddings: EmbeddingTable | None) -> np.ndarray:
    """The conflict scores of ``split``'s rows (in the table's order) under ``discovery``'s bias-only
    model, refitted on train from its config (deterministic); how its pseudo-groups reach val.

    Raises:
        ConfigError: no ``embeddings``.
        InputDataError: the refitted model does not reproduce the discovery's train scores (the
            discovery was made on other data or embeddings).
    """
    if embeddings is None:
        raise ConfigError("scoring rows with the 'features' bias-only model needs their embeddings")
    cfg = discovery.config
    rows, x, model = _train_model(table, embeddings, top_k=cfg["top_k"], seed=cfg["seed"])
    again = model.conflict(x, rows[S.LABEL].to_numpy())
    check_refit(discovery, rows[S.SAMPLE_ID], again, "this table's train split and embeddings")
    target = table.split(split).frame.select(S.SAMPLE_ID, S.LABEL)
    xs = embeddings.select(target[S.SAMPLE_ID], what=f"{split} split").check_finite().matrix
    return model.conflict(xs, target[S.LABEL].to_numpy())


@DETECTORS.register(
    "features",
    needs=("embeddings",),
    description="bias-only model on the embedding dimensions most tied to one label (t-statistic), Otsu split per class",
    score_split=score_split,
)
def features(table: SampleTable, signals: Signals, *, top_k: int = BIAS_TOP_K, seed: int = 0) -> Discovery:
    """Conflict score = 1 − p(label) of a logistic regression on the ``top_k`` most label-tied dimensions."""
    emb = signals.need_embeddings("features")
    rows, x, model = _train_model(table, emb, top_k=top_k, seed=seed)
    conflict = model.conflict(x, rows[S.LABEL].to_numpy())
    return build_discovery(
        rows,
        conflict,
        split_by_score(rows, conflict),
        detector="features",
        config={"top_k": top_k, "seed": seed},
        dynamics=signals.dynamics,
        extra={"dims": [int(d) for d in model.dims]},
    )
