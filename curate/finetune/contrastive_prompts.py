"""The words of the contrastive method: class and attribute prompts through the frozen prompt tower,
and each train row's attribute for the spurious-class term (see :mod:`curate.finetune.contrastive`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from curate._core import schema as S
from curate.data.table import SampleTable
from curate.errors import InputDataError

if TYPE_CHECKING:
    from curate.finetune.contrastive import ContrastiveConfig

IMAGE_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of a {}.")
TEXT_TEMPLATES = ("a text about {}.", "a passage about {}.", "a message about {}.")


def attributes_of(table: SampleTable, rows: pl.DataFrame, n_attr: int) -> np.ndarray:
    """Each manifest row's spurious attribute (the dataset's column ``a``), for the spurious-class term.

    Raises:
        InputDataError: the dataset has no attribute column, or a value beyond the named attributes.
    """
    if S.ATTR not in table.frame.columns:
        raise InputDataError(
            "the spurious-class term of the contrastive method needs each train sample's attribute "
            f"(column {S.ATTR!r})",
            file=table.where,
            fix="add the attribute column, or set spurious_class_weight = 0 in [finetune]",
        )
    a = rows.select(S.SAMPLE_ID).join(table.frame.select(S.SAMPLE_ID, S.ATTR), on=S.SAMPLE_ID, how="left")
    values = a[S.ATTR].to_numpy()
    if a[S.ATTR].null_count() or values.min() < 0 or values.max() >= n_attr:
        raise InputDataError(
            f"attribute values must be 0..{n_attr - 1}, one per named attribute", file=table.where,
            column=S.ATTR, fix="name every attribute value (--spurious, repeatable)",
        )  # fmt: skip
    return values.astype(np.int64)


def prompt_embeddings(
    table: SampleTable, cfg: ContrastiveConfig, encode_text: Any
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """The frozen prompt tower's ``(T, C, d)`` class prompts and ``(T, A, d)`` attribute prompts, the
    attribute words and the templates.

    Raises:
        InputDataError: no class names, or no spurious attributes in words.
    """
    if table.label_names is None:
        raise InputDataError(
            "the contrastive method needs class names for its prompts",
            file=table.where,
            fix="give the dataset label names (dataset.json 'label_names' or a class-name column)",
        )
    spurious = tuple(cfg.spurious or table.attribute_names or ())
    if not spurious:
        raise InputDataError(
            "the contrastive method needs the spurious attributes named in language",
            file=table.where,
            fix="pass --spurious 'water background' (repeatable), or dataset.json 'attribute_values'",
        )
    templates = cfg.templates or (IMAGE_TEMPLATES if table.modality == "image" else TEXT_TEMPLATES)
    n_t, n_c = len(templates), len(table.label_names)
    class_text = np.asarray(encode_text(prompt_texts(table.label_names, templates)), np.float32).reshape(n_t, n_c, -1)
    spur_text = np.asarray(encode_text(prompt_texts(spurious, templates)), np.float32).reshape(n_t, len(spurious), -1)
    return class_text, spur_text, spurious, templates


def prompt_texts(names: tuple[str, ...], templates: tuple[str, ...]) -> list[str]:
    """Template-major prompt strings: ``templates[k].format(names[c])`` at row ``k·C + c``."""
    return [t.format(n) for t in templates for n in names]
