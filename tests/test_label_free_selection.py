"""Model selection without group labels (``select_on="pseudo-groups"``): every candidate is scored on
one partition of val, fixed before any candidate trains (the default detector's pseudo-groups,
carried to val), never on the candidate's own."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from curate import api
from curate.dynamics import DynamicsLog
from curate.eval import minority_flags
from curate.finetune import FinetuneConfig
from curate.pipeline import tuning
from curate.pipeline.detect import minority_of

PROXY = api.ProxyConfig(epochs=10, lr=0.01)  # the `planted` fixture's recording


def test_reference_groups_find_the_val_minority(planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    ref = tuning.reference_groups(table, emb, log, PROXY, {}, tmp_path)
    val = table.split("val").frame.select("sample_id", "label")
    assert ref.height == val.height and set(ref["sample_id"]) == set(val["sample_id"])
    assert ref.equals(tuning.reference_groups(table, emb, log, PROXY, {}, tmp_path))  # cached, same rows
    # which pseudo-groups are minorities is decided on train, as the trainers see them
    disc = api.detect(table, embeddings=emb, dynamics=log, proxy_config=PROXY)
    flags = pl.concat([disc.scores.select("sample_id", "label", "pseudo_group"), ref.join(val, on="sample_id")],
                      how="diagonal_relaxed")  # fmt: skip
    flagged = flags.with_columns(minority_of(flags)).filter(pl.col("sample_id").is_in(val["sample_id"].implode()))
    truth = flagged.join(minority_flags(table.frame).rename({"minority": "true"}), on="sample_id")
    hit = truth.filter(pl.col("minority"))
    assert hit.height >= 10 and hit["true"].mean() >= 0.9  # chance: 0.5 (val is group-balanced)


def test_every_candidate_is_scored_on_one_val_partition(planted, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    val_ids = table.split("val").frame["sample_id"]
    seen: list[pl.DataFrame] = []
    real_train = tuning.train

    def spy(method, request, config):  # type: ignore[no-untyped-def]
        assert request.select_on == "pseudo-groups"
        seen.append(request.pseudo_groups.filter(pl.col("sample_id").is_in(val_ids.implode())).sort("sample_id"))
        return real_train(method, request, config)

    monkeypatch.setattr(tuning, "train", spy)
    disc, choice = tuning.choose_detector(
        table, emb, log, PROXY, {}, tmp_path, FinetuneConfig(seed=0), select_on="pseudo-groups"
    )
    assert len(seen) == len(tuning.DETECTOR_CANDIDATES["image"])
    assert seen[0].height == len(val_ids) and all(s.equals(seen[0]) for s in seen)
    assert seen[0].equals(tuning.reference_groups(table, emb, log, PROXY, {}, tmp_path).sort("sample_id"))
    assert choice["selection"] == tuning.SELECTION_LABELS["pseudo-groups"]
    best = max(choice["tried"], key=lambda k: (choice["tried"][k]["val_acc_wg"], choice["tried"][k]["val_acc_avg"]))
    assert choice["chosen"] == best == disc.detector


def test_a_trainer_that_reads_the_pseudo_groups_scores_the_candidates_itself(  # type: ignore[no-untyped-def]
    planted, tmp_path: Path, monkeypatch
) -> None:
    """DISPEL builds its training set from the pseudo-groups: a balanced head rating the candidates for
    it chose detectors whose tiny pseudo-minority made DISPEL fall far below ERM (README, "mix")."""
    from curate.finetune.dispel import DispelConfig

    table, emb, log = planted
    trained: list[str] = []
    real_train = tuning.train

    def spy(method, request, config):  # type: ignore[no-untyped-def]
        trained.append(method)
        return real_train(method, request, config)

    monkeypatch.setattr(tuning, "train", spy)
    cfg = DispelConfig(heads=2, s_values=(1.0,), c_values=(1.0,), seed=0)
    disc, choice = tuning.choose_detector(
        table, emb, log, PROXY, {}, tmp_path, FinetuneConfig(seed=0), scorer=("dispel", cfg)
    )
    assert trained == ["dispel"] * len(tuning.DETECTOR_CANDIDATES["image"])
    assert choice["scored_by"] == "dispel" and choice["chosen"] == disc.detector
    trained.clear()
    _, default = tuning.choose_detector(table, emb, log, PROXY, {}, tmp_path, FinetuneConfig(seed=0))
    assert trained == ["erm"] * len(tuning.DETECTOR_CANDIDATES["image"])  # not the DISPEL choice's cache entry
    assert default["scored_by"] == tuning.BALANCED_HEAD


def test_pseudo_group_selection_needs_the_reference(planted) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    disc = api.detect(table, embeddings=emb, dynamics=log, proxy_config=PROXY)
    with pytest.raises(ValueError, match="reference_groups"):
        tuning.selection_groups(disc, "pseudo-groups")
    assert tuning.selection_groups(disc, "val-groups").height == disc.scores.height


def test_jtt_t_shares_are_the_authors_epochs() -> None:
    """A T share f of E epochs reads the training pass of index round(f·E), never below 1: the
    authors' Waterbirds T = 60 of 300, CelebA 1 of 50, MultiNLI 2 of 5."""
    assert tuning.jtt_epoch(300, 0.2) == 60 and tuning.jtt_epoch(50, 0.02) == 1 and tuning.jtt_epoch(5, 0.4) == 2
    assert [tuning.jtt_epoch(30, f) for f in tuning.DETECT_GRIDS["jtt"]["epoch"]] == [1, 2, 3, 6, 12]
    assert tuning.jtt_epoch(5, 0.02) == 1 and tuning.jtt_epoch(1, 0.4) == 0  # one recorded epoch: its pass


def test_jtt_epochs_that_coincide_are_tuned_once(planted) -> None:  # type: ignore[no-untyped-def]
    """JTT's T grid (2/5/10/20/40% of training) read on 4 recorded epochs is the training passes of
    index max(1, round(f·4)) = 1, 1, 1, 1, 2 (T = 0 is no epoch of training, which the authors never
    take): each distinct epoch's discovery is built and scored once."""
    table, emb, full = planted
    log = DynamicsLog(full.frame.filter(pl.col("epoch") < 4), None, None)  # the first 4 epochs
    asked: list[dict] = []

    def discover(params: dict) -> object:  # type: ignore[type-arg]
        asked.append(params)
        return api.detect(table, dynamics=log, detector="jtt", **params)

    grid = {"lambda_up": (6.0,)}
    _, _, tried = tuning.tune_selection(
        table, emb, log, discover, "jtt", api.JTTConfig(), grid, FinetuneConfig(epochs=2, seed=0),
        detect_grid=tuning.DETECT_GRIDS["jtt"], epoch_of=tuning.EPOCH_OF_SHARE["jtt"],
    )  # fmt: skip
    assert log.n_epochs == 4 and [p["epoch"] for p in asked] == [1, 2]
    assert [t["detect.epoch"] for t in tried["tried"]] == [1, 2]


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # the share ties the detector's cut on WGA with a higher mean accuracy: the cut is kept
        ({None: (0.80, 0.80), 0.03: (0.80, 0.85), 0.1: (0.70, 0.90)}, None),
        # a share that beats it on WGA is taken, whatever its mean accuracy
        ({None: (0.80, 0.80), 0.03: (0.81, 0.70), 0.1: (0.70, 0.90)}, 0.03),
        # between two shares the usual tie-break, mean accuracy, decides
        ({None: (0.70, 0.80), 0.03: (0.81, 0.70), 0.1: (0.81, 0.75)}, 0.1),
    ],
)
def test_balance_keeps_the_detectors_cut_unless_a_share_beats_it_on_wga(planted, monkeypatch, scores, expected) -> None:  # type: ignore[no-untyped-def]
    table, emb, log = planted
    disc = api.detect(table, embeddings=emb, dynamics=log, detector="ensemble")

    def fake_score(table, emb, d, manifest, *args, **kwargs):  # type: ignore[no-untyped-def]
        return scores[manifest.provenance["config"]["minority_share"]]

    monkeypatch.setattr(tuning, "_val_score", fake_score)
    grid = {"minority_share": tuple(scores)}
    _, cfg, tried = tuning.tune_selection(
        table, emb, log, lambda params: disc, "balance", api.BalanceConfig(), grid, FinetuneConfig(epochs=1, seed=0)
    )
    assert cfg.minority_share == expected and tried["chosen"] == {"minority_share": expected}
    assert len(tried["tried"]) == 3
