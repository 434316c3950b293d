"""The device reaches every stage: each trainer and each detector that trains receives the resolved
device (a fake device recorder stops it there), ``api`` resolves it once and passes it on, and a
machine without CUDA asked for ``cuda`` fails with one clear error."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from curate import api
from curate.detect import DETECTORS, Signals
from curate.dynamics import DynamicsLog
from curate.errors import DeviceUnavailableError
from curate.finetune import FINETUNE_METHODS, ContrastiveConfig, FinetuneConfig, MaskTuneConfig, TrainRequest, train

FAKE = "meta"  # a device torch accepts without hardware


class Reached(Exception):
    pass


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Stop at the loop's model placement and at any encoder load, recording the device."""
    import curate.embed._base as base
    import curate.train.loop as loop

    seen: list[str] = []

    def place(model: Any, device: str, channels_last: bool) -> None:
        seen.append(device)
        raise Reached

    def load(self: Any, device: str) -> Any:
        seen.append(device)
        raise Reached

    monkeypatch.setattr(loop, "_place", place)
    monkeypatch.setattr(base.Encoder, "load", load)
    return seen


CONFIGS: dict[str, list[Any]] = {
    "erm": [FinetuneConfig(), FinetuneConfig(backbone="small-cnn")],
    "groupdro": [FinetuneConfig(), FinetuneConfig(backbone="small-cnn")],
    "dfr": [FinetuneConfig(), FinetuneConfig(backbone="small-cnn")],
    "dispel-val": [FinetuneConfig(), FinetuneConfig(backbone="small-cnn")],
    "masktune": [MaskTuneConfig(backbone="small-cnn")],
    "contrastive": [ContrastiveConfig()],
}


def test_every_trainer_receives_the_device(planted, recorder: list[str]) -> None:  # type: ignore[no-untyped-def]
    table, emb, _ = planted
    assert set(CONFIGS) | {"dispel"} == set(FINETUNE_METHODS.names())  # DISPEL: scikit-learn heads, no device
    manifest = api.select("oracle", table)
    for name, configs in CONFIGS.items():
        for cfg in configs:
            recorder.clear()
            with pytest.raises(Reached):
                train(name, TrainRequest(table, manifest, emb, device=FAKE), cfg)
            assert recorder == [FAKE], (name, cfg)


def test_detectors_and_proxies_that_train_receive_the_device(planted, recorder: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from curate.dynamics import ProxyConfig, train_proxy

    table, emb, log = planted
    older = DynamicsLog(log.frame, log.eval_pass, None)  # no outputs kept: SPARE retrains the proxy there
    with pytest.raises(Reached):
        DETECTORS.get("spare")(table, Signals(emb, older, ProxyConfig(epochs=10, lr=0.01).to_dict(), device=FAKE))
    with pytest.raises(Reached):
        train_proxy(emb, table, ProxyConfig(epochs=2), tmp_path / "p", device=FAKE)
    assert recorder == [FAKE, FAKE]


def test_api_resolves_the_device_once_and_passes_it_on(
    planted, digits_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """With CUDA reported present, ``device="cuda"`` reaches every stage of ``run`` and the other
    verbs; each stage then runs on the CPU here (the wrappers swap the device after recording it)."""
    import importlib

    import curate._core.device as device

    # modules by name: `curate.pipeline.run` the attribute is the function of that name
    spare, dyn, ft, run, tuning, sig = (
        importlib.import_module(f"curate.{m}")
        for m in (
            "detect.spare", "pipeline.dynamics", "pipeline.finetune", "pipeline.run", "pipeline.tuning",
            "pipeline.signals",
        )
    )  # fmt: skip

    monkeypatch.setattr(device, "cuda_available", lambda: True)
    seen: dict[str, list[str]] = {}

    def spy(module: Any, name: str, *, kw: str = "device") -> None:
        real = getattr(module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kw == "request":  # train(method, request, cfg)
                req = args[1]
                seen.setdefault(f"{module.__name__}.{name}", []).append(req.device)
                return real(args[0], replace(req, device="cpu"), *args[2:], **kwargs)
            seen.setdefault(f"{module.__name__}.{name}", []).append(kwargs[kw])
            return real(*args, **(kwargs | {kw: "cpu"}))

        monkeypatch.setattr(module, name, wrapper)

    spy(run, "embed")
    spy(run, "train", kw="request")
    spy(tuning, "train", kw="request")
    spy(ft, "train", kw="request")
    spy(dyn, "train_proxy")
    spy(dyn, "train", kw="request")
    spy(spare, "proxy_outputs")
    table, emb, log = planted
    from tests.embed import tiny_models

    vit = tiny_models.tiny_vit(tmp_path / "vit")
    fast = {"dynamics": {"epochs": 3}, "finetune": {"epochs": 2}}
    api.run(
        table, method="balance", out=tmp_path / "run", encoder=str(vit), config=fast, device="cuda", backbone="head"
    )
    api.finetune(table, emb, api.select("keep-all", table), FinetuneConfig(epochs=1), device="cuda")
    older = DynamicsLog(log.frame, log.eval_pass, None)  # no outputs kept: SPARE retrains the proxy there
    api.detect(table, embeddings=emb, dynamics=older, detector="spare", device="cuda")
    small = api.make_benchmark("digits-color", tmp_path / "dc", n_train=40, n_val_per_group=2, n_test_per_group=2)
    api.record_network_dynamics(small, config=FinetuneConfig(backbone="small-cnn", epochs=1), device="cuda")
    spy(sig, "embed")
    spy(sig, "detect")  # score: the device reaches its detector (jtt trains nothing of its own)
    api.score(small, encoder=str(vit), signals=("el2n", "conflict"), detector="jtt", device="cuda")
    assert set(seen) == {
        "curate.pipeline.run.embed",
        "curate.pipeline.run.train",
        "curate.pipeline.tuning.train",
        "curate.pipeline.finetune.train",
        "curate.pipeline.dynamics.train_proxy",
        "curate.pipeline.dynamics.train",
        "curate.pipeline.signals.detect",
        "curate.pipeline.signals.embed",
        "curate.detect.spare.proxy_outputs",
    }
    assert all(d == "cuda" for devices in seen.values() for d in devices), seen


def test_cuda_asked_on_a_machine_without_it_fails_with_one_clear_error(digits_dir: Path, tmp_path: Path) -> None:
    from curate._core.device import cuda_available
    from tests.test_cli import run as cli

    if cuda_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        api.finetune(api.load_dataset(digits_dir), None, api.select("keep-all", api.load_dataset(digits_dir)),
                     FinetuneConfig(backbone="small-cnn"), device="cuda")  # fmt: skip
    r = cli("run", str(digits_dir / "metadata.csv"), "-m", "erm", "--out", str(tmp_path / "r"), "--device", "cuda")
    assert r.returncode != 0 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


@pytest.mark.gpu
def test_network_fine_tunes_on_cuda(digits_dir: Path, tmp_path: Path) -> None:
    """On a CUDA machine: bf16 autocast, channels-last, the model and batches on the GPU."""
    from curate._core.device import cuda_available

    if not cuda_available():
        pytest.skip("no CUDA device")
    table = api.load_dataset(digits_dir)
    r = api.finetune(
        table,
        None,
        api.select("keep-all", table),
        FinetuneConfig(backbone="efficientnet-lite0", epochs=2),
        device="cuda",
    )
    assert r.config["device"] == "cuda" and r.config["precision"] == "bf16" and r.config["image_size"] == 224
    assert r.test.acc_avg > 0.5
