"""The findings tables (top-flagged samples, manifest actions) and the self-contained HTML report."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate.data.table import SampleTable
from curate.errors import ConfigError, IdMismatchError
from curate.eval.findings import (
    group_confusion,
    manifest_actions,
    map_sample,
    pseudo_group_cards,
    score_histograms,
    top_flagged,
)
from tests.eval.test_metrics import table


def scores_of(t: SampleTable) -> pl.DataFrame:
    """Train scores r0..r11 with r11 highest; pseudo-group = true group."""
    train = t.split("train").frame
    return train.select("sample_id", "label").with_columns(
        pl.Series("conflict_score", [i / 11 for i in range(train.height)]),
        train["group"].alias("pseudo_group"),
    )


def test_top_flagged_ordered_by_score() -> None:
    t = table()
    top = top_flagged(scores_of(t), t, top=5)
    assert top.columns == ["sample_id", "label", "pseudo_group", "score", "path", "action"]
    assert top["sample_id"].to_list() == ["r11", "r10", "r9", "r8", "r7"]
    assert top["score"].is_sorted(descending=True)
    assert top["action"].is_null().all()
    assert top_flagged(scores_of(t), t, top=100).height == 12


def test_top_flagged_of_one_group_and_bad_parameters() -> None:
    t = table()
    top = top_flagged(scores_of(t), t, top=3, group=1)
    assert top["sample_id"].to_list() == ["r7", "r6"]
    with pytest.raises(ConfigError, match=r"'group' must be a pseudo-group among \[0, 1, 2, 3\]; got 9"):
        top_flagged(scores_of(t), t, group=9)
    with pytest.raises(ConfigError, match="'top' must be a positive int"):
        top_flagged(scores_of(t), t, top=0)
    bad = scores_of(t).with_columns(pl.col("sample_id").replace("r3", "nope"))
    with pytest.raises(IdMismatchError, match="'nope'"):
        top_flagged(bad, t)


def test_manifest_actions_in_words() -> None:
    m = pl.DataFrame(
        {
            "sample_id": ["r11", "r10", "r10", "r9", "r8"],
            "weight": [1.0, 1.0, 1.0, 2.5, 1.0],
            "mix_with": [None, None, None, None, "r0"],
            "mix_lambda": [None, None, None, None, 0.25],
        }
    )
    top = top_flagged(scores_of(t := table()), t, top=5, manifest=m)
    assert dict(zip(top["sample_id"], top["action"], strict=True)) == {
        "r11": "kept",
        "r10": "×2 rows",
        "r9": "weight 2.5",
        "r8": "mixed with r0 (λ=0.25)",
        "r7": "pruned",
    }
    assert manifest_actions(m, pl.Series(["r1"]))["action"].to_list() == ["pruned"]


def test_text_snippets() -> None:
    f = pl.DataFrame(
        {"sample_id": ["a", "b"], "label": [0, 1], "split": ["train"] * 2, "text": ["short", "long  text\n" * 40]}
    )
    t = SampleTable(f)
    s = pl.DataFrame({"sample_id": ["a", "b"], "conflict_score": [0.1, 0.9]})
    top = top_flagged(s, t)
    assert top.columns == ["sample_id", "label", "pseudo_group", "score", "text", "action"]
    assert top["text"][0].endswith("…") and len(top["text"][0]) == 160 and "\n" not in top["text"][0]


def test_cards_one_per_pseudo_group_with_typical_and_atypical() -> None:
    t = table()
    clusters = pl.DataFrame({"pseudo_group": [0, 1, 2, 3], "proxy_error_rate": [0.1, 0.5, 0.9, 0.2]})
    cards = pseudo_group_cards(scores_of(t), t, clusters=clusters, per_card=4)
    assert cards.select("label", "pseudo_group", "size").rows() == [(0, 0, 6), (0, 1, 2), (1, 2, 1), (1, 3, 3)]
    assert cards["share_of_class"].to_list() == pytest.approx([0.75, 0.25, 0.25, 0.75])
    assert cards["proxy_error_rate"].to_list() == [0.1, 0.5, 0.9, 0.2]
    first = cards.row(0, named=True)
    assert first["typical"] == ["r0", "r1"] and first["atypical"] == ["r5", "r4"]
    assert first["mean_score"] == pytest.approx(sum(range(6)) / 6 / 11)
    small = cards.row(1, named=True)  # two samples: shown once each
    assert small["typical"] == ["r6", "r7"] and small["atypical"] == []


def test_confusion_of_pseudo_and_true_groups() -> None:
    t = table()
    s = scores_of(t).with_columns(pl.Series("pseudo_group", [0] * 7 + [1] * 5))
    conf = group_confusion(s, t)
    assert conf is not None
    assert conf.columns == ["pseudo_group", "0/a", "0/b", "1/a", "1/b"]
    assert conf.rows() == [(0, 6, 1, 0, 0), (1, 0, 1, 1, 3)]
    assert group_confusion(s, t.without_groups()) is None


def test_histograms_are_binned() -> None:
    h = score_histograms(scores_of(t := table()), t, bins=5)
    assert h.height == 4 * 5 and set(h["by"]) == {"group"}
    widths = (h["right"] - h["left"]).to_numpy()
    assert widths == pytest.approx([widths[0]] * len(widths))


def test_map_sample_keeps_the_flagged() -> None:
    ids = pl.Series([f"s{i}" for i in range(1000)])
    pick = map_sample(ids, limit=100, always=["s999", "s5"])
    assert len(pick) == 100 and len(set(pick.tolist())) == 100 and {5, 999} <= set(pick.tolist())
    assert map_sample(ids, limit=5000).tolist() == list(range(1000))


def _no_network(page: str) -> None:
    """No script or stylesheet loaded from a file or address, and no src/href attribute in the page's
    HTML that points at a network address (the inline plotly.js holds link strings for its logo and map
    attributions, which are never fetched; the browser test checks that nothing is requested)."""
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, re.I)
    assert "<link" not in page.lower()
    markup = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S | re.I)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", markup, re.I)
    assert re.search(r"""src\s*=\s*["']data:image/png;base64,""", markup) or "<img" not in markup


def test_html_report_content(tmp_path: Path, digits_dir: Path) -> None:
    from curate import api
    from tests.eval._html_fixture import build

    ws, runs = build(tmp_path, digits_dir)
    md = api.report(runs, tmp_path / "rep", workspace=ws)
    assert md.name == "report.md" and md.exists()
    page = (tmp_path / "rep" / "report.html").read_text()
    _no_network(page)
    assert page.count('class="card"') == 4  # 2 classes × 2 pseudo-groups
    assert "Detection shown: <b>knn</b>" in page and "AUROC for the true minority" in page
    assert page.count("<script") == 1 + 4  # plotly.js once, then the four figures
    # the flagged rows come in score order, and the manifests' actions are named per run
    rows = re.findall(r'<tr data-id="([^"]+)">.*?<td class="num score">([0-9.]+)</td>', page, re.S)
    assert len(rows) == 20
    assert [float(s) for _, s in rows] == sorted((float(s) for _, s in rows), reverse=True)
    first = page.split(f'<tr data-id="{rows[0][0]}">', 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<td class="action">([^<]*)</td>', first)[:2] == ["kept", "pruned"]
    assert "mixed with" in re.findall(r'<td class="action">([^<]*)</td>', first)[2]
    assert page.count("data:image/png;base64,") >= 4 * 24 + 20 * 6


def test_report_refuses_a_run_of_another_dataset(tmp_path: Path, digits_dir: Path) -> None:
    import json

    from curate import api
    from curate.errors import InputDataError
    from tests.eval._html_fixture import build

    ws, runs = build(tmp_path, digits_dir)
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    metrics["manifest"]["inputs"] = {"dataset": api.Workspace(ws).table().fingerprint()}
    (runs[0] / "metrics.json").write_text(json.dumps(metrics))
    api.report(runs, tmp_path / "ok", workspace=ws)  # the same dataset: fine
    metrics["manifest"]["inputs"] = {"dataset": "0" * 64}
    (runs[0] / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(InputDataError, match="trained on another dataset than the workspace"):
        api.report(runs, tmp_path / "rep", workspace=ws)
    assert not (tmp_path / "rep").exists()


def test_html_report_of_many_text_samples_is_sampled(tmp_path: Path) -> None:
    n = 30_000
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "beta", "gamma", "delta", "cue", "noise"])
    f = pl.DataFrame(
        {
            "sample_id": [f"s{i:06d}" for i in range(n)],
            "label": rng.integers(0, 5, n),
            "split": ["train"] * n,
            "text": [" ".join(rng.choice(words, 12)) for _ in range(n)],
        }
    )
    t = SampleTable(f)
    s = f.select("sample_id", "label").with_columns(
        pl.Series("conflict_score", rng.random(n)),
        (pl.col("label") * 2 + pl.Series(rng.integers(0, 2, n))).alias("pseudo_group"),
    )
    from curate.eval.html_report import write_html_report

    path = write_html_report(
        [],
        tmp_path / "rep",
        table=t,
        scores=s,
        detector="artifacts",
        detection={"extra": {"artifacts": [{"token": "cue", "z": 9.5, "class": 1}]}},
        embeddings=rng.normal(size=(n, 8)).astype(np.float32),
        embedding_ids=f["sample_id"].to_list(),
    )
    page = path.read_text()
    _no_network(page)
    assert path.stat().st_size < 20e6
    assert "5,000 of\n    30,000 samples drawn" in page
    assert page.count('class="card"') == 10 and "<mark>cue</mark>" in page
    assert '<section id="artifacts">' in page
