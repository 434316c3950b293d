"""Trainable backbones: the registry's contract (generated over every name), real weights, stages
and freezing, input-level mixing on pixels and on token embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from curate.embed import BACKBONES, create_backbone, create_encoder
from curate.errors import ConfigError, UnknownNameError


def _specs(tiny: dict[str, Path]) -> dict[str, tuple[str, str]]:
    """A loadable spec and the modality it is tried on, for every registered backbone name."""
    return {
        "efficientnet-lite0": ("efficientnet-lite0", "image"),
        "torchvision": (f"torchvision:resnet18:{tiny['resnet18']}", "image"),
        "hf-text": (f"hf-text:{tiny['bert']}", "text"),
        "minilm": ("minilm", "text"),
        "clip": (f"clip:{tiny['clip']}", "image"),
        "small-cnn": ("small-cnn", "image"),
    }


def _inputs(backbone, modality: str, n: int = 3):  # type: ignore[no-untyped-def]
    if modality == "image":
        size = backbone.preprocess(32 if backbone.spec.startswith(("efficientnet", "torchvision")) else None).crop
        g = torch.Generator().manual_seed(0)
        return torch.randn(n, 3, size, size, generator=g), torch.randn(n, 3, size, size, generator=g), size
    tok = backbone.tokenizer()
    enc = tok(["the cat sat on the mat", "a dog barked", "love is patient"] * 2, padding=True, return_tensors="pt")
    enc = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    return {k: v[:n] for k, v in enc.items()}, {k: v[n : 2 * n].flip(0) for k, v in enc.items()}, None


@pytest.mark.parametrize("name", BACKBONES.names())
def test_contract(name: str, tiny: dict[str, Path]) -> None:
    spec, modality = _specs(tiny)[name]
    backbone = create_backbone(spec)
    x, partner, size = _inputs(backbone, modality)
    torch.manual_seed(0)
    net = backbone.build(3, modality=modality, image_size=size).eval()
    logits, feats = net(x)
    assert logits.shape == (3, 3) and feats.shape[0] == 3 and net.head.in_features == feats.shape[1]
    stages = net.stages()
    assert stages[-1] == "head" and len(stages) >= 2 and len(set(stages)) == len(stages)
    # mixing with lambda 0 leaves each row as it is; lambda 1 (images) gives the partner
    with torch.no_grad():
        same = net(x, partner, torch.zeros(3))[0]
        torch.testing.assert_close(same, logits)
        if modality == "image":
            torch.testing.assert_close(net(x, partner, torch.ones(3))[0], net(partner)[0])
        else:
            assert not torch.allclose(net(x, partner, torch.full((3,), 0.5))[0], logits)
    # train from a middle stage: earlier parameters frozen, later ones trained, frozen modules in eval
    mid = stages[len(stages) // 2]
    net.freeze_before(mid)
    names = [n for n, _ in net.named_parameters()]
    flags = [p.requires_grad for _, p in net.named_parameters()]
    first = next(i for i, n in enumerate(names) if n.startswith("body." + mid + ".") or n.startswith(mid + "."))
    assert not any(flags[:first]) and all(flags[first:])
    net.train()
    frozen = [
        m
        for m in net.modules()
        if any(True for _ in m.parameters()) and not any(p.requires_grad for p in m.parameters())
    ]
    assert frozen and all(not m.training for m in frozen) and net.head.training
    with pytest.raises(ConfigError, match="unknown stage"):
        net.freeze_before("nope")


def test_errors_name_the_fix(small_text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UnknownNameError, match="did you mean 'efficientnet-lite0'"):
        create_backbone("efficientnet-lite")
    with pytest.raises(ConfigError, match="not downloaded"):
        create_backbone("torchvision:resnet18")
    with pytest.raises(ConfigError, match="pick a text backbone"):
        create_backbone("small-cnn").check_modality("text")
    with pytest.raises(ConfigError, match="needs a model"):
        create_backbone("hf-text")


def test_efficientnet_lite0_loads_the_pretrained_weights() -> None:
    """At 224 px the network's body gives the encoder's embedding (same ImageNet weights)."""
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    net = create_backbone("efficientnet-lite0").build(2, image_size=224).eval()
    enc = create_encoder("efficientnet-lite0").load("cpu")
    with torch.no_grad():
        _, feats = net(x)
        torch.testing.assert_close(feats, enc.encode_images(x), rtol=1e-4, atol=1e-4)
    assert net.stages()[:3] == ["_conv_stem", "_bn0", "_blocks.0"] and "_blocks.15" in net.stages()


def test_image_size_rescales_the_pretrained_preprocessing() -> None:
    b = create_backbone("efficientnet-lite0")
    assert (b.preprocess(None).resize, b.preprocess(None).crop) == (256, 224)
    p = b.preprocess(96)
    assert (p.resize, p.crop) == (110, 96) and p.mean == b.preprocess(None).mean
    net = b.build(2, image_size=96).eval()
    assert net(torch.zeros(1, 3, 96, 96))[0].shape == (1, 2)


def test_grad_cam_maps_are_kept_when_asked(tiny: dict[str, Path]) -> None:
    for spec in ("small-cnn", f"torchvision:resnet18:{tiny['resnet18']}"):
        net = create_backbone(spec).build(2).eval()
        net(torch.zeros(1, 3, 32, 32))
        assert net.last_maps is None
        net.keep_maps = True
        net(torch.zeros(1, 3, 32, 32))
        assert net.last_maps is not None and net.last_maps.ndim == 4


def test_text_mixing_happens_on_the_token_embeddings(tiny: dict[str, Path]) -> None:
    b = create_backbone(f"hf-text:{tiny['bert']}")
    net = b.build(2, modality="text").eval()
    tok = b.tokenizer()
    enc = tok(["the cat sat", "a dog barked"], padding=True, return_tensors="pt")
    x = {k: enc[k][:1] for k in ("input_ids", "attention_mask")}
    p = {k: enc[k][1:] for k in ("input_ids", "attention_mask")}
    emb = net.body.get_input_embeddings()
    lam = 0.3
    # by hand: the word embeddings mixed, then the same encoder and pooling
    mixed = lam * emb(p["input_ids"]) + (1 - lam) * emb(x["input_ids"])
    seen = {}
    handle = emb.register_forward_hook(lambda m, a, out: seen.setdefault("out", out.detach().clone()))
    with torch.no_grad():
        net(x, p, torch.tensor([lam]))
    handle.remove()
    # the hook saw the module's own output; what the encoder consumed is the mixture
    with torch.no_grad():
        h = net.body(inputs_embeds=mixed, attention_mask=torch.maximum(x["attention_mask"], p["attention_mask"]))
        m = torch.maximum(x["attention_mask"], p["attention_mask"]).unsqueeze(-1).float()
        by_hand = (h.last_hidden_state * m).sum(1) / m.sum(1)
        torch.testing.assert_close(net(x, p, torch.tensor([lam]))[1], by_hand, rtol=1e-5, atol=1e-5)
    assert np.isfinite(seen["out"].numpy()).all()


def test_stage_names_of_a_vit() -> None:
    """A parameter sitting on the body names its own stage; `encoder_layer_N` blocks are stages; a
    linear probe (`head`) trains the head alone."""
    from torchvision.models import VisionTransformer

    from curate.embed._networks import TorchvisionNetwork

    vit = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=16)
    vit.heads.head = torch.nn.Identity()
    net = TorchvisionNetwork(vit, 16, 2)
    assert net.stages() == [
        "class_token", "conv_proj", "encoder", "encoder.layers.encoder_layer_0", "encoder.layers.encoder_layer_1",
        "head",
    ]  # fmt: skip
    net.freeze_before("head")
    assert [n for n, p in net.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    net.freeze_before("encoder.layers.encoder_layer_1")
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    assert "body.encoder.ln.weight" in trained and "body.encoder.layers.encoder_layer_0.ln_1.weight" not in trained
    with pytest.raises(ConfigError, match="fixed"):
        create_backbone("torchvision:vit_b_16:random").build(2, image_size=96)
    assert not create_backbone("torchvision:resnet18:random").pretrained
