"""``artifacts``: a bias-only model on dataset artifacts, for text.

Token–label artifacts are found with the z-statistic of Gardner et al. (EMNLP 2021, "Competency
Problems: On Finding and Removing Artifacts in Language Data"): for a token ``t`` seen in ``n``
train texts, ``z = (p̂(y | t) − p₀) / sqrt(p₀ (1 − p₀) / n)`` with ``p₀`` the class prior. A
shortcut (a cue phrase, an identity word) appears in many texts of one class, so its z towers over
topical words, which are spread thin. A logistic regression on the presence of the ``top_k``
tokens by z is a *bias-only* model (as in Clark et al. 2019): it predicts from the artifacts
alone, so ``conflict_score = 1 − p_bias(y)`` is high exactly for texts whose artifacts point to
another class — the bias-conflicting ones. Pseudo-groups: a per-class Otsu split of the score.
The model reads any text, so the rows of val are scored by it directly (:func:`score_split`), not
carried from their nearest train text: the label-free selection partition on text.
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

MIN_COUNT = 20
TOKEN_PATTERN = r"(?u)\b\w+\b"


def artifact_z(
    texts: list[str], labels: np.ndarray, *, min_count: int = MIN_COUNT
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Gardner et al.'s z-statistic of every token (in ≥ ``min_count`` texts) for every class.

    Returns:
        The tokens, their ``(n_tokens, n_classes)`` z-scores, and the binary ``(n_texts, n_tokens)``
        presence matrix (sparse).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(binary=True, lowercase=True, token_pattern=TOKEN_PATTERN, min_df=min_count)
    x = vec.fit_transform(texts)
    classes = np.unique(labels)
    n = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    z = np.empty((x.shape[1], len(classes)))
    for j, c in enumerate(classes):
        p0 = float(np.mean(labels == c))
        k = np.asarray(x[labels == c].sum(axis=0)).ravel()
        z[:, j] = (k / n - p0) / np.sqrt(p0 * (1 - p0) / n)
    return list(vec.get_feature_names_out()), z, x


@dataclass(frozen=True)
class BiasOnlyModel:
    """A logistic regression on the presence of the ``tokens`` (the train artifacts): it reads any
    text, so it scores the rows of every split with the model fitted on train."""

    tokens: list[str]
    model: Any
    found: list[dict[str, Any]]

    def conflict(self, texts: list[str], labels: np.ndarray) -> np.ndarray:
        """``1 − p_bias(label)`` of each text; raises on a label the train split lacks."""
        from sklearn.feature_extraction.text import CountVectorizer

        vec = CountVectorizer(binary=True, lowercase=True, token_pattern=TOKEN_PATTERN, vocabulary=self.tokens)
        return bias_conflict(self.model, vec.transform(texts), labels)


def fit_bias_model(texts: list[str], labels: np.ndarray, *, top_k: int, min_count: int, seed: int) -> BiasOnlyModel:
    """The bias-only model on the ``top_k`` train tokens by Gardner et al.'s z-statistic."""
    from sklearn.linear_model import LogisticRegression

    tokens, z, x = artifact_z(texts, labels, min_count=min_count)
    if not tokens:
        raise ConfigError(f"detector 'artifacts': no token appears in {min_count} train texts; lower min_count")
    top = np.argsort(-z.max(axis=1), kind="stable")[:top_k]
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(x[:, top], labels)
    found = [{"token": tokens[i], "z": round(float(z[i].max()), 2), "class": int(np.argmax(z[i]))} for i in top]
    return BiasOnlyModel([tokens[i] for i in top], model, found)


def _texts(table: SampleTable, rows: pl.DataFrame) -> list[str]:
    return rows.join(table.frame.select(S.SAMPLE_ID, S.TEXT), on=S.SAMPLE_ID, how="left", maintain_order="left")[
        S.TEXT
    ].to_list()


def _train_model(table: SampleTable, *, top_k: int, min_count: int, seed: int) -> tuple[pl.DataFrame, BiasOnlyModel]:
    if table.modality != "text":
        raise ConfigError(
            "detector 'artifacts' needs a text dataset; use 'features' (its counterpart on embeddings) for images"
        )
    rows = train_rows(table)
    return rows, fit_bias_model(
        _texts(table, rows), rows[S.LABEL].to_numpy(), top_k=top_k, min_count=min_count, seed=seed
    )


def score_split(
    discovery: Discovery, table: SampleTable, split: str, embeddings: EmbeddingTable | None = None
) -> np.ndarray:
    """The conflict scores of ``split``'s rows (in the table's order) under ``discovery``'s bias-only
    model, refitted on train from its config (deterministic); how its pseudo-groups reach val (the
    model reads the texts: ``embeddings`` is not used).

    Raises:
        InputDataError: the refitted model does not reproduce the discovery's train scores (the
            discovery was made on another table).
    """
    cfg = discovery.config
    rows, model = _train_model(table, top_k=cfg["top_k"], min_count=cfg["min_count"], seed=cfg["seed"])
    train = model.conflict(_texts(table, rows), rows[S.LABEL].to_numpy())
    check_refit(discovery, rows[S.SAMPLE_ID], train, "this table's train split")
    target = table.split(split).frame.select(S.SAMPLE_ID, S.LABEL)
    return model.conflict(_texts(table, target), target[S.LABEL].to_numpy())


@DETECTORS.register(
    "artifacts",
    needs=("text",),
    description="bias-only model on token artifacts (Gardner et al. z-statistic)",
    score_split=score_split,
)
def artifacts(
    table: SampleTable, signals: Signals, *, top_k: int = BIAS_TOP_K, min_count: int = MIN_COUNT, seed: int = 0
) -> Discovery:
    """Conflict score = 1 − p(label) of a logistic regression on the ``top_k`` artifact tokens."""
    rows, model = _train_model(table, top_k=top_k, min_count=min_count, seed=seed)
    conflict = model.conflict(_texts(table, rows), rows[S.LABEL].to_numpy())
    return build_discovery(
        rows,
        conflict,
        split_by_score(rows, conflict),
        detector="artifacts",
        config={"top_k": top_k, "min_count": min_count, "seed": seed},
        dynamics=signals.dynamics,
        extra={"artifacts": model.found},
    )
