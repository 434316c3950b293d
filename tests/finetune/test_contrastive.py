"""The multi-modal contrastive method: its loss on a hand-computed 2x2 case, the spurious term's
effect, the CLIP identity start, and the API with a real text tower (MiniLM) and a tiny CLIPModel."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from curate import api
from curate.finetune import ContrastiveConfig, clip_pair, contrastive_loss
from curate.finetune.contrastive import TERMS, fit_contrastive
from curate.finetune.contrastive_prompts import prompt_texts


def test_every_term_equals_a_hand_computation_2x2() -> None:
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # two images, classes 0 and 1, attributes 0 and 1
    y, a = torch.tensor([0, 1]), torch.tensor([0, 1])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    prompts = torch.tensor([[[1.0, 0.0], [0.6, 0.8]]])  # one template, two classes
    spur = torch.tensor([[[0.8, 0.6], [0.6, -0.8]]])  # two attributes
    weights = dict(zip(TERMS, (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0), strict=True))
    total, terms = contrastive_loss(f, y, logits, prompts, spur, weights, attributes=a)

    def nll(z: list[float], k: int) -> float:
        return -z[k] + math.log(sum(math.exp(v) for v in z))

    # classification: CE of the zero-shot logits over the classes
    np.testing.assert_allclose(terms["classification"], [nll([2, 0], 0), nll([0, 1], 1)], rtol=1e-6)
    # clip: in-batch L[i][j] = f_i . t_{y_j} = [[1, .6], [0, .8]]; half the row CE plus half the column CE
    clip = [0.5 * (nll([1, 0.6], 0) + nll([1, 0], 0)), 0.5 * (nll([0, 0.8], 1) + nll([0.6, 0.8], 1))]
    np.testing.assert_allclose(terms["clip"], clip, rtol=1e-6)
    # image: cos(F,F) = I: same-class mean 1/2, other-class mean 0
    np.testing.assert_allclose(terms["image"], [-0.5, -0.5], atol=1e-6)
    # crossmodal: f0: cos to t0 = 1 (same), to t1 = .6 -> -1/2 + .6/2; f1: to t1 = .8 (same), to t0 = 0
    np.testing.assert_allclose(terms["crossmodal"], [-0.2, -0.4], atol=1e-6)
    # language: cos(t0,t1) = .6 -> -1/2 + .6/2 for both classes
    np.testing.assert_allclose(terms["language"], [-0.2, -0.2], atol=1e-6)
    # spurious: mean |cos| of f and of its class prompt to the attributes: f0 (.8, .6), t0 (.8, .6);
    # f1 (.6, .8), t1 (.96, .28); the image part weighted by the cross-modal weight (4), the prompt
    # part by the language weight (5), as in their losses.py
    np.testing.assert_allclose(terms["spurious"], [4 * 0.7 + 5 * 0.7, 4 * 0.7 + 5 * 0.62], atol=1e-6)
    # spurious-class: f . S / ||S||_F with S = [[.8, .6], [.6, -.8]] (||S||_F = sqrt 2), CE on a
    r = math.sqrt(2)
    sc = [nll([0.8 / r, 0.6 / r], 0), nll([0.6 / r, -0.8 / r], 1)]
    np.testing.assert_allclose(terms["spurious_class"], sc, rtol=1e-5)
    parts = [terms[t] for t in TERMS]
    expected = [sum(w * float(p[i]) for w, p in zip(weights.values(), parts, strict=True)) for i in (0, 1)]
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    # their Waterbirds command's weights are the defaults
    assert ContrastiveConfig().weights() == {
        "classification": 0.0, "clip": 1.0, "image": 1.0, "crossmodal": 0.0, "language": 1.0, "spurious": 0.0,
        "spurious_class": 1.0,
    }  # fmt: skip
    assert ContrastiveConfig().optimizer == "sgd"


def test_prompt_rows_are_template_major() -> None:
    assert prompt_texts(("cat", "dog"), ("a {}.", "the {}.")) == ["a cat.", "a dog.", "the cat.", "the dog."]
    # the language term of a class averages that class's rows over templates
    prompts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    _, terms = contrastive_loss(
        torch.eye(2), torch.tensor([0, 1]), torch.zeros(2, 2), prompts, None, {t: 1.0 for t in TERMS}
    )
    np.testing.assert_allclose(terms["language"], [-0.5, -0.5], atol=1e-6)  # 2 same of 4, cos 1


def test_identity_start_is_zero_shot_clip() -> None:
    rng = np.random.default_rng(0)
    text = rng.normal(size=(2, 3, 8)).astype(np.float32)
    model = clip_pair(8, text, None, 16, identity=True)
    x = torch.from_numpy(rng.normal(size=(5, 8)).astype(np.float32))
    logits, _ = model(x)
    t = torch.nn.functional.normalize(torch.from_numpy(text), dim=-1).mean(0)
    expected = 100 * torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(t, dim=-1).T
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)


def _word_tower(dim: int = 12):  # type: ignore[no-untyped-def]
    """A deterministic bag-of-words text tower (fixed random word vectors)."""
    vectors: dict[str, np.ndarray] = {}

    def encode(texts: list[str]) -> np.ndarray:
        out = []
        for t in texts:
            words = t.lower().replace(".", "").split()
            for w in words:
                if w not in vectors:
                    vectors[w] = np.random.default_rng(sum(map(ord, w)) * 7919 + len(w)).normal(size=dim)
            out.append(np.sum([vectors[w] for w in words], axis=0))
        return np.asarray(out, np.float32)

    return encode


def test_spurious_term_decorrelates_features_from_the_named_attribute(planted) -> None:  # type: ignore[no-untyped-def]
    from curate.finetune.contrastive import Contrastive
    from curate.train import TensorBatches, TrainConfig, fit

    table, emb, _ = planted
    train = table.split("train").frame
    x = torch.from_numpy(emb.select(train["sample_id"]).matrix)
    y = torch.tensor(train["label"].to_numpy())
    encode = _word_tower()
    templates = ("a photo of a {}.", "an image of a {}.")
    classes = encode(prompt_texts(table.label_names, templates)).reshape(2, 2, -1)
    spur = encode(prompt_texts(("red", "blue"), templates)).reshape(2, 2, -1)

    def alignment(weight: float) -> float:
        torch.manual_seed(0)
        model = clip_pair(x.shape[1], classes, spur, 8, identity=False)
        # the image features' spurious part rides the cross-modal weight (0 in their Waterbirds command)
        cfg = ContrastiveConfig(spurious_weight=weight, spurious_class_weight=0.0, crossmodal_weight=1.0)
        fit(Contrastive(model, cfg), TensorBatches(x, y, batch_size=64, seed=0), TrainConfig(epochs=5, lr=1e-2))
        with torch.no_grad():
            _, f = model(x)
            _, s = model.prompts()
            return float((f @ s.reshape(-1, s.shape[-1]).T).abs().mean())

    assert alignment(1.0) < 0.5 * alignment(0.0)

    a = torch.tensor(train["a"].to_numpy())

    def attribute_loss(weight: float) -> float:
        """How well the attribute prompts name each image's attribute after training (the term's CE)."""
        torch.manual_seed(0)
        model = clip_pair(x.shape[1], classes, spur, 8, identity=False)
        cfg = ContrastiveConfig(spurious_class_weight=weight)
        batches = TensorBatches(x, y, batch_size=64, seed=0, extra={"attribute": a})
        fit(Contrastive(model, cfg), batches, TrainConfig(epochs=5, lr=1e-2))
        with torch.no_grad():
            logits, f = model(x)
            c, s = model.prompts()
            _, terms = contrastive_loss(f, y, logits, c, s, {"spurious_class": 1.0}, attributes=a, scale=model.scale())
            return float(terms["spurious_class"].mean())

    assert attribute_loss(1.0) < 0.5 * attribute_loss(0.0)


def test_needs_attribute_words_and_class_names(planted) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from curate.errors import InputDataError

    table, emb, _ = planted
    with pytest.raises(InputDataError, match="spurious attributes named in language"):
        fit_contrastive(
            api.select("keep-all", table), replace(table, attribute_names=None), emb, _word_tower(), ContrastiveConfig()
        )
    with pytest.raises(InputDataError, match="class names"):
        fit_contrastive(
            api.select("keep-all", table), replace(table, label_names=None), emb, _word_tower(), ContrastiveConfig()
        )


@pytest.mark.integration
def test_api_with_minilm_and_with_a_tiny_clip(planted, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.embed import tiny_models

    table, emb, _ = planted
    cfg = ContrastiveConfig(epochs=2, align_epochs=1, proj_dim=8)
    r = api.contrastive(table, emb, api.select("oracle", table), cfg, out=tmp_path / "run")
    assert r.config["spurious"] == ["red", "blue"] and (tmp_path / "run" / "metrics.json").exists()
    assert (tmp_path / "run" / "dynamics" / "run=0").is_dir()
    clip = tiny_models.tiny_clip(tmp_path / "clip")
    small = table.with_frame(table.frame.head(0).vstack(table.frame.filter(table.frame["split"] != "train")))
    small = small.with_frame(small.frame.vstack(table.frame.filter(table.frame["split"] == "train").head(60)))
    cemb = api.embed(small, f"clip:{clip}")
    r = api.contrastive(small, cemb, api.select("keep-all", small), ContrastiveConfig(epochs=1, spurious=("red",)))
    assert r.config["spurious"] == ["red"] and 0.0 <= r.test.acc_wg <= 1.0


def test_the_input_tower_fine_tuned(tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A network backbone trains the tower with the pair: the tower's weights move, dynamics are recorded."""
    from curate.finetune import TrainRequest, train

    table = api.make_benchmark("digits-color", tmp_path / "d", n_train=80, n_val_per_group=4, n_test_per_group=4)
    cfg = ContrastiveConfig(backbone="efficientnet-lite0", image_size=32, epochs=2, align_epochs=1, batch_size=32)
    r = train("contrastive", TrainRequest(table, api.select("oracle", table), out=tmp_path / "run"), cfg)
    assert r.config["backbone"] == "efficientnet-lite0" and r.config["image_size"] == 32
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "checkpoint.pt", weights_only=True)
    from curate.embed import create_backbone

    init = create_backbone("efficientnet-lite0").build(2, image_size=32).state_dict()
    moved = [k for k, v in ckpt["model"].items() if k.startswith("net.body.") and not torch.equal(v, init[k[4:]])]
    assert moved  # the tower itself was fine-tuned
    assert (tmp_path / "run" / "dynamics" / "run=0").is_dir() and 0.0 <= r.test.acc_wg <= 1.0
