"""``artifacts``: a bias-only model on dataset artifacts, for text.

Token–label artifacts are found with the z-statistic of Gardner et al. (EMNLP 2021, "Competency
Problems: On Finding and Removing Artifacts in Language Data"): for a token ``t`` seen in ``n``
train texts, ``z = (p̂(y | t) − p₀) / sqrt(p₀ (1 − p₀) / n)`` with ``p₀`` the class prior. A
shortcut (a cue phrase, an identity word) appears in many texts of one class, so its z towers over
topical words, which are spread thin. A logistic regression on the presence of the ``top_k``
tokens by z is a *bias-only* model (as in Clark et al. 2019): it predicts from the artifacts
alone, so ``conflict_score = 1 − p_bias(y)`` is high exactly for texts whose artifacts point to
another class — the bias-conflicting ones. Pseudo-groups: a per-class Otsu split of the score.
"""

from __future__ import annotations

import numpy as np

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.detect._base import DETECTORS, Discovery, Signals, build_discovery, split_by_score, train_rows
from curate.errors import ConfigError

TOP_K = 10
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


@DETECTORS.register(
    "artifacts", needs=("text",), description="bias-only model on token artifacts (Gardner et al. z-statistic)"
)
def artifacts(
    table: SampleTable, signals: Signals, *, top_k: int = TOP_K, min_count: int = MIN_COUNT, seed: int = 0
) -> Discovery:
    """Conflict score = 1 − p(label) of a logistic regression on the ``top_k`` artifact tokens."""
    from sklearn.linear_model import LogisticRegression

    if table.modality != "text":
        raise ConfigError("detector 'artifacts' needs a text dataset; use 'ensemble' or 'knn' for images")
    rows = train_rows(table)
    texts = rows.join(table.frame.select(S.SAMPLE_ID, S.TEXT), on=S.SAMPLE_ID, how="left", maintain_order="left")[
        S.TEXT
    ]
    labels = rows[S.LABEL].to_numpy()
    tokens, z, x = artifact_z(texts.to_list(), labels, min_count=min_count)
    if not tokens:
        raise ConfigError(f"detector 'artifacts': no token appears in {min_count} train texts; lower min_count")
    top = np.argsort(-z.max(axis=1), kind="stable")[:top_k]
    bias = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(x[:, top], labels)
    proba = bias.predict_proba(x[:, top])
    cls_index = {c: i for i, c in enumerate(bias.classes_)}
    p_true = proba[np.arange(len(labels)), [cls_index[v] for v in labels]]
    conflict = 1.0 - p_true
    found = [{"token": tokens[i], "z": round(float(z[i].max()), 2), "class": int(np.argmax(z[i]))} for i in top]
    return build_discovery(
        rows,
        conflict,
        split_by_score(rows, conflict),
        detector="artifacts",
        config={"top_k": top_k, "min_count": min_count, "seed": seed},
        dynamics=signals.dynamics,
        extra={"artifacts": found},
    )
