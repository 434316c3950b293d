"""A val split that lacks a group cannot drive worst-group selection silently: one warning per run."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.embed import EmbeddingTable
from curate.finetune import FinetuneConfig
from curate.finetune._loop import missing_val_groups


def test_missing_val_group_warns_once_per_run(small_digits, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    f = small_digits.frame
    table = small_digits.with_frame(f.filter(~((pl.col("split") == "val") & (pl.col("group") == 3))))
    table = api.SampleTable(
        table.frame,
        root=table.root,
        name=table.name,
        source=f"{table.source}#no-val-group-3",  # a dataset of its own for the once-per-dataset memo
        label_names=table.label_names,
        group_names=table.group_names,
    )
    assert missing_val_groups(table) == [3] and missing_val_groups(small_digits) == []
    x = np.random.default_rng(0).normal(size=(len(table), 8)).astype(np.float32)
    emb = EmbeddingTable(table.ids, x, {"encoder": "random"})
    cfg = FinetuneConfig(epochs=3, lr=0.01)
    with caplog.at_level("WARNING", logger="curate"):
        api.finetune(table, emb, api.select("keep-all", table), cfg)
        api.finetune(table, emb, api.select("keep-all", table), cfg)
    lines = [r.getMessage() for r in caplog.records if "no samples of group" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "group(s) 3 (" in lines[0] and "worst-group accuracy on val" in lines[0]
