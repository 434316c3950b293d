"""What a discovery found, as plain tables: the top-flagged samples, what a manifest did to each
sample, the pseudo-group cards, the pseudo- vs true-group overlap and the sample of an embedding map.

Pure functions of frames (no I/O, no rendering): ``curate inspect`` prints them in the terminal and
the HTML report (:mod:`curate.eval.html_report`) draws them. ``scores`` is a discovery's score frame
(``sample_id, label, conflict_score, pseudo_group``; higher ``conflict_score`` = more likely
bias-conflicting), ``table`` the dataset, ``manifest`` a manifest's rows (``sample_id, weight``,
optionally ``mix_with, mix_lambda``; rows repeat when a method upsamples).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.errors import ConfigError, IdMismatchError, InputDataError

CONFLICT = "conflict_score"  # the discovery's score column (named by ``curate.detect``, a higher layer)
ACTION = "action"
MIX_WITH = "mix_with"  # the manifest's columns (``curate.manifest.core``), read here without importing it
MIX_LAMBDA = "mix_lambda"
SNIPPET_CHARS = 160  # a text sample is cut to this many characters in a listing
DEFAULT_TOP = 20


def _scores(scores: pl.DataFrame, table: SampleTable, where: str) -> pl.DataFrame:
    """``scores`` as ``[sample_id, label, pseudo_group, score]`` with the table's source column,
    checked against the table."""
    score_col = CONFLICT if CONFLICT in scores.columns else S.SCORE
    S.validate_frame(scores, required=(S.SAMPLE_ID, score_col), where=where)
    src = S.source_column(table.frame)
    keep = [c for c in (S.SAMPLE_ID, S.LABEL, S.PSEUDO_GROUP, score_col) if c in scores.columns]
    s = scores.select(keep).rename({score_col: S.SCORE})
    if S.PSEUDO_GROUP not in s.columns:
        s = s.with_columns(pl.lit(None, dtype=pl.Int64).alias(S.PSEUDO_GROUP))
    cols = [S.SAMPLE_ID, src] if S.LABEL in s.columns else [S.SAMPLE_ID, S.LABEL, src]
    unknown = s.filter(~pl.col(S.SAMPLE_ID).is_in(table.frame[S.SAMPLE_ID].implode()))
    if unknown.height:
        raise IdMismatchError.from_ids(where, table.where, unknown[S.SAMPLE_ID].to_list())
    return s.join(table.frame.select(cols), on=S.SAMPLE_ID, how="left").select(
        S.SAMPLE_ID, S.LABEL, S.PSEUDO_GROUP, S.SCORE, src
    )


def snippet(text: str, n: int = SNIPPET_CHARS) -> str:
    """``text`` on one line, cut to ``n`` characters (with an ellipsis when cut)."""
    t = " ".join(str(text).split())
    return t if len(t) <= n else t[: n - 1] + "…"


def manifest_actions(manifest: pl.DataFrame, ids: pl.Series) -> pl.DataFrame:
    """What ``manifest`` did to each of ``ids``, in words.

    Raises:
        InputDataError: ``manifest`` lacks ``sample_id`` or ``weight``.

    Returns:
        ``[sample_id, action]``, one row per id, in the order of ``ids``: ``pruned`` (no row),
        ``kept`` (one row, weight 1, not mixed), else the parts that apply joined by ``; ``:
        ``×N rows`` (upsampled), ``weight W`` (the total over its rows, when not N),
        ``mixed with ID (λ=L)`` (the first partner, ``+K more`` when several).
    """
    for col in (S.SAMPLE_ID, S.WEIGHT):
        if col not in manifest.columns:
            raise InputDataError(f"missing column {col!r}", file="manifest", fix="pass a manifest's rows")
    m = manifest.filter(pl.col(S.SAMPLE_ID).is_in(ids.implode()))
    has_mix = MIX_WITH in m.columns
    lam = pl.col(MIX_LAMBDA) if MIX_LAMBDA in m.columns else pl.lit(None, dtype=pl.Float64)
    agg = m.group_by(S.SAMPLE_ID).agg(
        pl.len().alias("_rows"),
        pl.col(S.WEIGHT).sum().alias("_weight"),
        (pl.col(MIX_WITH) if has_mix else pl.lit(None, dtype=pl.String)).drop_nulls().alias("_with"),
        lam.filter(pl.col(MIX_WITH).is_not_null() if has_mix else pl.lit(False)).alias("_lam"),
    )
    by_id = {r[S.SAMPLE_ID]: r for r in agg.iter_rows(named=True)}
    actions = []
    for sid in ids.to_list():
        r = by_id.get(sid)
        if r is None:
            actions.append("pruned")
            continue
        parts = []
        if r["_rows"] > 1:
            parts.append(f"×{r['_rows']} rows")
        if not np.isclose(r["_weight"], r["_rows"]):
            parts.append(f"weight {r['_weight']:.3g}")
        if r["_with"]:
            lam_s = f" (λ={r['_lam'][0]:.2f})" if r["_lam"] and r["_lam"][0] is not None else ""
            more = f" +{len(r['_with']) - 1} more" if len(r["_with"]) > 1 else ""
            parts.append(f"mixed with {r['_with'][0]}{lam_s}{more}")
        actions.append("; ".join(parts) or "kept")
    return pl.DataFrame(
        {S.SAMPLE_ID: ids.to_list(), ACTION: actions}, schema={S.SAMPLE_ID: pl.String, ACTION: pl.String}
    )


def top_flagged(
    scores: pl.DataFrame,
    table: SampleTable,
    *,
    top: int = DEFAULT_TOP,
    group: int | None = None,
    manifest: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The samples with the highest conflict scores (the likeliest bias-conflicting ones).

    Args:
        scores: a discovery's scores (``sample_id``, ``conflict_score`` or ``score``, and usually
            ``label`` and ``pseudo_group``).
        table: the dataset the scores were computed on (labels and sources come from it).
        top: how many samples to list (fewer when there are fewer).
        group: only the samples of this pseudo-group.
        manifest: a manifest's rows; ``action`` then says what it did to each sample.

    Returns:
        ``[sample_id, label, pseudo_group, score, path | text, action]`` sorted by ``score``
        descending (ties by ``sample_id``); higher = more likely bias-conflicting. ``path`` for
        image data (relative to the table's root), ``text`` (a one-line snippet) for text data;
        ``action`` is null without a manifest (see :func:`manifest_actions`).

    Raises:
        ConfigError: ``top`` is not a positive int, or ``group`` is not a pseudo-group of ``scores``.
        InputDataError: ``scores`` lacks a column; IdMismatchError: an id is not in ``table``.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError.bad_param("top_flagged()", "top", "a positive int", top)
    s = _scores(scores, table, "scores")
    if group is not None:
        have = sorted(int(g) for g in s[S.PSEUDO_GROUP].drop_nulls().unique())
        if group not in have:
            raise ConfigError.bad_param("top_flagged()", "group", f"a pseudo-group among {have}", group)
        s = s.filter(pl.col(S.PSEUDO_GROUP) == group)
    out = s.sort([S.SCORE, S.SAMPLE_ID], descending=[True, False], nulls_last=True).head(top)
    if S.TEXT in out.columns:
        out = out.with_columns(pl.col(S.TEXT).map_elements(snippet, return_dtype=pl.String))
    if manifest is None:
        return out.with_columns(pl.lit(None, dtype=pl.String).alias(ACTION))
    return out.join(manifest_actions(manifest, out[S.SAMPLE_ID]), on=S.SAMPLE_ID, how="left", maintain_order="left")


PER_CARD = 24  # thumbnails per pseudo-group card: half most typical, half least typical
MAP_POINTS = 5000  # points drawn on the embedding map
HIST_BINS = 40
PROXY_ERROR = "proxy_error_rate"
SHARE = "share_of_class"


def pseudo_group_cards(
    scores: pl.DataFrame, table: SampleTable, *, clusters: pl.DataFrame | None = None, per_card: int = PER_CARD
) -> pl.DataFrame:
    """One row per class × pseudo-group: its size and share, and the samples that show it.

    Args:
        scores: a discovery's scores.
        table: the dataset.
        clusters: the discovery's per-pseudo-group summary (its ``proxy_error_rate`` is copied).
        per_card: how many samples each card shows: the ``per_card // 2`` most typical (lowest
            conflict score) and the rest least typical (highest).

    Returns:
        ``[label, pseudo_group, size, share_of_class, proxy_error_rate, mean_score, typical,
        atypical]`` sorted by label and pseudo-group; ``typical``/``atypical`` are lists of ids
        (ascending / descending score); ``proxy_error_rate`` null when unknown.
    """
    if per_card < 2:
        raise ConfigError.bad_param("pseudo_group_cards()", "per_card", "an int ≥ 2", per_card)
    s = _scores(scores, table, "scores").with_columns(pl.col(S.PSEUDO_GROUP).fill_null(-1))
    n_typ = per_card // 2
    ranked = s.sort([S.SCORE, S.SAMPLE_ID])
    cards = (
        ranked.group_by(S.LABEL, S.PSEUDO_GROUP, maintain_order=True)
        .agg(
            pl.len().alias("size"),
            pl.col(S.SCORE).mean().alias("mean_score"),
            pl.col(S.SAMPLE_ID).head(n_typ).alias("typical"),
            pl.col(S.SAMPLE_ID).reverse().head(per_card - n_typ).alias("atypical"),
        )
        .with_columns((pl.col("size") / pl.col("size").sum().over(S.LABEL)).alias(SHARE))
    )
    if clusters is not None and PROXY_ERROR in clusters.columns:
        err = clusters.select(S.PSEUDO_GROUP, pl.col(PROXY_ERROR).cast(pl.Float64))
        cards = cards.join(err, on=S.PSEUDO_GROUP, how="left")
    else:
        cards = cards.with_columns(pl.lit(None, dtype=pl.Float64).alias(PROXY_ERROR))
    # a sample listed as typical is not repeated among the atypical ones of a small group
    out = cards.with_columns(
        pl.struct("atypical", "typical")
        .map_elements(
            lambda r: [i for i in r["atypical"] if i not in set(r["typical"])], return_dtype=pl.List(pl.String)
        )
        .alias("atypical")
    )
    return out.select(S.LABEL, S.PSEUDO_GROUP, "size", SHARE, PROXY_ERROR, "mean_score", "typical", "atypical").sort(
        S.LABEL, S.PSEUDO_GROUP
    )


def group_confusion(scores: pl.DataFrame, table: SampleTable) -> pl.DataFrame | None:
    """Overlap of pseudo-groups and true groups on the scored samples (None without true groups).

    Returns:
        ``[pseudo_group, <true group name>...]`` counts, one row per pseudo-group, one column per
        true group (named by :meth:`SampleTable.group_name`).
    """
    if not table.has_groups:
        return None
    s = _scores(scores, table, "scores").join(table.frame.select(S.SAMPLE_ID, S.GROUP), on=S.SAMPLE_ID)
    counts = s.group_by(S.PSEUDO_GROUP, S.GROUP).len().sort(S.GROUP)
    wide = counts.pivot(on=S.GROUP, index=S.PSEUDO_GROUP, values="len").fill_null(0).sort(S.PSEUDO_GROUP)
    groups = sorted(int(g) for g in counts[S.GROUP].unique())
    return wide.select(S.PSEUDO_GROUP, *[pl.col(str(g)).alias(table.group_name(g)) for g in groups])


def score_histograms(scores: pl.DataFrame, table: SampleTable, *, bins: int = HIST_BINS) -> pl.DataFrame:
    """Density histograms of the conflict score by true group (by pseudo-group without true groups),
    on shared bins, so that a million samples draw as ``bins`` bars per group.

    Returns:
        ``[by, group, name, left, right, density]`` where ``by`` is ``group`` or ``pseudo_group``.
    """
    s = _scores(scores, table, "scores")
    by = S.PSEUDO_GROUP
    if table.has_groups:
        s = s.join(table.frame.select(S.SAMPLE_ID, S.GROUP), on=S.SAMPLE_ID)
        by = S.GROUP
    v = s[S.SCORE].to_numpy().astype(np.float64)
    finite = v[np.isfinite(v)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    rows = []
    for g in sorted(int(x) for x in s[by].drop_nulls().unique()):
        x = s.filter(pl.col(by) == g)[S.SCORE].to_numpy().astype(np.float64)
        dens, _ = np.histogram(x[np.isfinite(x)], bins=edges, density=True)
        name = table.group_name(g) if by == S.GROUP else str(g)
        rows += [(by, g, name, float(edges[i]), float(edges[i + 1]), float(dens[i])) for i in range(bins)]
    return pl.DataFrame(
        rows, schema=["by", "group", "name", "left", "right", "density"], orient="row", infer_schema_length=None
    )


def map_sample(
    ids: pl.Series, *, limit: int = MAP_POINTS, seed: int = 0, always: list[str] | None = None
) -> np.ndarray:
    """Row positions of ``ids`` to draw on a map: all of them up to ``limit``, else a uniform sample
    of ``limit`` that includes the ``always`` ids (e.g. the top-flagged ones). Sorted positions."""
    n = len(ids)
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    must = np.flatnonzero(ids.is_in(pl.Series(always or [], dtype=pl.String).implode()).to_numpy())[:limit]
    rest = np.setdiff1d(np.arange(n), must)
    pick = rng.choice(rest, size=limit - len(must), replace=False)
    return np.sort(np.concatenate([must, pick]))


def project_2d(matrix: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, str]:
    """A 2-D projection of ``matrix`` rows: UMAP where ``umap-learn`` is importable, else PCA.

    Returns:
        The ``(n, 2)`` coordinates and the method's name (``"UMAP"`` or ``"PCA"``).
    """
    x = np.asarray(matrix, dtype=np.float32)
    if len(x) >= 20:
        try:
            import umap
        except ImportError:
            pass
        else:
            return np.asarray(umap.UMAP(n_components=2, random_state=seed).fit_transform(x)), "UMAP"
    from sklearn.decomposition import PCA

    if x.shape[1] < 2 or len(x) < 2:
        return np.zeros((len(x), 2)), "PCA"
    return PCA(n_components=2, random_state=seed).fit_transform(x.astype(np.float64)), "PCA"


def artifact_stats(artifacts: list[dict[str, object]], table: SampleTable, ids: pl.Series) -> pl.DataFrame:
    """The text detector's artifact tokens with how often each occurs in the texts of ``ids``.

    Args:
        artifacts: the discovery's ``extra["artifacts"]`` (``token``, ``z``, ``class`` each).
        table: a text dataset.
        ids: the samples counted (the train split the detector saw).

    Returns:
        ``[token, z, class, class_name, n_texts, share_in_class]``: ``n_texts`` texts containing the
        token (as a word, case-insensitive), ``share_in_class`` the share of those labelled ``class``.
    """
    texts = table.frame.filter(pl.col(S.SAMPLE_ID).is_in(ids.implode())).select(
        pl.col(S.TEXT).str.to_lowercase(), S.LABEL
    )
    rows = []
    for a in artifacts:
        tok, cls = str(a["token"]), int(a["class"])  # type: ignore[call-overload]
        hit = texts.filter(pl.col(S.TEXT).str.contains(rf"\b{_re_escape(tok)}\b"))
        n = hit.height
        share = float((hit[S.LABEL] == cls).mean()) if n else 0.0
        names = table.label_names
        name = names[cls] if names is not None and 0 <= cls < len(names) else str(cls)
        rows.append((tok, float(a["z"]), cls, name, n, share))  # type: ignore[arg-type]
    return pl.DataFrame(rows, schema=["token", "z", "class", "class_name", "n_texts", "share_in_class"], orient="row")


def _re_escape(s: str) -> str:
    import re

    return re.escape(s)
