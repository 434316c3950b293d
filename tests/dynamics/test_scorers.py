"""Every scorer on a hand-computed log, plus registry-wide contracts."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.dynamics import SCORERS, DynamicsLog
from curate.errors import InputDataError

P_A = [0.4, 0.7, 0.45, 0.8]
P_B = [0.1, 0.2, 0.3, 0.2]
M_A = [-0.5, 1.0, -0.2, 1.5]
M_B = [-2.0, -1.0, -0.5, -1.2]
C_A = [False, True, False, True]
E_A = [0.6, 0.3, 0.55, 0.2]
E_B = [1.2, 1.1, 0.9, 1.0]
F_A = [1.0, 1.0, 2.0, 2.0]
F_B = [3.0, 3.0, 3.0, 3.0]


def hand_log(*, second_run: bool = False, feat: bool = True) -> DynamicsLog:
    rows = []
    for e in range(4):
        rows.append((0, e, "a", -math.log(P_A[e]), M_A[e], C_A[e], P_A[e], E_A[e], F_A[e] if feat else None))
        rows.append((0, e, "b", -math.log(P_B[e]), M_B[e], False, P_B[e], E_B[e], F_B[e] if feat else None))
    if second_run:
        rows += [(1, e, sid, 1.0, 0.0, True, 0.5, 0.1, 1.0) for e in range(4) for sid in ("a", "b")]
    cols = ["run", "epoch", "sample_id", "loss", "margin", "correct", "prob_true", "el2n", "feat_norm"]
    return DynamicsLog.from_frame(pl.DataFrame(rows, schema=cols, orient="row"))


def scores(name: str, log: DynamicsLog, **kw: object) -> dict[str, float]:
    df = SCORERS.get(name)(log, **kw)
    return dict(zip(df["sample_id"], df["score"], strict=True))


def test_early_epoch_is_ten_percent() -> None:
    assert hand_log().early_epoch() == 0
    big = DynamicsLog.from_frame(hand_log().frame.with_columns(pl.col("epoch") * 10))
    assert big.n_epochs == 31 and big.early_epoch() == 3


def test_el2n_at_epoch_and_mean_over_runs() -> None:
    assert scores("el2n", hand_log()) == pytest.approx({"a": 0.6, "b": 1.2})
    assert scores("el2n", hand_log(), epoch=2) == pytest.approx({"a": 0.55, "b": 0.9})
    assert scores("el2n", hand_log(second_run=True), epoch=1) == pytest.approx(
        {"a": (0.3 + 0.1) / 2, "b": (1.1 + 0.1) / 2}
    )
    with pytest.raises(InputDataError, match="epoch 9 not in the log"):
        scores("el2n", hand_log(), epoch=9)


def test_grand_last_layer() -> None:
    got = scores("grand", hand_log(), epoch=2)
    assert got == pytest.approx({"a": 0.55 * math.sqrt(2.0**2 + 1), "b": 0.9 * math.sqrt(3.0**2 + 1)})
    with pytest.raises(InputDataError, match="GraNd needs"):
        scores("grand", hand_log(feat=False))


def test_forgetting_and_first_learned() -> None:
    assert scores("forgetting", hand_log()) == {"a": 1.0, "b": 4.0}  # b never learned: n_epochs
    assert scores("first-learned", hand_log()) == {"a": 1.0, "b": 4.0}
    # run 1 is always correct: 0 events and learned at epoch 0; averaged with run 0
    assert scores("forgetting", hand_log(second_run=True)) == {"a": 0.5, "b": 2.0}


def test_cartography() -> None:
    assert scores("confidence", hand_log()) == pytest.approx({"a": np.mean(P_A), "b": np.mean(P_B)})
    assert scores("variability", hand_log()) == pytest.approx({"a": np.std(P_A), "b": np.std(P_B)})
    assert scores("correctness", hand_log()) == pytest.approx({"a": 0.5, "b": 0.0})


def test_aum_and_losses() -> None:
    assert scores("aum", hand_log()) == pytest.approx({"a": np.mean(M_A), "b": np.mean(M_B)})
    assert scores("loss", hand_log()) == pytest.approx({"a": np.mean(-np.log(P_A)), "b": np.mean(-np.log(P_B))})
    assert scores("early-loss", hand_log(), epoch=1) == pytest.approx(
        {"a": np.mean(-np.log(P_A[:2])), "b": np.mean(-np.log(P_B[:2]))}
    )


@pytest.mark.parametrize("name", SCORERS.names())
def test_scorer_contract(name: str) -> None:
    log = hand_log(second_run=True)
    out = SCORERS.get(name)(log)
    assert out.columns == ["sample_id", "score"] and out.schema["score"] == pl.Float64
    assert out["sample_id"].to_list() == ["a", "b"] and out["score"].is_finite().all()
    shuffled = DynamicsLog(log.frame.sample(fraction=1.0, shuffle=True, seed=3))
    assert SCORERS.get(name)(shuffled).equals(out)  # order of the long table does not matter
    assert SCORERS.meta(name)["higher"]  # every scorer states its direction


def test_score_dynamics_joins_named_columns() -> None:
    df = api.score_dynamics(hand_log(), ["el2n", "aum"])
    assert df.columns == ["sample_id", "el2n_score", "aum_score"]
    assert set(api.score_dynamics(hand_log(feat=False)).columns) == {"sample_id"} | {
        f"{n.replace('-', '_')}_score" for n in SCORERS.names() if n != "grand"
    }


def test_nan_loss_rejected() -> None:
    bad = hand_log().frame.with_columns(
        pl.when(pl.col("epoch") == 2).then(float("nan")).otherwise(pl.col("loss")).alias("loss")
    )
    with pytest.raises(InputDataError, match="NaN loss at run 0 epoch 2"):
        DynamicsLog(bad)
