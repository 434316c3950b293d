"""The HTML report: one self-contained file (thumbnails as base64, plotly.js and styles inline,
nothing fetched from a network) that shows what a discovery found and how the runs did.

Sections: the pseudo-group cards (size, share, proxy error rate, mean conflict score, the most and
least typical samples) and their overlap with the true groups; the top-flagged samples with their
nearest neighbours and what each run's manifest did to them; an embedding map; the runs' per-group
accuracy and the score histograms; for text, the detector's artifact tokens. The tables come from
:mod:`curate.eval.findings`; this module only draws them (Jinja2 templates under ``templates/``,
Plotly charts) and writes the file atomically. What is drawn is sampled so that a million samples
still give a file of a few MB (:data:`~curate.eval.findings.MAP_POINTS` map points,
:data:`~curate.eval.findings.PER_CARD` samples per card, :data:`MAX_CARDS` cards).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.io import prepare_target, write_text_atomic
from curate.data.table import SampleTable
from curate.eval import findings as F
from curate.eval.report import group_names, read_runs

logger = logging.getLogger(__name__)

THUMB_PX = 72  # longest side of an embedded thumbnail
MAX_CARDS = 60  # pseudo-group cards drawn (the largest classes' first when there are more)
TOP = 20  # top-flagged samples listed
REPORT_FILE = "report.html"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


class _Samples:
    """Renders a sample as an embedded thumbnail (images) or a snippet with highlighted tokens (text),
    each image read and encoded once."""

    def __init__(self, table: SampleTable, tokens: list[str]) -> None:
        self.table = table
        self.text = table.modality == "text"
        src = S.source_column(table.frame)
        self.sources = dict(zip(table.frame[S.SAMPLE_ID].to_list(), table.frame[src].to_list(), strict=True))
        self.labels = dict(zip(table.frame[S.SAMPLE_ID].to_list(), table.frame[S.LABEL].to_list(), strict=True))
        self.pattern = (
            re.compile(r"\b(" + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) + r")\b", re.I)
            if tokens
            else None
        )
        self._thumbs: dict[str, str | None] = {}

    def thumb(self, sid: str) -> str | None:
        """``data:image/png;base64,...`` of sample ``sid``'s image, or None when it cannot be read."""
        if sid not in self._thumbs:
            from PIL import Image

            try:
                with Image.open(self.table.resolve(self.sources[sid])) as f:
                    im = f.convert("RGB")
                im.thumbnail((THUMB_PX, THUMB_PX))
                buf = io.BytesIO()
                im.save(buf, format="PNG", optimize=True)
                self._thumbs[sid] = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
            except (OSError, KeyError, ValueError) as e:
                logger.warning("report: no thumbnail for %r (%s)", sid, e)
                self._thumbs[sid] = None
        return self._thumbs[sid]

    def snippet(self, sid: str) -> str:
        """HTML of sample ``sid``'s text, cut, with the artifact tokens in ``<mark>``."""
        text = html.escape(F.snippet(self.sources.get(sid, ""), F.SNIPPET_CHARS))
        return text if self.pattern is None else self.pattern.sub(r"<mark>\1</mark>", text)

    def item(self, sid: str, caption: str = "") -> dict[str, Any]:
        """What the template needs to draw sample ``sid``."""
        out: dict[str, Any] = {"id": sid, "caption": caption, "label": self.labels.get(sid)}
        if self.text:
            out["snippet"] = self.snippet(sid)
        else:
            out["src"] = self.thumb(sid)
        return out


def _fig_html(fig: Any, div_id: str) -> str:
    """A figure's ``<div>`` and script (plotly.js is inlined once in the page's head). The id is fixed
    (plotly draws a random one) so that the same inputs give the same page, byte for byte."""
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG, div_id=div_id))


def _label_name(table: SampleTable | None, y: int) -> str:
    names = None if table is None else table.label_names
    return names[y] if names is not None and 0 <= y < len(names) else str(y)


def _runs_section(metrics: list[dict[str, Any]], table: SampleTable | None) -> dict[str, Any]:
    import plotly.graph_objects as go

    groups = sorted({g for m in metrics for g in m["test"]["groups"]}, key=lambda g: int(g) if g.isdigit() else g)
    names = group_names(metrics, table)
    rows = []
    for m in metrics:
        t = m["test"]
        rows.append(
            {
                "run": m["run"],
                "method": m.get("method", "?"),
                "manifest": m.get("manifest", {}).get("method", "?"),
                "acc_avg": t.get("acc_avg"),
                "acc_wg": t.get("acc_wg"),
                "groups": [t["groups"].get(g) for g in groups],
                "train_groups": m.get("train_groups") or m.get("config", {}).get("groups") or "–",
                "selection": m.get("model_selection") or "–",
                "detector": m.get("detector") or "–",
            }
        )
    fig = go.Figure()
    for m in metrics:
        fig.add_bar(
            name=html.escape(m["run"]),
            x=[html.escape(names.get(g, g)) for g in groups],
            y=[m["test"]["groups"].get(g) for g in groups],
        )
    fig.update_layout(
        barmode="group",
        yaxis={"range": [0, 1], "title": "test accuracy"},
        title="Per-group test accuracy by run",
        height=380,
        margin={"t": 50, "b": 40},
    )
    return {
        "rows": rows,
        "groups": [names.get(g, g) for g in groups],
        "chart": _fig_html(fig, "chart-runs") if metrics else None,
    }


def _hist_chart(hist: pl.DataFrame) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    by = hist["by"][0] if hist.height else S.GROUP
    for (g,), part in hist.group_by("group", maintain_order=True):
        name = part["name"][0] if by == S.GROUP else f"pseudo-group {g}"
        mid = ((part["left"] + part["right"]) / 2).to_list()
        fig.add_bar(
            name=html.escape(name), x=mid, y=part["density"].to_list(), width=(part["right"] - part["left"]).to_list()
        )
    fig.update_layout(
        barmode="overlay",
        title=f"Conflict score by {'true group' if by == S.GROUP else 'pseudo-group'} (train; density)",
        xaxis={"title": "conflict score (higher = more likely bias-conflicting)"},
        yaxis={"title": "density"},
        height=360,
        margin={"t": 50},
    )
    fig.update_traces(opacity=0.55)
    return _fig_html(fig, "chart-scores")


def _map_charts(
    scores: pl.DataFrame, table: SampleTable, matrix: np.ndarray, ids: list[str], always: list[str]
) -> dict[str, Any]:
    import plotly.graph_objects as go

    id_series = pl.Series(ids, dtype=pl.String)
    pick = F.map_sample(id_series, always=always)
    xy, method = F.project_2d(matrix[pick])
    pos = pl.DataFrame({S.SAMPLE_ID: id_series.gather(pick), "x": xy[:, 0], "y": xy[:, 1]}).join(
        F._scores(scores, table, "scores"), on=S.SAMPLE_ID
    )
    colourings = [(S.PSEUDO_GROUP, "pseudo-group")]
    if table.has_groups:
        pos = pos.join(table.frame.select(S.SAMPLE_ID, S.GROUP), on=S.SAMPLE_ID)
        colourings.append((S.GROUP, "true group"))
    charts: list[str] = []
    for col, title in colourings:
        fig = go.Figure()
        for (g,), part in pos.sort(col).group_by(col, maintain_order=True):
            name = (
                table.group_name(int(g))
                if col == S.GROUP
                else f"{g} ({_label_name(table, int(part[S.LABEL][0]))})"
                if g is not None
                else "none"
            )
            fig.add_scatter(
                x=part["x"].round(4).to_list(),
                y=part["y"].round(4).to_list(),
                mode="markers",
                marker={"size": 4},
                name=html.escape(name),  # plotly reads names as its HTML subset: "digit < 5" would cut it
                text=part[S.SAMPLE_ID].to_list(),
                customdata=part[S.SCORE].round(4).to_list(),
                hovertemplate="%{text}<br>score %{customdata}<extra>" + html.escape(name) + "</extra>",
            )
        fig.update_layout(
            title=f"Train embeddings ({method}) by {title}",
            height=460,
            margin={"t": 50},
            legend={"itemsizing": "constant"},
        )
        charts.append(_fig_html(fig, f"chart-map-{len(charts)}"))
    return {"charts": charts, "method": method, "drawn": len(pick), "total": len(ids)}


def write_html_report(
    runs: list[Path],
    out: str | Path,
    *,
    table: SampleTable | None = None,
    scores: pl.DataFrame | None = None,
    clusters: pl.DataFrame | None = None,
    detector: str | None = None,
    detection: dict[str, Any] | None = None,
    embeddings: np.ndarray | None = None,
    embedding_ids: list[str] | None = None,
    neighbors: dict[str, list[str]] | None = None,
    manifests: dict[str, pl.DataFrame] | None = None,
    top: int = TOP,
) -> Path:
    """Write ``out/report.html``; returns its path.

    Args:
        runs: run folders (each with a ``metrics.json``).
        out: the report folder.
        table: the dataset (needed for every discovery section).
        scores: the discovery's scores (``sample_id, label, conflict_score, pseudo_group``).
        clusters: the discovery's per-pseudo-group summary (for the proxy error rates).
        detector: the name of the detection shown.
        detection: what to say about it: ``config``, ``extra`` (``artifacts`` for text), ``auroc``.
        embeddings, embedding_ids: train embeddings for the map (rows keyed by ``embedding_ids``).
        neighbors: ``sample_id`` → its nearest neighbours' ids, for the top-flagged samples.
        manifests: run name → its manifest rows; the top-flagged list says what each did.
        top: how many top-flagged samples to list.

    Raises:
        InputDataError: a run without ``metrics.json``; frames that lack columns or ids.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape
    from plotly.offline import get_plotlyjs

    out = Path(out)
    metrics = read_runs(runs)
    prepare_target(out, folder=True)
    out.mkdir(exist_ok=True)
    detection = detection or {}
    ctx: dict[str, Any] = {
        "title": f"curate report{f' — {table.name}' if table is not None else ''}",
        "dataset": None if table is None else table.name,
        "detector": detector,
        "detection": detection,
        "runs": _runs_section(metrics, table),
        "limits": {"per_card": F.PER_CARD, "map_points": F.MAP_POINTS, "max_cards": MAX_CARDS, "top": top},
    }
    if table is not None and scores is not None:
        artifacts = list(detection.get("extra", {}).get("artifacts") or [])
        samples = _Samples(table, [str(a["token"]) for a in artifacts])
        ctx["modality"] = table.modality
        ctx["n_scored"] = scores.height
        cards = F.pseudo_group_cards(scores, table, clusters=clusters)
        if cards.height > MAX_CARDS:
            cards = cards.sort("size", descending=True).head(MAX_CARDS).sort(S.LABEL, S.PSEUDO_GROUP)
            ctx["cards_cut"] = True
        ctx["cards"] = [
            {
                **{k: c[k] for k in ("label", "pseudo_group", "size", F.SHARE, F.PROXY_ERROR, "mean_score")},
                "label_name": _label_name(table, c[S.LABEL]),
                "typical": [samples.item(i) for i in c["typical"]],
                "atypical": [samples.item(i) for i in c["atypical"]],
            }
            for c in cards.iter_rows(named=True)
        ]
        conf = F.group_confusion(scores, table)
        if conf is not None:
            ctx["confusion"] = {"columns": conf.columns, "rows": conf.rows()}
        flagged = F.top_flagged(scores, table, top=top)
        actions = {
            name: dict(F.manifest_actions(m, flagged[S.SAMPLE_ID]).iter_rows()) for name, m in (manifests or {}).items()
        }
        ctx["manifest_runs"] = list(actions)
        ctx["flagged"] = [
            {
                **samples.item(r[S.SAMPLE_ID]),
                "score": r[S.SCORE],
                "label_name": _label_name(table, r[S.LABEL]),
                "pseudo_group": r[S.PSEUDO_GROUP],
                "neighbors": [samples.item(n) for n in (neighbors or {}).get(r[S.SAMPLE_ID], [])],
                "actions": [actions[name].get(r[S.SAMPLE_ID], "–") for name in actions],
            }
            for r in flagged.iter_rows(named=True)
        ]
        ctx["hist"] = _hist_chart(F.score_histograms(scores, table))
        if embeddings is not None and embedding_ids is not None:
            ctx["map"] = _map_charts(scores, table, embeddings, embedding_ids, flagged[S.SAMPLE_ID].to_list())
        if artifacts and table.modality == "text":
            ctx["artifacts"] = F.artifact_stats(artifacts, table, scores[S.SAMPLE_ID]).rows(named=True)
    env = Environment(loader=PackageLoader("curate.eval", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}%"
    env.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
    page = env.get_template("report.html.j2").render(plotlyjs=get_plotlyjs(), **ctx)
    path = write_text_atomic(out / REPORT_FILE, page)
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path
