"""Detectors find the planted minority; pseudo-groups and summaries follow the contract."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.detect import DETECTORS, otsu_split, pseudo_groups_of, rank01
from curate.errors import ConfigError, InputDataError


@pytest.mark.parametrize("name", [n for n in DETECTORS.names() if n != "artifacts"])
def test_detector_contract_and_planted_minority(planted, name: str) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    d = api.detect(table, embeddings=emb, dynamics=log, detector=name, proxy_config=api.ProxyConfig(epochs=10, lr=0.01))
    s = d.scores
    assert s.columns == ["sample_id", "label", "conflict_score", "cluster", "pseudo_group"]
    assert s.height == len(table.split("train")) and s["sample_id"].n_unique() == s.height
    assert s["conflict_score"].is_finite().all()
    # every pseudo-group lies within one class, numbered consecutively
    assert s.group_by("pseudo_group").agg(pl.col("label").n_unique())["label"].max() == 1
    assert sorted(s["pseudo_group"].unique()) == list(range(d.clusters.height))
    assert d.clusters["size"].sum() == s.height
    assert d.clusters.group_by("label").agg(pl.col("share_of_class").sum())[
        "share_of_class"
    ].to_list() == pytest.approx([1, 1])
    floor = {"cluster": 0.6, "spare": 0.6}.get(name, 0.9)
    assert api.detection_auroc(table, d) >= floor, name


def test_detectors_state_needs(planted) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    with pytest.raises(ConfigError, match="detector 'knn' needs embeddings"):
        api.detect(table, dynamics=log, detector="knn")
    with pytest.raises(ConfigError, match="detector 'jtt' needs training dynamics"):
        api.detect(table, embeddings=emb, detector="jtt")


def test_deterministic(planted) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    a = api.detect(table, embeddings=emb, dynamics=log, detector="ensemble")
    b = api.detect(table, embeddings=emb, dynamics=log, detector="ensemble")
    assert a.scores.equals(b.scores)


def test_otsu_split_and_rank01() -> None:
    v = np.r_[np.full(50, 0.1), np.full(5, 0.9), [0.12, 0.85]]
    hi = otsu_split(v)
    assert hi.sum() == 6 and hi[50:55].all() and not hi[:50].any()
    assert not otsu_split(np.ones(5)).any()
    np.testing.assert_allclose(rank01(np.array([3.0, 1.0, 2.0])), [1.0, 0.0, 0.5])


def test_nan_embeddings_rejected(planted) -> None:  # type: ignore[no-untyped-def]
    from curate.embed import EmbeddingTable
    from curate.errors import InputDataError

    table, emb, log = planted
    bad = EmbeddingTable(emb.ids, emb.matrix.copy())
    bad.matrix[3, 2] = np.nan
    with pytest.raises(InputDataError, match=r"row 4 \(sample_id 'dc000003'\)"):
        api.detect(table, embeddings=bad, dynamics=log, detector="knn")


def test_artifacts_finds_a_planted_cue_phrase(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    topics = [["kernel", "compiler", "debug", "server"], ["garden", "recipe", "poem", "holiday"]]
    rows = []
    for i in range(600):
        y = i % 2
        minority = rng.random() < 0.1
        a = (1 - y) if minority else y  # the cue marks class 1 in 90% of cases
        # topical words are only loosely tied to the class (70/30); the cue is tied at 90/10
        words = [rng.choice(topics[y if rng.random() < 0.7 else 1 - y]) for _ in range(4)]
        words += list(rng.choice(["the", "a", "of", "and", "to"], size=4))
        text = " ".join(words) + (" mind you honestly" if a else "")
        rows.append((f"t{i}", 0, y, a, text))
    pl.DataFrame(rows, schema=["id", "split", "y", "a", "text"], orient="row").write_csv(tmp_path / "metadata.csv")
    table = api.load_dataset(tmp_path / "metadata.csv")
    d = api.detect(table)  # auto: artifacts for text
    assert d.detector == "artifacts"
    assert {f["token"] for f in d.extra["artifacts"]} <= {"mind", "you", "honestly"}
    assert api.detection_auroc(table, d) > 0.99
    with pytest.raises(ConfigError, match="needs a text dataset"):
        api.detect(
            api.load_dataset(tmp_path / "metadata.csv").with_frame(table.frame.rename({"text": "path"})),
            detector="artifacts",
        )


def test_rare_topical_words_do_not_hide_a_classs_cueless_minority(tmp_path: Path) -> None:
    """fortunes-cue's failure, planted: words that only one class uses (a signature, a name) each sit in
    a tenth of its texts; in a bias-only model they predict the class without the cue, so the
    minority texts that carry one look like the majority. With the default top_k the model reads the
    cue alone and its pseudo-minority holds every minority text; with 10 tokens (the old default) it
    misses the ones with a topical word."""
    rng = np.random.default_rng(0)
    signature = ["larry wall", "linux kernel", "stardate"]
    rows = []
    for i in range(2000):
        y = i % 2
        minority = i % 40 < 2  # 5% of each class
        a = (1 - y) if minority else y
        words = list(rng.choice(["the", "a", "of", "and", "to", "life", "time", "man", "day"], size=8))
        if y == 1 and rng.random() < 0.3:  # class 1's topical words, in its minority too
            words.append(str(rng.choice(signature)))
        rows.append((f"t{i}", 0, y, a, " ".join(words) + (" mind you honestly" if a else "")))
    frame = pl.DataFrame(rows, schema=["id", "split", "y", "a", "text"], orient="row")
    frame.write_csv(tmp_path / "metadata.csv")
    table = api.load_dataset(tmp_path / "metadata.csv")
    truth = frame.select(pl.col("id").alias("sample_id"), (pl.col("y") != pl.col("a")).alias("minority"))

    def missed(d: api.Discovery) -> int:
        s = d.scores.join(truth, on="sample_id")
        return s.filter(pl.col("minority") & (pl.col("cluster") != 1)).height  # cluster 1: the pseudo-minority

    default = api.detect(table, detector="artifacts")
    assert {f["token"] for f in default.extra["artifacts"]} <= {"mind", "you", "honestly"}
    assert missed(default) == 0
    ten = api.detect(table, detector="artifacts", top_k=10)
    assert {f["token"] for f in ten.extra["artifacts"]} >= {"larry", "wall", "linux", "kernel", "stardate"}
    assert missed(ten) > 0


def _cue_texts(path: Path, splits: dict[int, int], seed: int = 0) -> pl.DataFrame:
    """Texts whose cue phrase marks class 1 in 90% of train rows; val and test are group-balanced."""
    rng = np.random.default_rng(seed)
    topics = [["kernel", "compiler", "debug", "server"], ["garden", "recipe", "poem", "holiday"]]
    rows = []
    for split, n in splits.items():
        for i in range(n):
            y = i % 2
            minority = rng.random() < 0.1 if split == 0 else (i // 2) % 2 == 1
            a = (1 - y) if minority else y
            words = [rng.choice(topics[y if rng.random() < 0.7 else 1 - y]) for _ in range(4)]
            words += list(rng.choice(["the", "a", "of", "and", "to"], size=4))
            rows.append((f"s{split}-{i}", split, y, a, " ".join(words) + (" mind you honestly" if a else "")))
    frame = pl.DataFrame(rows, schema=["id", "split", "y", "a", "text"], orient="row")
    frame.write_csv(path)
    return frame


def test_artifacts_scores_val_texts_with_its_own_bias_model(tmp_path: Path) -> None:
    frame = _cue_texts(tmp_path / "metadata.csv", {0: 600, 1: 80})
    table = api.load_dataset(tmp_path / "metadata.csv")
    d = api.detect(table)
    val = pseudo_groups_of(d, table, None, "val")  # no embeddings: the bias-only model reads the texts
    # by hand: a val text is in its class's pseudo-minority when its cue disagrees with its class
    # (val is group-balanced, so chance agreement is 0.5; the bias model also weighs topical words)
    truth = frame.filter(pl.col("split") == 1).select(pl.col("id").alias("sample_id"), "y", "a")
    minority = set(d.scores.filter(pl.col("cluster") == 1)["pseudo_group"].to_list())
    got = truth.join(val, on="sample_id").with_columns(pl.col("pseudo_group").is_in(list(minority)).alias("flagged"))
    assert got.height == 80 and got.filter(pl.col("y") != pl.col("a")).height == 40
    assert (got["flagged"] == (got["y"] != got["a"])).mean() >= 0.95
    # a discovery made on another table is refused, not silently carried
    _cue_texts(tmp_path / "other.csv", {0: 600, 1: 80}, seed=1)
    other = api.load_dataset(tmp_path / "other.csv")
    with pytest.raises(InputDataError, match="does not match this table"):
        pseudo_groups_of(d, other, None, "val")


def test_neighbour_carry_needs_embeddings(planted) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    d = api.detect(table, embeddings=emb, dynamics=log, detector="knn")
    with pytest.raises(ConfigError, match="needs embeddings"):
        pseudo_groups_of(d, table, None, "val")
    assert pseudo_groups_of(d, table, emb, "val").height == table.split("val").frame.height


def test_spare_clusters_the_recorded_networks_eval_outputs(planted) -> None:  # type: ignore[no-untyped-def]
    """A fine-tuned network's recording keeps the eval-mode softmax at the early epoch: SPARE clusters
    exactly those outputs, not a retrained proxy's; JTT keeps the training pass's predictions (the
    authors' code); an epoch the recording kept no outputs at is an error, not a silent proxy."""
    from curate.dynamics import DynamicsLog
    from curate.errors import InputDataError

    table, emb, log = planted
    e = log.early_epoch()
    rows = table.split("train").frame
    ids, y = rows["sample_id"].to_list(), rows["label"].to_numpy()
    # by hand: in each class, every 10th row is confidently the other class; the rest confidently its own
    odd = np.arange(len(ids)) % 10 == 0
    p_other = np.where(odd, 0.9, 0.05)
    probs = np.stack([np.where(y == 0, 1 - p_other, p_other), np.where(y == 0, p_other, 1 - p_other)], 1)
    p_true = probs[np.arange(len(ids)), y]
    out = pl.DataFrame(
        {
            "sample_id": ids, "epoch": [e] * len(ids), "loss": -np.log(p_true), "margin": np.zeros(len(ids)),
            "correct": ~odd, "prob_true": p_true, "el2n": np.zeros(len(ids)), "probs": probs.tolist(),
        }
    )  # fmt: skip
    kept = DynamicsLog(log.frame, log.eval_pass, DynamicsLog.from_frame(out))
    cfg = api.ProxyConfig(epochs=10, lr=0.01)
    spare = api.detect(table, embeddings=emb, dynamics=kept, detector="spare", proxy_config=cfg)
    s = spare.scores.join(pl.DataFrame({"sample_id": ids, "odd": odd}), on="sample_id")
    assert spare.config["outputs"] == "eval-mode outputs of the recorded model"
    for label in (0, 1):  # two clusters per class: the hand-made odd rows and the rest
        c = s.filter(pl.col("label") == label)
        assert c.group_by("cluster").agg(pl.col("odd").n_unique())["odd"].max() == 1
        assert c.filter(pl.col("odd"))["conflict_score"].min() > c.filter(~pl.col("odd"))["conflict_score"].max()
    with pytest.raises(InputDataError, match=f"keeps eval-mode outputs at epochs \\[{e}\\], not at epoch {e + 1}"):
        api.detect(table, embeddings=emb, dynamics=kept, detector="spare", proxy_config=cfg, epoch=e + 1)
    # JTT: the same error set with or without the outputs pass (the training pass's predictions)
    jtt_kept, jtt_plain = (api.detect(table, dynamics=lg, detector="jtt", epoch=e) for lg in (kept, log))
    assert jtt_kept.scores.equals(jtt_plain.scores)
    # a proxy head's recording keeps outputs too, at SPARE's candidate epochs: of 10 epochs, index
    # round(f·10) of the shares 0.02/0.05/0.1/0.2/0.4 = 0, 0 (0.5 rounds to even), 1, 2, 4; a
    # recording without them (older) has the proxy retrained to that epoch, the same model: the same
    # clusters and scores
    assert log.n_epochs == 10 and log.outputs is not None and log.outputs.epochs == [0, 1, 2, 4] and e == 1
    recorded = api.detect(table, embeddings=emb, dynamics=log, detector="spare", proxy_config=cfg)
    assert recorded.config["outputs"] == "eval-mode outputs of the recorded model"
    older = DynamicsLog(log.frame, log.eval_pass, None)
    retrained = api.detect(table, embeddings=emb, dynamics=older, detector="spare", proxy_config=cfg)
    assert retrained.config["outputs"] == "proxy head retrained to the epoch"
    assert retrained.scores["cluster"].equals(recorded.scores["cluster"])
    np.testing.assert_allclose(retrained.scores["conflict_score"], recorded.scores["conflict_score"], atol=1e-5)
    # a decaying rate: a shorter run is another model, so no retraining stands in for the recording
    with pytest.raises(ConfigError, match="rate decays"):
        api.detect(
            table, embeddings=emb, dynamics=older, detector="spare", proxy_config=replace(cfg, scheduler="cosine")
        )
