"""Reports: a Markdown summary of runs with PNG plots (matplotlib is imported lazily, Agg backend).

Plots: per-group test accuracy by run; conflict-score histograms by true group (when a discovery and
true groups are given); a 2-D PCA map of the train embeddings coloured by pseudo-group and by true
group (when embeddings are given).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate._core.io import atomic_path, prepare_target, write_text_atomic
from curate.data.table import SampleTable
from curate.errors import InputDataError
from curate.eval.metrics import auroc, minority_flags


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path.name


def read_runs(runs: list[Path]) -> list[dict[str, Any]]:
    """Each run folder's ``metrics.json`` with its folder name under ``run``.

    Raises:
        InputDataError: a run without a readable ``metrics.json`` with test metrics, or two runs
            with the same folder name (their columns would be indistinguishable).
    """
    out = []
    seen: dict[str, Path] = {}
    redo = "rerun `curate finetune ... --out RUN` or `curate run`"
    for r in runs:
        r = Path(r)
        if r.name in seen:
            raise InputDataError(
                f"two runs named {r.name!r} ({seen[r.name]} and {r})",
                file=r,
                fix="give each run folder its own name (the report labels runs by folder name)",
            )
        seen[r.name] = r
        p = r / "metrics.json"
        if not p.exists():
            raise InputDataError("no metrics.json", file=r, fix="run `curate finetune ... --out RUN` first")
        try:
            metrics = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise InputDataError(f"cannot read it as JSON ({e})", file=p, fix=redo) from e
        if not isinstance(metrics, dict) or not isinstance(metrics.get("test"), dict):
            raise InputDataError("holds no test metrics (no 'test' object)", file=p, fix=redo)
        out.append({"run": r.name, **metrics})
    return out


def group_names(metrics: list[dict[str, Any]], table: SampleTable | None = None) -> dict[str, str]:
    """Readable names of the test groups of ``metrics`` (runs' ``metrics.json``): the names the runs
    recorded, else, for runs scored by class, the class names of ``table``."""
    names: dict[str, str] = {}
    for m in metrics:
        names.update(m["test"].get("group_names") or {})
        by_class = str(m["test"].get("group_source", "")).startswith("class")
        if by_class and table is not None and table.label_names is not None:
            for g in m["test"]["groups"]:
                if g.isdigit() and int(g) < len(table.label_names):
                    names.setdefault(g, table.label_names[int(g)])
    return names


def _auroc(table: SampleTable, scores: pl.DataFrame) -> str:
    """AUROC of ``conflict_score`` for the true minority train samples, in words ("n/a" and why
    when it is undefined)."""
    j = scores.select(S.SAMPLE_ID, "conflict_score").join(minority_flags(table.frame), on=S.SAMPLE_ID, how="left")
    try:
        return f"{auroc(j['conflict_score'].to_numpy(), j['minority'].fill_null(False).to_numpy()):.4f}"
    except InputDataError as e:
        return f"n/a ({e.problem})"


def write_report(
    runs: list[Path],
    out: str | Path,
    *,
    table: SampleTable | None = None,
    scores: pl.DataFrame | None = None,
    embeddings: np.ndarray | None = None,
    embedding_ids: list[str] | None = None,
    detector: str | None = None,
    artifacts: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``out/report.md`` and its PNG plots; returns the report's path.

    Every plot is followed by a legend in words (what is drawn, what the colours mean, how to read
    it). With ``scores`` (a discovery's per-sample scores) the report names the detection shown
    (``detector``) and, where ``table`` has true groups, its minority-detection AUROC; with
    ``artifacts`` (a text dataset's artifact tokens: ``token``, ``z``, ``class``, optional ``n``)
    it lists them.
    """
    plt = _plt()
    out = Path(out)
    metrics = read_runs(runs)  # every input checked before anything is written
    prepare_target(out, folder=True)
    out.mkdir(exist_ok=True)
    lines = [
        "# curate report",
        "",
        "| run | method | backbone | manifest | test acc_avg | test acc_wg | test adj_acc_avg | groups |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in metrics:
        t = m["test"]
        adj = "–" if t.get("adj_acc_avg") is None else f"{t['adj_acc_avg']:.4f}"
        lines.append(
            f"| {m['run']} | {m['method']} | {m.get('backbone', 'head on frozen embeddings')} | "
            f"{m['manifest'].get('method', '?')} | {t['acc_avg']:.4f} | "
            f"{t['acc_wg']:.4f} | {adj} | {t['group_source']} |"
        )
    groups = sorted({g for m in metrics for g in m["test"]["groups"]}, key=lambda g: int(g) if g.isdigit() else g)
    names = group_names(metrics, table)
    lines += [
        "",
        "Per-group test accuracy:",
        "",
        "| group | name | " + " | ".join(m["run"] for m in metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for g in groups:
        accs = ["–" if g not in m["test"]["groups"] else f"{m['test']['groups'][g]:.4f}" for m in metrics]
        lines.append(f"| {g} | {names.get(g, g)} | " + " | ".join(accs) + " |")
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(1, len(metrics)) / 2), 4))
    width = 0.8 / max(1, len(metrics))
    for k, m in enumerate(metrics):
        acc = [m["test"]["groups"].get(g, np.nan) for g in groups]
        ax.bar(np.arange(len(groups)) + k * width, acc, width, label=m["run"])
    ax.set_xticks(
        np.arange(len(groups)) + width * (len(metrics) - 1) / 2, [names.get(g, g) for g in groups], rotation=20
    )
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("per-group test accuracy")
    lines += [
        "",
        f"![per-group accuracy]({_save(fig, out / 'group_accuracy.png')})",
        "",
        f"*Legend:* one bar per test group and run ({', '.join(m['run'] for m in metrics)}), its height the "
        "run's test accuracy on that group; the lowest bar of a run is its worst-group accuracy (acc_wg).",
    ]
    if scores is not None:
        lines += ["", "## Detection", ""]
        what = f"detection `{detector}`" if detector else "the detection"
        lines.append(
            f"Shown: {what}, {scores.height} train samples scored (higher conflict_score = more likely "
            "bias-conflicting)."
        )
        if table is not None and table.has_groups and "conflict_score" in scores.columns:
            lines += [
                "",
                f"Minority-detection AUROC against the true groups: {_auroc(table, scores)} "
                "(0.5 = chance, 1 = every minority sample ranked above every majority one).",
            ]
    if table is not None and scores is not None and table.has_groups and "conflict_score" in scores.columns:
        j = scores.select(S.SAMPLE_ID, "conflict_score").join(table.frame.select(S.SAMPLE_ID, S.GROUP), on=S.SAMPLE_ID)
        fig, ax = plt.subplots(figsize=(6, 4))
        for g in sorted(j[S.GROUP].unique()):
            ax.hist(
                j.filter(pl.col(S.GROUP) == g)["conflict_score"].to_numpy(),
                bins=40,
                alpha=0.5,
                density=True,
                label=table.group_name(int(g)),
            )
        ax.set_xlabel("conflict_score")
        ax.legend()
        ax.set_title("conflict score by true group (train)")
        lines += [
            "",
            f"![scores]({_save(fig, out / 'score_histograms.png')})",
            "",
            "*Legend:* the distribution (density) of the detector's conflict_score over the train samples of "
            "each true group, one colour per group; a detector that finds the shortcut puts the minority "
            "groups' mass to the right of the majority groups'.",
        ]
    if embeddings is not None and embedding_ids is not None and scores is not None:
        from sklearn.decomposition import PCA

        xy = PCA(n_components=2, random_state=0).fit_transform(np.asarray(embeddings, dtype=np.float64))
        pos = pl.DataFrame({S.SAMPLE_ID: embedding_ids, "x": xy[:, 0], "y": xy[:, 1]}).join(
            scores.select(S.SAMPLE_ID, *[c for c in (S.PSEUDO_GROUP,) if c in scores.columns]), on=S.SAMPLE_ID
        )
        cols = [c for c in (S.PSEUDO_GROUP,) if c in pos.columns]
        if table is not None and table.has_groups:
            pos = pos.join(table.frame.select(S.SAMPLE_ID, S.GROUP), on=S.SAMPLE_ID)
            cols.append(S.GROUP)
        fig, axes = plt.subplots(1, len(cols), figsize=(5 * len(cols), 4), squeeze=False)
        for ax, c in zip(axes[0], cols, strict=True):
            ax.scatter(pos["x"], pos["y"], c=pos[c].to_numpy(), s=4, cmap="tab10")
            ax.set_title(f"train embeddings (PCA) by {c}")
        coloured = " and ".join(
            "pseudo-group (inferred by the detector)" if c == S.PSEUDO_GROUP else "true group" for c in cols
        )
        lines += [
            "",
            f"![embedding map]({_save(fig, out / 'embedding_map.png')})",
            "",
            f"*Legend:* each point is a train sample at the first two principal components of its embedding, "
            f"coloured by {coloured} (one panel each); pseudo-groups that follow the true groups mean the "
            "detector recovered them.",
        ]
    if artifacts:
        lines += [
            "",
            "## Artifact tokens",
            "",
            "Tokens whose presence predicts one class far above its prior (Gardner et al.'s z-statistic; "
            "a shortcut cue has a large z):",
            "",
            "| token | z | class | texts |",
            "|---|---|---|---|",
        ]
        for a in artifacts:
            cls = a["class"]
            name = (
                table.label_names[cls]
                if table is not None and table.label_names and cls < len(table.label_names)
                else cls
            )
            lines.append(f"| `{a['token']}` | {a['z']:.2f} | {name} | {a.get('n', '–')} |")
    report = out / "report.md"
    write_text_atomic(report, "\n".join(lines) + "\n")
    return report
