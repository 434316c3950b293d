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
