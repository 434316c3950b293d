"""``curate embed`` → ``dynamics`` → ``cluster`` on a workspace, as a user runs them (the CLI in-process: `tests/_cli.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from curate.manifest import read_manifest
from tests._cli import invoke as run
from tests.embed import tiny_models


@pytest.mark.integration
def test_embed_dynamics_cluster(tmp_path: Path) -> None:
    vit = tiny_models.tiny_vit(tmp_path / "vit")
    data = tmp_path / "dc"
    assert run("datasets", "make", "digits-color", "--out", str(data), "--n-train", "200").returncode == 0
    ws = tmp_path / "ws"
    r = run("embed", str(data / "metadata.csv"), "--encoder", str(vit), "--out", str(ws))
    assert r.returncode == 0, r.stderr
    assert "x 32 embeddings" in r.stdout
    r = run("embed", str(ws), "--encoder", str(vit), "--out", str(ws))  # a workspace as DATA: cache hit
    assert r.returncode == 0 and "loaded cached embed" in r.stdout + r.stderr
    r = run("dynamics", str(ws), "--epochs", "3")
    assert r.returncode == 0, r.stderr
    assert "el2n_score" in r.stdout and "digit < 5 / blue" in r.stdout
    assert (ws / "scores" / "dynamics.parquet").exists()
    r = run("cluster", str(ws), "--k", "2")
    assert r.returncode == 0, r.stderr
    assert "purity" in r.stdout
    r = run("detect", str(ws), "--detector", "jtt")
    assert r.returncode == 0, r.stderr
    assert "minority-detection AUROC" in r.stdout
    for k, args in enumerate(
        (
            ["prune", str(ws), "--fraction", "0.3"],
            ["mix", str(ws)],
            ["balance", str(ws), "--mode", "subsample"],
            ["balance", str(ws), "--groups", "true"],
            ["select", "jtt", str(ws)],
            ["select", "keep-all", str(ws)],
        )
    ):
        out = tmp_path / "m" / f"{k}-{args[0]}.parquet"
        r = run(*args, "--out", str(out))
        assert r.returncode == 0, (args, r.stderr)
        assert out.exists() and read_manifest(out).provenance["method"]  # embedded: no sidecar
    cut = tmp_path / "m" / "balance-share.parquet"  # each class's pseudo-minority at its top 10%
    r = run("balance", str(ws), "--minority-share", "0.1", "--out", str(cut))
    assert r.returncode == 0, r.stderr
    assert read_manifest(cut).provenance["config"]["minority_share"] == 0.1
    r = run("balance", str(ws), "--minority-share", "2", "--out", str(tmp_path / "m" / "bad.parquet"))
    assert r.returncode != 0 and "minority_share" in r.stderr + r.stdout
    r = run(
        "finetune",
        str(ws),
        "--manifest",
        str(tmp_path / "m" / "3-balance.parquet"),
        "--epochs",
        "3",
        "--out",
        str(tmp_path / "run"),
    )
    assert r.returncode == 0, r.stderr
    assert "test acc_wg" in r.stdout and (tmp_path / "run" / "metrics.json").exists()
    for method, manifest, extra in (  # every method trains and evaluates from the CLI
        ("erm", "4-select.parquet", ["--head", "mlp"]),  # JTT = ERM on the jtt manifest
        ("groupdro", "3-balance.parquet", []),
        ("dfr", "5-select.parquet", []),
        ("erm", "5-select.parquet", ["--backbone", "cnn"]),
        # the pretrained network fine-tuned, its first stages frozen, at a small input size
        (
            "erm",
            "3-balance.parquet",
            ["--backbone", "efficientnet-lite0", "--image-size", "32", "--train-from", "_blocks.12"],
        ),
        ("masktune", "5-select.parquet", ["--backbone", "small-cnn"]),
        ("contrastive", "3-balance.parquet", ["--spurious", "red background", "--spurious", "blue background"]),
        ("dispel", "5-select.parquet", ["--groups", "train"]),  # B from the true train groups
    ):
        run_dir = tmp_path / f"run-{method}-{manifest}"
        args = ["--manifest", str(tmp_path / "m" / manifest), "--method", method, "--epochs", "2"]
        r = run("finetune", str(ws), *args, *extra, "--out", str(run_dir))
        assert r.returncode == 0, (method, r.stderr)
        assert "test acc_wg" in r.stdout and (run_dir / "metrics.json").exists()
        r = run("evaluate", str(run_dir))
        assert r.returncode == 0 and "acc_wg" in r.stdout, (method, r.stderr)
    assert "true train groups (half split)" in (tmp_path / "run-dispel-5-select.parquet" / "metrics.json").read_text()
    # "true" names no set for DISPEL (train or val?): refused, not read as the pseudo-groups
    args = ["--manifest", str(tmp_path / "m" / "5-select.parquet"), "--method", "dispel", "--groups", "true"]
    r = run("finetune", str(ws), *args, "--out", str(tmp_path / "run-dispel-true"))
    assert r.returncode == 2 and "source" in r.stderr and "'train'" in r.stderr, r.stderr
    net = tmp_path / "run-erm-3-balance.parquet" / "metrics.json"
    assert '"backbone": "fine-tuned network (efficientnet-lite0)"' in net.read_text()
    # dynamics of the fine-tuned network: the same shards, every scorer works on them
    r = run("dynamics", str(ws), "--proxy", "network", "--backbone", "small-cnn", "--epochs", "2")
    assert r.returncode == 0, r.stderr
    assert "fine-tuned small-cnn" in r.stdout and "el2n_score" in r.stdout
    assert "/outputs(SPARE)" in "".join(r.stdout.split())  # the recording keeps SPARE's early outputs
    r = run("evaluate", str(tmp_path / "run"))
    assert r.returncode == 0 and "acc_wg" in r.stdout and "digit < 5 / blue" in r.stdout
    r = run("export", str(out), "--out", str(tmp_path / "m" / "keep.csv"))
    assert r.returncode == 0 and (tmp_path / "m" / "keep.csv").exists()
    r = run("select", "prnue", str(ws), "--out", str(tmp_path / "bad.parquet"))
    assert r.returncode == 2 and "did you mean 'prune'" in r.stderr and not (tmp_path / "bad.parquet").exists()
    r = run("dynamics", str(tmp_path / "nope"))
    assert r.returncode == 1 and "not a curate workspace" in r.stderr


def test_list_encoders_and_scorers() -> None:
    r = run("list", "scorers")
    assert {
        "el2n",
        "grand",
        "forgetting",
        "first-learned",
        "confidence",
        "variability",
        "correctness",
        "aum",
        "loss",
        "early-loss",
    } <= set(r.stdout.split())
    r = run("list", "encoders")
    assert {"minilm", "efficientnet-lite0", "hf-text", "hf-vision", "clip", "torchvision"} <= set(r.stdout.split())
