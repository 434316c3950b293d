"""Each selection method: its algorithm on known inputs, balance improvement, determinism, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.errors import ConfigError, InputDataError, UnknownNameError
from curate.select import group_weights


@pytest.fixture(scope="module")
def disc(planted):  # type: ignore[no-untyped-def]
    table, emb, log = planted
    return api.detect(table, embeddings=emb, dynamics=log, detector="ensemble")


def build(method: str, planted, disc, cfg=None):  # type: ignore[no-untyped-def]
    table, _, log = planted
    return api.select(method, table, disc, cfg, dynamics=log)


@pytest.mark.parametrize("method", ["keep-all", "oracle", "balance", "jtt", "spare", "prune", "mix"])
def test_every_method_moves_towards_balance_and_is_reproducible(method: str, planted, disc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table = planted[0]
    m = build(method, planted, disc)
    assert m.method == method and len(m) > 0
    bal = api.group_balance(m, table)
    if method == "keep-all":
        assert bal["manifest_tv"] == pytest.approx(bal["input_tv"])
    else:
        assert bal["manifest_tv"] < bal["input_tv"], (method, bal)
    api.write_manifest(m, tmp_path / "a.parquet")
    api.write_manifest(build(method, planted, disc), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    prov = m.provenance
    assert prov["method"] == method and prov["inputs"]["dataset"] == table.fingerprint()
    assert prov["counts"]["train"] == 1000


def test_group_weights_modes() -> None:
    keys = np.array([0] * 6 + [1] * 2 + [2] * 4)
    rng = np.random.default_rng(0)
    idx, w = group_weights(keys, mode="reweight", rng=rng)
    assert np.allclose(np.bincount(keys[idx], weights=w), [4, 4, 4]) and w.mean() == pytest.approx(1.0)
    idx, w = group_weights(keys, mode="subsample", rng=rng)
    assert np.bincount(keys[idx]).tolist() == [2, 2, 2] and len(set(idx)) == 6
    idx, w = group_weights(keys, mode="upsample", rng=rng)
    assert np.bincount(keys[idx]).tolist() == [6, 6, 6] and set(np.flatnonzero(keys == 1)) <= set(idx)


def test_oracle_balances_true_groups_exactly(planted, disc) -> None:  # type: ignore[no-untyped-def]
    m = build("oracle", planted, disc)
    shares = m.group_shares()["share"].to_list()
    assert shares == pytest.approx([0.25] * 4)
    sub = build("oracle", planted, disc, api.BalanceConfig(mode="subsample"))
    assert sub.frame.group_by("group").len()["len"].to_list() == [25] * 4


def test_balance_cuts_each_class_to_its_top_minority_share(planted, disc) -> None:  # type: ignore[no-untyped-def]
    # 500 train rows a class: at 3% each class's pseudo-minority is its 15 highest conflict scores,
    # picked here by hand; every other row of the class is its majority
    m = build("balance", planted, disc, api.BalanceConfig(minority_share=0.03))
    scores = disc.scores.sort("conflict_score", "sample_id", descending=[True, False])
    flagged = set()
    for y in (0, 1):
        rows = scores.filter(pl.col("label") == y)
        assert rows.height == 500
        flagged |= set(rows["sample_id"][:15])
    w = dict(zip(m.frame["sample_id"], m.frame["weight"], strict=True))
    # reweight N / (G n_g): 1000 / (4 * 15) for the flagged, 1000 / (4 * 485) for the rest
    assert {i for i, v in w.items() if v == pytest.approx(1000 / 60)} == flagged
    assert all(v == pytest.approx(1000 / (4 * 485)) for i, v in w.items() if i not in flagged)
    assert m.provenance["config"]["minority_share"] == 0.03
    assert m.provenance["inputs"]["discovery"]["config"]["minority_share"] == 0.03
    # the detector's own cut (the default) is another partition: the share changes the manifest
    assert set(build("balance", planted, disc).frame["sample_id"]) == set(w) and flagged != set(
        disc.scores.filter(pl.col("cluster") == 1)["sample_id"]
    )


def test_balance_share_is_checked_and_refused_where_it_cannot_apply(planted, disc) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="minority_share"):
        api.BalanceConfig(minority_share=1.5)
    with pytest.raises(ConfigError, match="minority_share"):
        build("oracle", planted, disc, api.BalanceConfig(minority_share=0.1))  # the true groups are not cut
    table, emb, log = planted
    clusters = api.detect(table, embeddings=emb, dynamics=log, detector="cluster")
    with pytest.raises(ConfigError, match="clusters"):
        build("balance", planted, clusters, api.BalanceConfig(minority_share=0.1))


def test_jtt_weights_the_error_set(planted, disc) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    d = api.detect(table, embeddings=emb, dynamics=log, detector="jtt")
    m = api.select("jtt", table, d, api.JTTConfig(lambda_up=7))
    err = set(d.scores.filter(pl.col("cluster") == 1)["sample_id"])
    w = dict(zip(m.frame["sample_id"], m.frame["weight"], strict=True))
    assert all(w[i] == 7 for i in err) and all(v == 1 for i, v in w.items() if i not in err)
    up = api.select("jtt", table, d, api.JTTConfig(lambda_up=3, upsample=True))
    assert len(up) == 1000 + 2 * len(err)


def _hand_case():  # type: ignore[no-untyped-def]
    """Twelve train samples, two classes; pseudo-groups and EL2N written by hand."""
    from curate.data import SampleTable
    from curate.detect import Discovery
    from curate.dynamics import DynamicsLog

    ids = [f"c{i}" for i in range(6)] + [f"d{i}" for i in range(6)]
    labels = [0] * 6 + [1] * 6
    table = SampleTable(
        pl.DataFrame(
            {
                "sample_id": ids,
                "label": labels,
                "split": ["train"] * 12,
                "text": ids,
                "a": [0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0],
            }
        )
    )
    # class 0: majority pseudo-group 0 = c0..c3; class 1: majority pseudo-group 3 = d0..d3
    pg = [0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 2, 2]
    scores = pl.DataFrame(
        {
            "sample_id": ids,
            "label": labels,
            "conflict_score": [0.0] * 12,
            "cluster": [p % 2 for p in pg],
            "pseudo_group": pg,
        }
    )
    disc = Discovery(scores, pl.DataFrame({"pseudo_group": [0, 1, 2, 3]}), "hand")
    el2n = [0.9, 0.1, 0.5, 0.7, 0.95, 0.2, 0.3, 0.8, 0.6, 0.05, 0.99, 0.4]  # eval-mode pass, epoch 3
    zeros = [0.0] * 12
    frame = {"sample_id": ids, "loss": zeros, "margin": zeros, "correct": [True] * 12, "prob_true": zeros}
    passes = DynamicsLog.from_frame(pl.DataFrame({**frame, "epoch": [3] * 12, "el2n": el2n}))
    # in-training logits say the opposite: pruning must not read them when an eval pass exists
    seen = pl.concat([pl.DataFrame({**frame, "epoch": [e] * 12, "el2n": [1 - v for v in el2n]}) for e in range(10)])
    return table, disc, DynamicsLog(DynamicsLog.from_frame(seen).frame, passes)


def test_prune_removes_the_hardest_of_each_majority_group_by_hand() -> None:
    table, disc, log = _hand_case()

    def dropped(cfg):  # type: ignore[no-untyped-def]
        m = api.select("prune", table, disc, cfg, dynamics=log)
        return set(table.ids) - set(m.frame["sample_id"]), m

    # carriers: c0 c1 c2 c3 (EL2N .9 .1 .5 .7) and d0 d1 d2 d3 (.3 .8 .6 .05); half of each goes
    hard, m = dropped(api.PruneConfig(fraction=0.5))
    assert hard == {"c0", "c3", "d1", "d2"}  # c4 and d4, the hardest of all, are minority: kept
    assert m.provenance["config"]["el2n"] == {"source": "eval-mode pass", "epoch": 3}
    assert dropped(api.PruneConfig(fraction=0.5, order="easiest"))[0] == {"c1", "c2", "d3", "d0"}
    rnd = dropped(api.PruneConfig(fraction=0.5, order="random"))[0]
    assert len(rnd) == 4 and rnd <= {"c0", "c1", "c2", "c3", "d0", "d1", "d2", "d3"}
    assert dropped(api.PruneConfig(fraction=0.25))[0] == {"c0", "d1"}
    # a named attribute defines the majority: class 0's a=0 (c0..c3), class 1's a=1 (d0..d3)
    assert dropped(api.PruneConfig(fraction=0.5, attribute="a"))[0] == {"c0", "c3", "d1", "d2"}
    # unidentifiable: the hardest half of every class, minority included
    assert dropped(api.PruneConfig(fraction=0.5, setting="unidentifiable"))[0] == {"c4", "c0", "c3", "d4", "d1", "d2"}
    with pytest.raises(ConfigError, match="order"):
        api.PruneConfig(order="middle")


def test_a_selection_that_would_train_plain_erm_is_refused() -> None:
    from curate.detect import Discovery
    from curate.errors import EmptySelectionError

    table, disc, log = _hand_case()
    # four carriers a class: 10% of them rounds to no sample, and prune would be the whole train split
    with pytest.raises(EmptySelectionError, match="fraction 0.1 of the carriers is no sample"):
        api.select("prune", table, disc, api.PruneConfig(fraction=0.1), dynamics=log)
    assert len(api.select("prune", table, disc, api.PruneConfig(fraction=0.2), dynamics=log)) == 10
    # an error set with no sample: JTT's upweighting would change nothing
    none_wrong = Discovery(disc.scores.with_columns(pl.lit(0).alias("cluster")), disc.clusters, "jtt")
    with pytest.raises(EmptySelectionError, match="error set .* is empty"):
        api.select("jtt", table, none_wrong)
    assert api.select("jtt", table, disc, api.JTTConfig(lambda_up=5)).frame["weight"].max() == 5


def test_prune_reads_in_training_logits_at_forty_percent_without_an_eval_pass(planted, disc) -> None:  # type: ignore[no-untyped-def]
    from curate.dynamics import DynamicsLog

    table, _, log = planted
    plain = DynamicsLog(log.frame)
    m = api.select("prune", table, disc, api.PruneConfig(fraction=0.2), dynamics=plain)
    # the eval pass's index: after 40% of the epochs (9 of 25; here 3 of 10)
    assert plain.n_epochs == 10
    assert m.provenance["config"]["el2n"] == {"source": "in-training logits", "epoch": 3}
    full = api.select("prune", table, disc, api.PruneConfig(fraction=0.2), dynamics=log)
    assert full.provenance["config"]["el2n"]["source"] == "eval-mode pass"
    by_attr = api.select("prune", table, None, api.PruneConfig(fraction=0.2, attribute="a"), dynamics=log)
    assert len(by_attr) == 1000 - 2 * round(0.2 * 475)
    uni = api.select("prune", table, None, api.PruneConfig(fraction=0.1, setting="unidentifiable"), dynamics=log)
    assert len(uni) == 900 and uni.frame.group_by("label").len()["len"].to_list() == [450, 450]
    with pytest.raises(ConfigError, match="needs training dynamics"):
        api.select("prune", table, disc)
    with pytest.raises(ConfigError, match="'fraction' must be a float in \\(0, 1\\); got 1.5"):
        api.PruneConfig(fraction=1.5)


def test_mix_pairs_within_class_from_balanced_set(planted, disc) -> None:  # type: ignore[no-untyped-def]
    table = planted[0]
    m = build("mix", planted, disc, api.MixConfig(alpha=0.6, s=0.7))
    f = m.frame
    assert f.group_by("label").len()["len"].to_list() == [500, 500]
    mixed = f.filter(pl.col("mix_with").is_not_null())
    assert 0.5 < mixed.height / f.height < 0.7 and (mixed["mix_lambda"] == 0.7).all()
    labels = dict(zip(table.frame["sample_id"], table.frame["label"], strict=True))
    assert all(labels[a] == labels[b] for a, b in zip(mixed["sample_id"], mixed["mix_with"], strict=True))


def test_spare_equal_class_totals(planted) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    d = api.detect(
        table, embeddings=emb, dynamics=log, detector="spare", proxy_config=api.ProxyConfig(epochs=10, lr=0.01)
    )
    m = api.select("spare", table, d)
    tot = m.frame.group_by("label").agg(pl.col("weight").sum()).sort("label")["weight"].to_list()
    assert tot[0] == pytest.approx(tot[1]) and m.frame["weight"].mean() == pytest.approx(1.0)
    sizes = d.scores.group_by("pseudo_group").len()
    j = m.frame.join(sizes, on="pseudo_group")
    power = d.extra["sampling_powers"]
    for y in (0, 1):
        c = j.filter(pl.col("label") == y)
        prod = c["weight"] * c["len"].cast(pl.Float64) ** power[y]
        assert prod.max() == pytest.approx(prod.min())  # weight ∝ 1/size^power within a class


def test_bad_inputs(planted, disc) -> None:  # type: ignore[no-untyped-def]
    table = planted[0]
    with pytest.raises(UnknownNameError, match="did you mean 'prune'"):
        api.select("prun", table, disc)
    with pytest.raises(ConfigError, match="needs pseudo-groups"):
        api.select("balance", table, None)
    with pytest.raises(ConfigError, match="takes a MixConfig"):
        api.select("mix", table, disc, api.PruneConfig())
    no_groups = table.with_frame(table.frame.drop("group"))
    with pytest.raises(InputDataError, match="oracle needs true group labels"):
        api.select("oracle", no_groups, disc)


def test_api_wrappers_and_empty_class(planted, disc, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    assert api.prune(table, disc, log, fraction=0.1).method == "prune"
    assert api.mix(table, disc, alpha=0.2).method == "mix"
    assert api.balance(table, None, groups="true").method == "oracle"
    one_class = table.with_frame(table.frame.filter((pl.col("label") == 0) | (pl.col("split") != "train")))
    with pytest.raises(InputDataError, match="the train split holds a single class"):
        api.detect(one_class, embeddings=emb, dynamics=log, detector="knn")
