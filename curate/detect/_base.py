"""What every detector shares: its inputs (``Signals``), its output (``Discovery``), the registry,
and the helpers that turn per-sample conflict scores into pseudo-groups and cluster summaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.registry import Registry
from curate.data.table import SampleTable
from curate.dynamics import DynamicsLog
from curate.dynamics.log import CORRECT, EPOCH, LOSS
from curate.embed import EmbeddingTable
from curate.errors import ConfigError, InputDataError

CONFLICT = "conflict_score"
CLUSTER = "cluster"


@dataclass(frozen=True)
class Signals:
    """Inputs a detector may use: embeddings of the dataset and the proxy's training dynamics, and
    the resolved device on which a detector that trains (SPARE's proxy) runs."""

    embeddings: EmbeddingTable | None = None
    dynamics: DynamicsLog | None = None
    proxy_config: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    def need_embeddings(self, who: str) -> EmbeddingTable:
        """The embeddings, or an error naming the detector that needs them."""
        if self.embeddings is None:
            raise ConfigError(f"detector {who!r} needs embeddings; run `curate embed` first")
        return self.embeddings

    def need_dynamics(self, who: str) -> DynamicsLog:
        """The dynamics log, or an error naming the detector that needs it."""
        if self.dynamics is None:
            raise ConfigError(f"detector {who!r} needs training dynamics; run `curate dynamics` first")
        return self.dynamics


@dataclass(frozen=True)
class Discovery:
    """A detector's result on the train split.

    Attributes:
        scores: ``[sample_id, label, conflict_score, cluster, pseudo_group]``; ``conflict_score``:
            higher = more likely in a minority (bias-conflicting) group; ``cluster``: the sample's
            group within its class; ``pseudo_group``: ``(label, cluster)`` numbered consecutively.
        clusters: per pseudo-group ``[pseudo_group, label, cluster, size, share_of_class,
            proxy_error_rate, mean_loss]`` (the last two null without dynamics).
        detector: registered name; ``config``: its parameters; ``extra``: method-specific outputs
            (e.g. SPARE's per-class sampling powers).
    """

    scores: pl.DataFrame
    clusters: pl.DataFrame
    detector: str
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


Detector = Callable[..., Discovery]
DETECTORS: Registry[Detector] = Registry("detector")


def train_rows(table: SampleTable) -> pl.DataFrame:
    """``[sample_id, label]`` of the train split (raises when it is empty or has one class)."""
    rows = table.split("train").frame.select(S.SAMPLE_ID, S.LABEL)
    if rows.height == 0:
        raise InputDataError("the train split is empty", file=table.where, fix="add train rows")
    if rows[S.LABEL].n_unique() < 2:
        raise InputDataError("the train split holds a single class", file=table.where, column=S.LABEL)
    return rows


CLUSTERING_DETECTORS = ("cluster", "spare")  # pseudo-groups are clusters, not a score split


def otsu_split(values: np.ndarray) -> np.ndarray:
    """Split 1-D ``values`` in two at the threshold maximising between-class variance (Otsu).

    Returns a boolean array: True for the upper part. Constant input → all False.
    """
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2 or np.ptp(v) == 0:
        return np.zeros(len(v), dtype=bool)
    s = np.sort(v)
    n = len(s)
    csum = np.cumsum(s)
    k = np.arange(1, n)  # lower part = s[:k]
    w0, w1 = k / n, 1 - k / n
    m0 = csum[:-1] / k
    m1 = (csum[-1] - csum[:-1]) / (n - k)
    between = w0 * w1 * (m0 - m1) ** 2
    between[s[1:] == s[:-1]] = -1  # a cut must fall between distinct values
    cut = int(np.argmax(between)) + 1
    return v >= s[cut]


def split_by_score(rows: pl.DataFrame, score: np.ndarray) -> np.ndarray:
    """Per class, 1 for samples above the Otsu threshold of ``score`` (the pseudo-minority), else 0."""
    out = np.zeros(len(rows), dtype=np.int64)
    labels = rows[S.LABEL].to_numpy()
    for y in np.unique(labels):
        idx = np.flatnonzero(labels == y)
        out[idx] = otsu_split(score[idx]).astype(np.int64)
    return out


def split_top_share(rows: pl.DataFrame, score: np.ndarray, share: float) -> np.ndarray:
    """Per class, 1 for the top ``share`` of samples by ``score`` (the pseudo-minority), else 0."""
    if not 0 < share < 1:
        raise ConfigError.bad_param("split_top_share()", "share", "a float in (0, 1)", share)
    out = np.zeros(len(rows), dtype=np.int64)
    labels = rows[S.LABEL].to_numpy()
    for y in np.unique(labels):
        idx = np.flatnonzero(labels == y)
        top = max(1, round(share * len(idx)))
        out[idx[np.argsort(-score[idx], kind="stable")[:top]]] = 1
    return out


def resplit(discovery: Discovery, share: float, dynamics: DynamicsLog | None = None) -> Discovery:
    """The same conflict scores with the pseudo-minority of each class set to its top ``share``
    (instead of the detector's Otsu split); for detectors that split by score."""
    if discovery.detector in CLUSTERING_DETECTORS:
        raise ConfigError(f"detector {discovery.detector!r} groups by clusters, not by a score threshold")
    rows = discovery.scores.select(S.SAMPLE_ID, S.LABEL)
    score = discovery.scores[CONFLICT].to_numpy()
    return build_discovery(
        rows,
        score,
        split_top_share(rows, score, share),
        detector=discovery.detector,
        config=discovery.config | {"minority_share": share},
        dynamics=dynamics,
        extra=discovery.extra,
    )


def rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (ties averaged): makes scores of different scales comparable."""
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    return (rankdata(v) - 1) / max(len(v) - 1, 1)


def early_stats(log: DynamicsLog, ids: pl.Series, epoch: int | None = None) -> pl.DataFrame:
    """``[sample_id, early_error, early_loss]``: mean error and loss over epochs ``0..epoch``, runs pooled."""
    e = log.early_epoch() if epoch is None else epoch
    stats = (
        log.frame.filter(pl.col(EPOCH) <= e)
        .group_by(S.SAMPLE_ID)
        .agg(
            (1 - pl.col(CORRECT).cast(pl.Float64).mean()).alias("early_error"),
            pl.col(LOSS).cast(pl.Float64).mean().alias("early_loss"),
        )
    )
    joined = pl.DataFrame({S.SAMPLE_ID: ids}).join(stats, on=S.SAMPLE_ID, how="left", maintain_order="left")
    if joined["early_loss"].null_count():
        missing = joined.filter(pl.col("early_loss").is_null())[S.SAMPLE_ID].to_list()
        from curate.errors import IdMismatchError

        raise IdMismatchError.from_ids("dataset train split", "dynamics", missing)
    return joined


def build_discovery(
    rows: pl.DataFrame,
    conflict: np.ndarray,
    cluster: np.ndarray,
    *,
    detector: str,
    config: dict[str, Any],
    dynamics: DynamicsLog | None,
    extra: dict[str, Any] | None = None,
) -> Discovery:
    """Assemble a :class:`Discovery`: number pseudo-groups ``(label, cluster)`` and summarise them."""
    if np.isnan(conflict).any():
        raise InputDataError("a detector produced NaN conflict scores", file=detector)
    scores = rows.with_columns(
        pl.Series(CONFLICT, np.asarray(conflict, dtype=np.float64)),
        pl.Series(CLUSTER, np.asarray(cluster, dtype=np.int64)),
    )
    keys = scores.select(S.LABEL, CLUSTER).unique().sort(S.LABEL, CLUSTER).with_row_index(S.PSEUDO_GROUP)
    keys = keys.with_columns(pl.col(S.PSEUDO_GROUP).cast(pl.Int64))
    scores = scores.join(keys, on=[S.LABEL, CLUSTER], how="left", maintain_order="left")
    summary = scores.group_by(S.PSEUDO_GROUP, S.LABEL, CLUSTER).agg(pl.len().alias("size"))
    summary = summary.with_columns((pl.col("size") / pl.col("size").sum().over(S.LABEL)).alias("share_of_class"))
    if dynamics is not None:
        stats = early_stats(dynamics, scores[S.SAMPLE_ID])
        per = scores.select(S.SAMPLE_ID, S.PSEUDO_GROUP).join(stats, on=S.SAMPLE_ID)
        agg = per.group_by(S.PSEUDO_GROUP).agg(
            pl.col("early_error").mean().alias("proxy_error_rate"), pl.col("early_loss").mean().alias("mean_loss")
        )
        summary = summary.join(agg, on=S.PSEUDO_GROUP, how="left")
    else:
        summary = summary.with_columns(
            pl.lit(None, dtype=pl.Float64).alias("proxy_error_rate"), pl.lit(None, dtype=pl.Float64).alias("mean_loss")
        )
    return Discovery(
        scores.select(S.SAMPLE_ID, S.LABEL, CONFLICT, CLUSTER, S.PSEUDO_GROUP),
        summary.sort(S.PSEUDO_GROUP),
        detector,
        config,
        extra or {},
    )


# How many features the bias-only models ('features': embedding dimensions, 'artifacts': tokens)
# read: the shortcut alone, since a model that also reads class-specific content predicts the class
# without the shortcut and hides the minority rows that carry that content. One simple attribute
# sits in very few channels of a pretrained encoder, and a cue in a few tokens. Chosen once on the
# three built-in image benchmarks by train minority AUROC (seed 0, EfficientNet-Lite0;
# benchmarks/detection.py; digits-color / fmnist-textures / fmnist-mark): k = 1: 0.975 / 1.000 / 0.992,
# 2: 0.995 / 1.000 / 0.998, 3: 0.997 / 1.000 / 0.962, 5: 0.999 / 1.000 / 0.937, 10: 0.999 / 0.990 / 0.926
# (more dimensions bring in the object). On text (fortunes-cue, the same file, not used to choose):
# with 1-3 tokens, all the cue phrase's, the Otsu pseudo-minority holds all 200 minority rows (216
# flagged); at 5 and 10, topical words that one class alone uses (a signature, a name) join the cue,
# predict that class without it, and 10 and 12 of its 100 cue-less minority rows are missed.
BIAS_TOP_K = 2


def bias_conflict(model: Any, x: Any, labels: np.ndarray) -> np.ndarray:
    """``1 − p(label)`` of each row under a fitted bias-only classifier (scikit-learn's
    ``predict_proba``/``classes_``) reading the rows' features ``x``; raises on a label it was not
    fitted on."""
    proba = model.predict_proba(x)
    cls_index = {c: i for i, c in enumerate(model.classes_)}
    unknown = sorted({v for v in labels.tolist() if v not in cls_index})
    if unknown:
        raise InputDataError(f"labels {unknown} do not occur in the train split the bias-only model was fitted on")
    return 1.0 - proba[np.arange(len(labels)), [cls_index[v] for v in labels.tolist()]]


def check_refit(discovery: Discovery, ids: pl.Series, again: np.ndarray, what: str) -> None:
    """Raise unless ``again`` (a model refitted from ``discovery``'s config, scoring the train rows
    ``ids``) reproduces the discovery's train scores: a discovery made on other data is refused,
    not carried to val. ``what`` names the data it must match, for the message."""
    known = discovery.scores.select(S.SAMPLE_ID, CONFLICT)
    mine = pl.DataFrame({S.SAMPLE_ID: ids, "again": again}).join(known, on=S.SAMPLE_ID, how="left")
    if mine[CONFLICT].null_count() or not np.allclose(mine["again"].to_numpy(), mine[CONFLICT].to_numpy()):
        raise InputDataError(
            f"the {discovery.detector!r} discovery does not match {what}", fix="detect again on this dataset"
        )


def pseudo_groups_of(
    discovery: Discovery,
    table: SampleTable,
    embeddings: EmbeddingTable | None,
    split: str,
    *,
    backend: str = "faiss-cpu",
) -> pl.DataFrame:
    """``[sample_id, pseudo_group]`` for the rows of ``split``, without group labels — the discovery
    carried to validation for label-free model selection. A detector registered with a
    ``score_split`` (a model that reads any row: ``artifacts``, ``features``) scores the rows itself and they are
    split at its train thresholds (:func:`groups_at_train_cut`); any other discovery's rows take the
    pseudo-group of their nearest train sample (cosine, FAISS) of the same class.

    Raises:
        InputDataError: ``split`` has a class the discovery's train rows lack.
        ConfigError: the carry by neighbour has no ``embeddings``.
    """
    from curate.index import KnnIndex

    rows = table.split(split).frame.select(S.SAMPLE_ID, S.LABEL)
    scores = discovery.scores
    missing = sorted(set(rows[S.LABEL].unique().to_list()) - set(scores[S.LABEL].unique().to_list()))
    if missing:
        raise InputDataError(f"class {missing[0]} of the {split} split has no train rows to take pseudo-groups from")
    score_split = DETECTORS.meta(discovery.detector).get("score_split") if discovery.detector in DETECTORS else None
    if score_split is not None:
        return groups_at_train_cut(discovery, rows, score_split(discovery, table, split, embeddings))
    if embeddings is None:
        raise ConfigError(f"carrying the {discovery.detector!r} pseudo-groups to {split} needs embeddings")
    out = []
    for y in sorted(rows[S.LABEL].unique().to_list()):
        ref = scores.filter(pl.col(S.LABEL) == y)
        query = rows.filter(pl.col(S.LABEL) == y)
        x_ref = embeddings.select(ref[S.SAMPLE_ID], what="train split").matrix
        x_q = embeddings.select(query[S.SAMPLE_ID], what=f"{split} split").matrix
        _, idx = KnnIndex(kind="flat", backend=backend).fit(x_ref).search(x_q, 1)
        groups = ref[S.PSEUDO_GROUP].to_numpy()[idx[:, 0]]
        out.append(pl.DataFrame({S.SAMPLE_ID: query[S.SAMPLE_ID], S.PSEUDO_GROUP: groups}))
    return pl.concat(out)


def groups_at_train_cut(discovery: Discovery, rows: pl.DataFrame, conflict: np.ndarray) -> pl.DataFrame:
    """``[sample_id, pseudo_group]`` of ``rows`` (``[sample_id, label]``) scored ``conflict`` by a
    score-split discovery, split as its train rows were: by Otsu's cut, a row is in its class's
    pseudo-minority when its score reaches the lowest train score of that minority (Otsu keeps ties
    on one side); a top-share discovery (:func:`resplit`) takes the same top share of each class."""
    if discovery.detector in CLUSTERING_DETECTORS:
        raise ConfigError(f"detector {discovery.detector!r} groups by clusters, not by a score threshold")
    train = discovery.scores
    ids = dict(((y, c), g) for y, c, g in train.select(S.LABEL, CLUSTER, S.PSEUDO_GROUP).unique().iter_rows())
    labels = rows[S.LABEL].to_list()
    if "minority_share" in discovery.config:
        side = split_top_share(rows, np.asarray(conflict, np.float64), discovery.config["minority_share"]).tolist()
    else:
        cut = dict(train.filter(pl.col(CLUSTER) == 1).group_by(S.LABEL).agg(pl.col(CONFLICT).min()).iter_rows())
        side = [int(y in cut and s >= cut[y]) for y, s in zip(labels, np.asarray(conflict).tolist(), strict=True)]
    groups = [ids.get((y, c), ids.get((y, 1 - c))) for y, c in zip(labels, side, strict=True)]
    return pl.DataFrame({S.SAMPLE_ID: rows[S.SAMPLE_ID], S.PSEUDO_GROUP: pl.Series(groups, dtype=pl.Int64)})
