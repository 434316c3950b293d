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
