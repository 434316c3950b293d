"""``curate run``: the whole pipeline on digits-color with a tiny encoder, its outputs, resume and errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curate import api
from curate.dynamics.log import epoch_at_fraction
from curate.errors import ConfigError, InputDataError, UnknownNameError
from curate.pipeline import tuning
from curate.pipeline.run import discovery_feeds_training
from tests._cli import invoke as cli
from tests.embed import tiny_models

FAST = {"dynamics": {"epochs": 4}, "finetune": {"epochs": 3}}


@pytest.mark.integration
def test_run_writes_every_output_and_resumes(digits_dir: Path, tmp_path: Path) -> None:
    vit = tiny_models.tiny_vit(tmp_path / "vit")
    toml = tmp_path / "fast.toml"
    toml.write_text("[dynamics]\nepochs = 4\n\n[finetune]\nepochs = 3\n")
    out = tmp_path / "runs"
    r = cli(
        "run", str(digits_dir / "metadata.csv"), "--encoder", str(vit), "--method", "erm", "--method", "oracle",
        "--out", str(out), "--config", str(toml), "--workspace", str(tmp_path / "ws"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "test worst-group accuracy" in r.stdout and "true train groups" in r.stdout
    for m in ("erm", "oracle"):
        metrics = json.loads((out / m / "metrics.json").read_text())
        assert {"acc_avg", "acc_wg", "adj_acc_avg", "groups"} <= set(metrics)
        assert set(metrics["groups"]) == {"0", "1", "2", "3"} and metrics["acc_wg"] == min(metrics["groups"].values())
        assert (out / m / "report.md").exists() and not (out / m / "manifest.json").exists()  # provenance embedded
        assert pl.read_parquet(out / m / "manifest.parquet").height > 0
        scores = pl.read_parquet(out / m / "scores.parquet")
        assert scores.columns == [
            "sample_id", "label", "conflict_score", "pseudo_group", "minority", "group", "true_minority",
        ] and scores.height == 1000  # fmt: skip
        assert scores["minority"].any() and not scores["minority"].all()
    ws = api.Workspace(tmp_path / "ws")  # every run recorded its detection; the last one is current
    recorded = ws.outputs("detect")
    assert recorded and all(r["by"] == "curate run" for r in recorded.values())
    assert recorded[str(ws.latest("detect"))]["run"] == str(out / "oracle")
    erm = json.loads((out / "erm" / "metrics.json").read_text())
    # plain ERM picks its epoch by mean val accuracy (the field's baseline): no group labels anywhere
    assert erm["train_groups"] == "none" and erm["label_free"]
    assert erm["model_selection"] == "mean val accuracy (plain ERM's model selection; no group labels)"
    oracle = json.loads((out / "oracle" / "metrics.json").read_text())
    assert oracle["model_selection"] == "true val groups" and not oracle["label_free"]
    assert (
        erm["backbone"] == "head on frozen embeddings"
        and "head on frozen embeddings" in (out / "erm" / "report.md").read_text()
    )
    # a rerun finds every stage cached and the training run finished: same metrics
    first = json.loads((out / "erm" / "metrics.json").read_text())
    r = cli(
        "run", str(digits_dir / "metadata.csv"), "--encoder", str(vit), "--method", "erm", "--out", str(out / "erm"),
        "--config", str(toml), "--workspace", str(tmp_path / "ws"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "loaded cached embed" in r.stderr + r.stdout and "loaded cached detect" in r.stderr + r.stdout
    again = json.loads((out / "erm" / "metrics.json").read_text())
    assert again["acc_wg"] == first["acc_wg"] and again["groups"] == first["groups"]


@pytest.mark.integration
def test_run_methods_on_a_planted_signal(digits_dir: Path, tmp_path: Path) -> None:
    vit = tiny_models.tiny_vit(tmp_path / "vit")
    table = api.load_dataset(digits_dir)
    for method in ("prune", "mix", "balance", "jtt", "spare", "dfr", "groupdro", "contrastive"):
        m = api.run(table, method=method, out=tmp_path / method, encoder=str(vit), config=FAST)
        assert 0.0 <= m["acc_wg"] <= m["acc_avg"] <= 1.0, method
        assert m["manifest"]["method"] in ("prune", "mix", "balance", "jtt", "spare", "keep-all", "oracle"), method
        last_layer = "; the last layer's grid on true val groups (a half split, as DFR/DISPEL)"
        assert m["train_groups"] and m["model_selection"] == "true val groups" + (last_layer if method == "dfr" else "")
        if method == "mix":  # on heads: DISPEL picks (alpha, s, C) on its own half split, from every train row
            assert m["tuning"] is None and m["dispel"]["chosen_on"] == "train pseudo-groups (half split)"
            assert m["manifest"]["method"] == "keep-all"
        elif method == "balance" and m["detector"] == "cluster":  # clusters have no share to cut at
            assert m["tuning"] is None and m["manifest"]["config"]["minority_share"] is None
        elif method in api.RUN_GRIDS:  # the open parameters were picked on validation WGA, from the grid
            tried = m["tuning"]["tried"]
            grid = m["tuning"]["grid"]
            # every point once: JTT's T shares are training passes of the 4-epoch proxy, index round(f·4)
            # and at least 1 (the authors never take T = 0): 0.02/0.05/0.1 -> 1, 0.2 -> 1, 0.4 -> 2
            shares = grid.get("detect.epoch")
            epochs = {tuning.jtt_epoch(FAST["dynamics"]["epochs"], f) for f in shares} if shares else {None}
            assert epochs == ({1, 2} if method == "jtt" else {None})
            if method == "jtt":
                assert {t["detect.epoch"] for t in tried} == {1, 2}
            selection = [v for k, v in grid.items() if not k.startswith("detect.")]
            assert set(api.RUN_GRIDS[method]) <= set(grid) and len(tried) == len(epochs) * int(
                np.prod([len(v) for v in selection])
            )
            # the best val WGA; on a tie, a point keeping the default (balance's detector cut, None) first
            best = max(
                (t for t in tried if "skipped" not in t),
                key=lambda t: (t["val_acc_wg"], all(t[k] is None for k in api.RUN_GRIDS[method]), t["val_acc_avg"]),
            )
            chosen = m["tuning"]["chosen"]
            assert all(chosen[k] == best[k] for k in api.RUN_GRIDS[method])
            assert all(m["manifest"]["config"][k] == chosen[k] for k in api.RUN_GRIDS[method])
            if method == "jtt":  # T was tuned too: the discovery used is the one of the chosen epoch
                assert "detect.epoch" in grid and m["manifest"]["config"] is not None
        if method in ("balance", "prune", "mix"):  # the discovery was picked the same way
            choice = m["detector_choice"]
            assert m["detector"] == choice["chosen"] and set(choice["tried"]) == {
                "features",
                "ensemble",
                "knn",
                "jtt",
                "cluster",
            }
        if method in ("jtt", "spare"):
            assert m["detector"] == method
        if method == "spare":  # its sampling power and inference epoch are picked on validation
            # the lab's powers, and the 4-epoch proxy's outputs at index round(f·4) of the shares
            # 0.02/0.05/0.1/0.2/0.4: 0, 0, 0, 1, 2 (after 1, 2 and 3 epochs), each pair tried once
            tried = m["tuning"]["tried"]
            assert {t["detect.high_sampling_power"] for t in tried} == {1.0, 2.0, 3.0}
            assert sorted({t["detect.epoch"] for t in tried}) == [0, 1, 2] and len(tried) == 9
            chosen, used = m["tuning"]["chosen"], m["manifest"]["inputs"]["discovery"]["config"]
            assert used["high_sampling_power"] == chosen["detect.high_sampling_power"]
            assert used["epoch"] == chosen["detect.epoch"]


@pytest.mark.integration
def test_prune_with_named_carriers_chooses_and_tunes_no_detector(digits_dir: Path, tmp_path: Path) -> None:
    vit = tiny_models.tiny_vit(tmp_path / "vit")
    table = api.load_dataset(digits_dir)
    config = FAST | {"select": {"attribute": "a"}}
    named = api.run(table, method="prune", out=tmp_path / "named", encoder=str(vit), config=config)
    # the carriers come from the column: no detector is chosen, only p is tuned (6 points)
    assert named["train_groups"] == "attribute column 'a' (named, not inferred)" and not named["label_free"]
    assert named["detector_choice"] is None and set(named["tuning"]["grid"]) == {"fraction"}
    assert len(named["tuning"]["tried"]) == len(api.RUN_GRIDS["prune"]["fraction"])
    assert named["manifest"]["config"]["carriers"] == "attribute"
    config = FAST | {"select": {"attribute": "a"}, "detect": {"detector": "jtt"}}  # nor JTT's epoch tuned with p
    named = api.run(table, method="prune", out=tmp_path / "named-jtt", encoder=str(vit), config=config)
    assert set(named["tuning"]["grid"]) == {"fraction"} and named["detector"] == "jtt"
    config = FAST | {"detect": {"detector": "jtt"}}  # inferred carriers: JTT's epoch is tuned with p
    inferred = api.run(table, method="prune", out=tmp_path / "inferred", encoder=str(vit), config=config)
    assert set(inferred["tuning"]["grid"]) == {"fraction", "detect.epoch"}


@pytest.mark.integration
def test_run_without_group_labels_scores_by_class(digits_dir: Path, tmp_path: Path) -> None:
    vit = tiny_models.tiny_vit(tmp_path / "vit")
    table = api.load_dataset(digits_dir)
    no_groups = table.with_frame(table.frame.drop("group", "a"))
    m = api.run(no_groups, method="prune", out=tmp_path / "prune", encoder=str(vit), config=FAST)
    assert m["test"]["group_source"] == "class (no groups known)" and m["detection_auroc"] is None
    assert m["acc_wg"] == m["test"]["acc_worst_class"]
    assert m["tuning"]["groups"] == "classes: worst-class accuracy (val has no groups)" and m["label_free"]


def test_run_rejects_bad_settings(digits_dir: Path, tmp_path: Path) -> None:
    table = api.load_dataset(digits_dir)
    with pytest.raises(ConfigError, match="unknown section"):
        api.run(table, method="erm", out=tmp_path / "x", config={"train": {}})
    with pytest.raises(UnknownNameError, match="did you mean 'erm'"):
        api.run(table, method="ermm", out=tmp_path / "x")
    with pytest.raises(ConfigError, match=r"\[finetune\]"):
        api.run(table, method="erm", out=tmp_path / "x", config={"finetune": {"epoch": 3}}, encoder="nope")
    no_groups = table.with_frame(table.frame.drop("group"))
    with pytest.raises(InputDataError, match="needs true group labels"):
        api.run(no_groups, method="oracle", out=tmp_path / "x")
    bad = tmp_path / "bad.toml"
    bad.write_text("[finetune\nepochs=")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        api.read_run_config(bad)
    assert not (tmp_path / "x").exists()


@pytest.mark.integration
def test_a_network_run_fine_tunes_twice_only_when_its_training_set_reads_the_discovery(
    digits_dir: Path, tmp_path: Path
) -> None:
    """A keep-all run (erm) reports the discovery of the proxy head's dynamics and fine-tunes the network
    once; prune's manifest is cut by the network's own early EL2N, so it records the network's dynamics."""
    clip = str(tiny_models.tiny_clip(tmp_path / "clip"))
    table = api.load_dataset(digits_dir)
    ws = tmp_path / "ws"
    config = {"dynamics": {"epochs": 2}, "finetune": {"epochs": 1, "image_size": 32, "batch_size": 64}}
    assert not discovery_feeds_training("keep-all", "erm") and discovery_feeds_training("prune", "erm")
    assert discovery_feeds_training("keep-all", "dispel")  # DISPEL builds its set B from the pseudo-groups
    assert not discovery_feeds_training("oracle", "contrastive")  # true groups: the discovery is only reported
    kw = {"encoder": clip, "backbone": "network", "device": "cpu", "workspace": ws, "config": config}
    erm = api.run(table, method="erm", out=tmp_path / "erm", **kw)  # type: ignore[arg-type]
    assert erm["backbone"].startswith("fine-tuned network") and erm["detection_auroc"] is not None
    assert not list(ws.rglob("network-dynamics"))  # only the run's own fine-tuning
    prune = api.run(table, method="prune", out=tmp_path / "prune", **kw)  # type: ignore[arg-type]
    assert prune["backbone"].startswith("fine-tuned network")
    assert len([p for p in ws.rglob("network-dynamics/*") if p.is_dir()]) == 1  # the network's dynamics
    # SPARE clusters that network's own eval-mode outputs early in training (not a proxy head's)
    spare = api.run(table, method="spare", out=tmp_path / "spare", **kw)  # type: ignore[arg-type]
    assert len([p for p in ws.rglob("network-dynamics/*") if p.is_dir()]) == 1  # the same recording
    provenance = json.loads((tmp_path / "spare" / "metrics.json").read_text())["manifest"]
    assert provenance["inputs"]["discovery"]["config"]["outputs"] == "eval-mode outputs of the recorded model", spare


def test_each_run_says_the_groups_its_configs_train_with() -> None:
    from curate.pipeline.run_plan import check_sections, plan_method

    def plan(method: str, backbone: str = "head", **cfg: dict):  # type: ignore[no-untyped-def,type-arg]
        sections = check_sections(cfg, "test")
        return plan_method(method, sections, dev="cpu", backbone=backbone, seed=0, encoder=None, table=None)

    assert plan("prune").train_groups == "pseudo (inferred by the detector)"
    # carriers from a named column are not inferred: the label says so, and label_free cannot hold
    assert plan("prune", select={"attribute": "a"}).train_groups == "attribute column 'a' (named, not inferred)"
    assert plan("groupdro").train_groups == "true train groups"
    assert plan("groupdro", finetune={"groups": "pseudo"}).train_groups == "pseudo (inferred by the detector)"
    assert plan("mix", finetune={"source": "val"}).train_groups == "true val groups (DISPEL's group-labelled set)"
    assert plan("mix", finetune={"source": "train"}).train_groups == "true train groups (DISPEL's group-labelled set)"
    with pytest.raises(ConfigError, match="source 'train' is DISPEL's last layer on a head"):
        plan("mix", backbone="network", finetune={"source": "train"})
    # DISPEL on heads draws its own sets: its manifest is every train row, not the unused mixing one
    head_mix = plan("mix")
    assert (head_mix.trainer, head_mix.sel_name, head_mix.train_groups) == (
        "dispel", "keep-all", "pseudo (inferred by the detector)"
    )  # fmt: skip
    # on a network, mix-val is DISPEL on the fine-tuned network's val features (never plain ERM) ...
    net_val = plan("mix-val", backbone="network")
    assert (net_val.trainer, net_val.train_cfg.method) == ("dispel-val", "dispel-val")
    assert net_val.train_groups == "true val groups (DISPEL's group-labelled set)"
    # ... and mix trains ERM on the mixing manifest's input-level pairs
    net_mix = plan("mix", backbone="network")
    assert (net_mix.trainer, net_mix.sel_name, net_mix.train_cfg.is_network) == ("erm", "mix", True)
    # the contrastive method samples uniformly over the true groups, as the authors' loader does
    c = plan("contrastive")
    assert (c.sel_name, c.train_groups) == (
        "oracle", "true train groups (sampled uniformly over groups) + attributes (the spurious-class term)"
    )  # fmt: skip


def test_a_head_runs_proxy_trains_as_its_final_head() -> None:
    """prune scores EL2N on a run with the retraining's hyperparameters (METHODS.md, steps 1 and 5)."""
    from curate.pipeline.run_plan import check_sections, plan_method

    def plan(backbone: str = "head", method: str = "prune", **cfg: dict):  # type: ignore[no-untyped-def,type-arg]
        sections = check_sections(cfg, "test")
        return plan_method(method, sections, dev="cpu", backbone=backbone, seed=3, encoder=None, table=None)

    final = plan().head_cfg.train_config(plan().head_cfg.settings(modality="image", device="cpu"))
    proxy = plan().proxy.train_config(0)
    same = ("epochs", "lr", "weight_decay", "batch_size", "optimizer", "scheduler", "max_grad_norm")
    assert [getattr(proxy, k) for k in same] == [getattr(final, k) for k in same]
    # 30 epochs: EL2N's eval pass at 40% is epoch index 11, as the authors' 9 of 25 (round(0.4·E) − 1)
    assert proxy.epochs == 30 and epoch_at_fraction(proxy.epochs, plan().proxy.eval_fraction) == 11
    # a head set in [finetune] is the proxy too; a field set in [dynamics] wins
    p = plan(finetune={"epochs": 12, "lr": 0.01, "head": "mlp", "hidden": 64}).proxy
    assert (p.epochs, p.lr, p.head, p.hidden, p.seed) == (12, 0.01, "mlp", 64, 3)
    # every method of a run shares the one recording, whatever its trainer (DISPEL, the contrastive head)
    shared = plan(finetune={"epochs": 12, "lr": 0.01}).proxy
    for method in ("mix", "mix-val", "contrastive", "masktune", "jtt", "groupdro"):
        assert plan(method=method, finetune={"epochs": 12, "lr": 0.01}).proxy == shared, method
    # a bad head setting is named by the section it was written in
    with pytest.raises(ConfigError, match=r"\[finetune\] lr"):
        plan(finetune={"lr": -1.0})
    p = plan(finetune={"epochs": 12}, dynamics={"epochs": 5}).proxy
    assert p.epochs == 5
    # a network run records the network itself: its proxy head keeps the head defaults
    assert plan("network", finetune={"epochs": 2}).proxy == replace(api.ProxyConfig(), seed=3)
