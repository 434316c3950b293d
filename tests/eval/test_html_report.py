"""The findings tables (top-flagged samples, manifest actions) and the self-contained HTML report."""

from __future__ import annotations

import polars as pl
import pytest

from curate.data.table import SampleTable
from curate.errors import ConfigError, IdMismatchError
from curate.eval.findings import manifest_actions, top_flagged
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
