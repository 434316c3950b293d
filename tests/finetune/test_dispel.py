"""DISPEL (data mixing on the last layer): one head's mixed set by hand, the grid chosen on a held-out
half, and the method beating ERM's heads where the shortcut is planted."""

from __future__ import annotations

import numpy as np
import pytest

from curate import api
from curate.finetune import DispelConfig, TrainRequest, mixed_set, train


def test_mixed_set_mixes_same_class_rows_of_the_group_balanced_set() -> None:
    # 2 classes x 2 groups; rows carry their own index so every mix can be traced
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    g = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3])
    x = np.arange(len(y), dtype=np.float64)[:, None] * np.array([[1.0, 0.0]]) + np.array([[0.0, 1.0]]) * y[:, None]
    xm, ym = mixed_set(x, y, g, alpha=1.0, s=0.8, rng=np.random.default_rng(0))
    assert len(ym) == 10 and (ym == 0).sum() == (ym == 1).sum() == 5  # class-balanced U (smallest class: 5)
    # every row is 0.8 * b + 0.2 * u with b and u of the same class: the class coordinate is kept
    assert np.allclose(xm[:, 1], ym)
    # no mixing with alpha 0: U itself
    xu, yu = mixed_set(x, y, g, alpha=0.0, s=0.8, rng=np.random.default_rng(0))
    assert set(xu[:, 0].round().astype(int)) <= set(range(len(y))) and np.allclose(xu[:, 1], yu)


def test_dispel_on_pseudo_groups_and_on_val_groups(planted) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    disc = api.detect(table, embeddings=emb, dynamics=log, detector="ensemble")
    pseudo = disc.scores.select("sample_id", "pseudo_group")
    cfg = DispelConfig(s_values=(1.0, 0.8), c_values=(1.0, 0.1), heads=5)
    r = train("dispel", TrainRequest(table, api.select("keep-all", table), emb, pseudo), cfg)
    assert r.extra["dispel"]["chosen_on"] == "train pseudo-groups (half split)"
    assert len(r.extra["dispel"]["tried"]) == 4
    best = max(r.extra["dispel"]["tried"], key=lambda t: t["held_out_wga"])
    assert (r.extra["dispel"]["s"], r.extra["dispel"]["C"]) == (best["s"], best["C"])
    erm = api.finetune(table, emb, api.select("keep-all", table), api.FinetuneConfig(epochs=8, lr=0.01), device="cpu")
    assert r.test.acc_wg > erm.test.acc_wg + 0.1  # the planted attribute dominates ERM's head
    v = train(
        "dispel", TrainRequest(table, api.select("keep-all", table), emb, pseudo), DispelConfig(source="val", heads=3)
    )
    assert v.extra["dispel"]["chosen_on"] == "true val groups (half split)"
    with pytest.raises(Exception, match="pseudo-groups"):
        train("dispel", TrainRequest(table, api.select("keep-all", table), emb), cfg)


def test_dispels_train_source_fits_the_true_train_groups(planted) -> None:  # type: ignore[no-untyped-def]
    from curate.finetune.dispel import fit_dispel

    table, emb, _ = planted
    cfg = DispelConfig(source="train", s_values=(1.0, 0.8), c_values=(1.0, 0.1), heads=3)
    # no pseudo-groups given: the train split's own group column is the labelled set
    r = train("dispel", TrainRequest(table, api.select("keep-all", table), emb), cfg)
    assert r.extra["dispel"]["chosen_on"] == "true train groups (half split)"
    tr = table.split("train").frame
    raw = emb.select(tr["sample_id"]).matrix.astype(np.float64)
    sd = raw.std(0)
    x = (raw - raw.mean(0)) / np.where(sd > 1e-8, sd, 1.0)
    by_hand = fit_dispel(x, tr["label"].to_numpy(), tr["group"].to_numpy(), cfg)[2]
    assert (r.extra["dispel"]["s"], r.extra["dispel"]["C"]) == (by_hand["s"], by_hand["C"])
    assert r.extra["dispel"]["tried"] == by_hand["tried"]


def test_a_fit_on_the_same_inputs_is_made_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from curate.finetune import dispel

    fits = []
    real = dispel.l1_logistic
    monkeypatch.setattr(dispel, "l1_logistic", lambda c, seed: fits.append(c) or real(c, seed=seed))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 3)), np.repeat([0, 1], 40)
    g = y * 2 + (rng.random(80) < 0.2)
    cfg = DispelConfig(s_values=(1.0,), c_values=(1.0, 0.1), heads=3, seed=7)
    first = dispel.fit_dispel(x, y, g, cfg)
    assert len(fits) == 2 + 3  # the grid on one half, then the heads
    again = dispel.fit_dispel(x.copy(), y.copy(), g.copy(), cfg)
    assert len(fits) == 5 and np.array_equal(first[0], again[0]) and first[2] == again[2]
    again[2]["s"] = -1.0  # the caller's copy: the kept fit is not changed through it
    assert dispel.fit_dispel(x, y, g, cfg)[2]["s"] == 1.0 and len(fits) == 5
    g2 = g.copy()
    g2[0] = 1 - g2[0]  # other groups: fitted afresh
    dispel.fit_dispel(x, y, g2, cfg)
    assert len(fits) == 10
    dispel.fit_dispel(x, y, g, DispelConfig(s_values=(1.0,), c_values=(1.0, 0.1), heads=3, seed=8))  # other config
    assert len(fits) == 15


def test_dispel_val_refits_the_last_layer_of_the_trained_model_on_val_groups(planted) -> None:  # type: ignore[no-untyped-def]
    # DFR's protocol (any backbone, a fine-tuned network included): ERM, then DISPEL on its val features
    table, emb, _ = planted
    keep = api.select("keep-all", table)
    cfg = api.FinetuneConfig(epochs=8, lr=0.01)
    erm = api.finetune(table, emb, keep, cfg, device="cpu")
    r = train("dispel-val", TrainRequest(table, keep, emb), cfg)
    d = r.extra["dispel"]
    assert d["chosen_on"] == "true val groups (half split)" and len(d["tried"]) == 7 * 4
    best = max(d["tried"], key=lambda t: t["held_out_wga"])
    assert (d["s"], d["C"]) == (best["s"], best["C"])
    assert r.test.acc_wg > erm.test.acc_wg + 0.1  # ERM's head leans on the planted attribute; DISPEL^val does not
    no_groups = table.with_frame(table.frame.drop("group"))
    with pytest.raises(Exception, match="true groups, and this dataset has none"):
        train("dispel-val", TrainRequest(no_groups, api.select("keep-all", no_groups), emb), cfg)
