def test_top_share_split_and_resplit() -> None:
    import numpy as np
    import polars as pl

    from curate.detect import Discovery, resplit, split_top_share

    rows = pl.DataFrame({"sample_id": [f"s{i}" for i in range(8)], "label": [0, 0, 0, 0, 1, 1, 1, 1]})
    score = np.array([0.1, 0.9, 0.5, 0.2, 0.3, 0.8, 0.7, 0.1])
    np.testing.assert_array_equal(split_top_share(rows, score, 0.25), [0, 1, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(split_top_share(rows, score, 0.5), [0, 1, 1, 0, 0, 1, 1, 0])
    d = Discovery(
        rows.with_columns(
            pl.Series("conflict_score", score), pl.lit(0).alias("cluster"), pl.lit(0).alias("pseudo_group")
        ),
        pl.DataFrame(),
        "knn",
        {},
        {},
    )
    r = resplit(d, 0.5)
    assert r.config["minority_share"] == 0.5
    assert r.scores.filter(pl.col("cluster") == 1)["sample_id"].to_list() == ["s1", "s2", "s5", "s6"]
    assert r.scores["pseudo_group"].n_unique() == 4


def test_groups_at_train_cut_splits_new_rows_as_train_was_split() -> None:
    import numpy as np
    import polars as pl

    from curate.detect._base import build_discovery, groups_at_train_cut, resplit, split_by_score

    # class 0: Otsu puts 0.8 and 0.9 in the minority (cut 0.8); class 1: one score, no minority
    rows = pl.DataFrame({"sample_id": [f"t{i}" for i in range(7)], "label": [0, 0, 0, 0, 1, 1, 1]})
    conflict = np.array([0.1, 0.15, 0.8, 0.9, 0.3, 0.3, 0.3])
    disc = build_discovery(
        rows, conflict, split_by_score(rows, conflict), detector="artifacts", config={}, dynamics=None
    )
    g = dict(disc.scores.select("sample_id", "pseudo_group").iter_rows())
    new = pl.DataFrame({"sample_id": ["v0", "v1", "v2", "v3", "v4"], "label": [0, 0, 0, 1, 1]})
    got = groups_at_train_cut(disc, new, np.array([0.79, 0.8, 0.95, 0.99, 0.0]))
    # by hand: just below the cut, exactly at it (a tie: minority), above it; class 1 has no minority
    assert got["pseudo_group"].to_list() == [g["t0"], g["t2"], g["t2"], g["t4"], g["t4"]]
    # a top-share discovery takes the same share of each class of the new rows: class 0 round(1.5) = 2
    # of 3 (v1, v2), class 1 one of 2 (v3); train: class 0 t2, t3, class 1 t4, t5 (stable on ties)
    top = resplit(disc, 0.5)
    g = dict(top.scores.select("sample_id", "pseudo_group").iter_rows())
    got = groups_at_train_cut(top, new, np.array([0.1, 0.2, 0.3, 0.5, 0.4]))
    assert got["pseudo_group"].to_list() == [g["t0"], g["t2"], g["t2"], g["t4"], g["t6"]]
