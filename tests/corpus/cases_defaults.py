"""Defaults a newcomer meets: the encoder is chosen by modality, the detector default is ``auto``.

No case loads a model: the encoder cases stop at a check that comes before any weights are read.
"""

from __future__ import annotations

from pathlib import Path

from tests.corpus._corpus import Case, dataset


def _data(root: Path) -> dict[str, str]:
    return {"data": str(dataset(root) / "metadata.csv")}


CASES = [
    # Without --encoder, image data gets an image encoder: the command passes the modality check (it
    # used to fail there, "encoder 'minilm' embeds text") and stops at the batch-size check, before
    # any weights load or any folder is made.
    Case(
        "embed-images-default-encoder-by-modality",
        ["embed", "{data}", "--out", "{root}/ws", "--batch-size", "0"],
        2,
        "'batch_size' must be an integer >= 1",
        setup=_data,
    ),
    Case(
        "embed-text-encoder-on-images-named",
        ["embed", "{data}", "--out", "{root}/ws", "--encoder", "minilm"],
        2,
        "encoder 'minilm' embeds text, but the dataset holds image; pick an image encoder",
        setup=_data,
    ),
    Case("detect-default-detector-is-auto", ["detect", "--help"], 0, "[default: auto]"),
]
