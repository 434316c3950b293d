"""Every encoder path: the real offline MiniLM and EfficientNet-Lite0, tiny random HF/CLIP/torchvision models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from curate import api
from curate.embed import ENCODERS, create_encoder, embed_table
from curate.embed.text import minilm_path
from curate.errors import ConfigError, InputDataError, MissingDependencyError, UnknownNameError


def test_minilm_equals_sentence_transformers(small_text) -> None:  # type: ignore[no-untyped-def]
    from sentence_transformers import SentenceTransformer

    texts = [*small_text.frame["text"].to_list()[:6], "A much longer sentence " * 40]
    table = small_text.with_frame(small_text.frame.head(6))
    ours = embed_table(table, create_encoder("minilm"), batch_size=4).matrix
    ref = SentenceTransformer(minilm_path(), device="cpu").encode(texts[:6], batch_size=4)
    assert ours.shape == (6, 384)
    assert np.abs(ours - ref).max() <= 1e-5
    enc = create_encoder("minilm").load("cpu")
    with torch.inference_mode():
        long = enc.encode_text(texts[-1:]).numpy()
    ref_long = SentenceTransformer(minilm_path(), device="cpu").encode(texts[-1:])
    assert np.abs(long - ref_long).max() <= 1e-5  # truncation at max_seq_length 256 matches too


def test_efficientnet_lite0_pretrained_weights_recognise_a_cat() -> None:
    from skimage import data

    enc = create_encoder("efficientnet-lite0").load("cpu")
    x = enc.image_transform()(Image.fromarray(data.chelsea())).unsqueeze(0)
    with torch.inference_mode():
        logits = enc.model(x)
        feats = enc.encode_images(x)
        assert int(logits.argmax()) in range(281, 286)  # ImageNet tabby / tiger / Persian / Siamese / Egyptian cat
        assert feats.shape == (1, 1280)
        assert torch.allclose(enc.model._fc(feats), logits, atol=1e-4)  # the pooled features feed the classifier


def test_efficientnet_on_benchmark_images(small_digits) -> None:  # type: ignore[no-untyped-def]
    table = small_digits.with_frame(small_digits.frame.head(6))
    a = embed_table(table, create_encoder("efficientnet-lite0"), batch_size=4).matrix
    assert a.shape == (6, 1280) and np.isfinite(a).all()
    assert np.linalg.matrix_rank(a) == 6


def test_hf_text_by_prefix_and_by_bare_path(tiny, small_text) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoModel, AutoTokenizer

    a = embed_table(small_text, create_encoder(f"hf-text:{tiny['bert']}"), batch_size=5).matrix
    b = embed_table(small_text, create_encoder(str(tiny["bert"])), batch_size=7).matrix
    assert a.shape == (len(small_text), 32)
    np.testing.assert_allclose(a, b, atol=1e-5)  # batching and length sorting do not change results
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    tok, model = AutoTokenizer.from_pretrained(tiny["bert"]), AutoModel.from_pretrained(tiny["bert"]).eval()
    text = small_text.frame["text"][0]
    with torch.no_grad():
        h = model(**tok([text], return_tensors="pt")).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(a[0], (h / h.norm()).numpy(), atol=1e-5)


def test_hf_vision(tiny, small_digits) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoImageProcessor, AutoModel

    table = small_digits.with_frame(small_digits.frame.head(5))
    a = embed_table(table, create_encoder(f"hf-vision:{tiny['vit']}"), batch_size=2).matrix
    assert a.shape == (5, 32)
    proc, model = AutoImageProcessor.from_pretrained(tiny["vit"]), AutoModel.from_pretrained(tiny["vit"]).eval()
    img = Image.open(table.resolve(table.frame["path"][3])).convert("RGB")
    with torch.no_grad():
        ref = model(**proc(images=img, return_tensors="pt")).pooler_output[0].numpy()
    np.testing.assert_allclose(a[3], ref, atol=1e-5)
    assert create_encoder(str(tiny["vit"])).describe()["kind"] == "hf-vision"  # bare path: config.json says vit


def test_clip_both_towers(tiny, small_digits, small_text) -> None:  # type: ignore[no-untyped-def]
    spec = f"clip:{tiny['clip']}"
    img = embed_table(small_digits.with_frame(small_digits.frame.head(4)), create_encoder(spec)).matrix
    txt = embed_table(small_text, create_encoder(spec)).matrix
    assert img.shape == (4, 16) and txt.shape == (len(small_text), 16)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, atol=1e-5)
    from transformers import AutoTokenizer, CLIPModel

    model, tok = CLIPModel.from_pretrained(tiny["clip"]).eval(), AutoTokenizer.from_pretrained(tiny["clip"])
    with torch.no_grad():
        out = model.get_text_features(**tok([small_text.frame["text"][2]], return_tensors="pt"))
    ref = getattr(out, "pooler_output", out)[0]
    np.testing.assert_allclose(txt[2], (ref / ref.norm()).numpy(), atol=1e-5)


def test_torchvision_weights_file_and_random(tiny, small_digits) -> None:  # type: ignore[no-untyped-def]
    from torchvision import models

    table = small_digits.with_frame(small_digits.frame.head(3))
    enc = create_encoder(f"torchvision:resnet18:{tiny['resnet18']}")
    a = embed_table(table, enc).matrix
    assert a.shape == (3, 512)
    ref_model = models.resnet18(weights=None)
    ref_model.load_state_dict(torch.load(tiny["resnet18"], weights_only=True))
    ref_model.fc = torch.nn.Identity()
    ref_model.eval()
    x = torch.stack([enc.image_transform()(Image.open(table.resolve(p)).convert("RGB")) for p in table.frame["path"]])
    with torch.no_grad():
        np.testing.assert_allclose(a, ref_model(x).numpy(), atol=1e-4)
    assert enc.describe()["crop"] == 224 and enc.describe()["resize"] == 256  # from the weights enum
    assert embed_table(table, create_encoder("torchvision:resnet18:random")).matrix.shape == (3, 512)


def test_bad_specs() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'minilm'"):
        create_encoder("minilmm")
    with pytest.raises(ConfigError, match="needs a model"):
        create_encoder("hf-text")
    with pytest.raises(ConfigError, match="not downloaded at run time"):
        create_encoder("torchvision:resnet18")
    with pytest.raises(ConfigError, match="did you mean 'resnet18'"):
        create_encoder("torchvision:resnet81:random")
    with pytest.raises(MissingDependencyError, match="not found"):
        create_encoder("torchvision:resnet18:/nope.pth")
    with pytest.raises(MissingDependencyError, match="nothing is downloaded"):
        create_encoder("hf-text:no-such-org/no-such-model").load("cpu")
    assert set(ENCODERS.names()) >= {"minilm", "efficientnet-lite0", "hf-text", "hf-vision", "clip", "torchvision"}


def test_modality_mismatch(small_text) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="embeds image, but the dataset holds text"):
        embed_table(small_text, create_encoder("torchvision:resnet18:random"))


def test_corrupt_image_names_row(tiny, small_digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    import polars as pl

    root = tmp_path / "copy"
    shutil.copytree(small_digits.root, root)
    table = small_digits.with_frame(small_digits.frame.head(4))
    from dataclasses import replace

    table = replace(table, root=root)
    (root / table.frame["path"][2]).write_bytes(b"garbage")
    with pytest.raises(InputDataError, match=r"row 3 \(sample_id 'dc000002'\) column 'path': cannot read image"):
        embed_table(table, create_encoder(f"hf-vision:{tiny['vit']}"))
    assert isinstance(table.frame, pl.DataFrame)


def test_api_embed_caches_by_content(tiny, small_text, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    spec = f"hf-text:{tiny['bert']}"
    a = api.embed(small_text, spec, workspace=tmp_path / "ws")
    with caplog.at_level("INFO", logger="curate"):
        b = api.embed(small_text, spec, workspace=tmp_path / "ws")
    assert "loaded cached embed" in caplog.text
    assert a.meta["source"] == b.meta["source"]
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert api.Workspace(tmp_path / "ws").lookup("embed", spec) == Path(a.meta["source"])
    c = api.embed(small_text, f"clip:{tiny['clip']}", workspace=tmp_path / "ws")
    assert c.meta["source"] != a.meta["source"]
    half = api.embed(small_text, spec, float16=True)  # global cache, float16 on disk
    np.testing.assert_allclose(half.matrix, a.matrix, atol=2e-3)
    assert half.matrix.dtype == np.float32
    other = small_text.with_frame(small_text.frame.head(10))
    with pytest.raises(InputDataError, match="holds another dataset"):
        api.embed(other, spec, workspace=tmp_path / "ws")
