"""Fine-tuning heads on manifests: GroupDRO's known answer, DFR, selection by validation WGA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from curate import api
from curate.finetune import FinetuneConfig, GroupDRO, manifest_inputs
from curate.manifest import Manifest, manifest_frame


def test_groupdro_weights_move_to_the_worst_group() -> None:
    class Fixed(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    dro = GroupDRO(Fixed(), n_groups=2, eta=0.5)
    # group 0 is fitted (small loss), group 1 is not (large loss)
    batch = {
        "x": torch.tensor([[4.0, 0.0], [4.0, 0.0], [0.0, 2.0]]),
        "label": torch.tensor([0, 0, 0]),
        "group": torch.tensor([0, 0, 1]),
    }
    loss0 = torch.nn.functional.cross_entropy(batch["x"][:2], batch["label"][:2])
    loss1 = torch.nn.functional.cross_entropy(batch["x"][2:], batch["label"][2:])
    out = dro.step(batch)
    q1 = np.exp(0.5 * loss1.item()) / (np.exp(0.5 * loss0.item()) + np.exp(0.5 * loss1.item()))
    assert float(dro.q[1]) == pytest.approx(q1, rel=1e-5)
    assert float(out["loss"]) == pytest.approx((1 - q1) * loss0.item() + q1 * loss1.item(), rel=1e-5)
    for _ in range(20):
        dro.step(batch)
    assert float(dro.q[1]) > 0.99


def test_manifest_inputs_mix_embeddings() -> None:
    from curate.embed import EmbeddingTable

    emb = EmbeddingTable(pl.Series("sample_id", ["a", "b"]), np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    rows = manifest_frame(
        pl.DataFrame(
            {
                "sample_id": ["a", "b"],
                "source": ["a", "b"],
                "label": [0, 1],
                "weight": [1.0, 1.0],
                "mix_with": [None, "a"],
                "mix_lambda": [None, 0.25],
            }
        )
    )
    x = manifest_inputs(Manifest(rows), emb, np.zeros(2, np.float32), np.ones(2, np.float32))
    np.testing.assert_allclose(x, [[1.0, 0.0], [0.25, 0.75]])


def test_oracle_beats_erm_and_dfr_runs(planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, emb, _ = planted
    cfg = FinetuneConfig(epochs=8, lr=0.01)
    erm = api.finetune(table, emb, api.select("keep-all", table), cfg)
    oracle = api.finetune(table, emb, api.select("oracle", table), cfg, out=tmp_path / "run")
    assert oracle.test.acc_wg > erm.test.acc_wg + 0.1  # the planted attribute fools ERM's minority groups
    assert 0 <= oracle.best_epoch < 8 and oracle.test.group_source == "true"
    dfr = api.finetune(table, emb, api.select("keep-all", table), FinetuneConfig(method="dfr", epochs=4, lr=0.01))
    assert dfr.test.acc_wg > erm.test.acc_wg
    dro = api.finetune(table, emb, api.select("keep-all", table), FinetuneConfig(method="groupdro", epochs=8, lr=0.01))
    assert dro.test.acc_wg > erm.test.acc_wg
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["acc_wg"] == oracle.test.acc_wg and metrics["manifest"]["method"] == "oracle"
    assert pl.read_parquet(tmp_path / "run" / "predictions.parquet").height == 400 + 200
