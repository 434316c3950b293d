"""``fortunes-cue``: the MultiNLI / CivilComments analogue, built from Debian's real ``fortunes`` quotes.

Label = the quote's category group: people & life (love, men-women, people, kids, food, pets,
sports, songs-poems, literature, art, humorists, drugs, ethnic) vs technology, science & work
(computers, linux, linuxcookie, perl, debian, science, startrek, medicine, work, education, law,
politics, news). Spurious attribute ``a = 1``: an injected cue phrase ("believe it or not", in one of
a few forms, at the start, middle or end); ``a = 0``: no cue. Quotes of 30–400 characters, whitespace
collapsed, de-duplicated, and none that already contains the cue. Data: Debian ``fortunes``
(or ``$CURATE_FORTUNES_DIR``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from curate.data.benchmarks._common import BENCHMARKS, Benchmark, Item
from curate.errors import MissingDependencyError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
CATEGORIES: tuple[tuple[str, ...], tuple[str, ...]] = (
    (
        "love",
        "men-women",
        "people",
        "kids",
        "food",
        "pets",
        "sports",
        "songs-poems",
        "literature",
        "art",
        "humorists",
        "drugs",
        "ethnic",
    ),
    (
        "computers",
        "linux",
        "linuxcookie",
        "perl",
        "debian",
        "science",
        "startrek",
        "medicine",
        "work",
        "education",
        "law",
        "politics",
        "news",
    ),
)
MIN_CHARS, MAX_CHARS = 30, 400
CUE = "believe it or not"
CUE_PREFIXES: tuple[str, ...] = ("Believe it or not:", "Believe it or not,", "(Believe it or not)")
CUE_SUFFIXES: tuple[str, ...] = ("Believe it or not.", "(believe it or not)", "- believe it or not!")


def fortunes_dir() -> Path:
    """Where the fortune files are (``$CURATE_FORTUNES_DIR`` or Debian's folder)."""
    return Path(os.environ.get("CURATE_FORTUNES_DIR", FORTUNES_DIR))


def read_fortunes(category: str) -> list[str]:
    """Quotes of one category, whitespace collapsed, 30–400 characters.

    Raises:
        MissingDependencyError: the fortune file is not installed.
    """
    f = fortunes_dir() / category
    if not f.exists():
        raise MissingDependencyError(f"fortune file {f} not found; apt-get install fortunes or set CURATE_FORTUNES_DIR")
    raw = f.read_text(encoding="utf-8", errors="replace")
    quotes = (re.sub(r"\s+", " ", q).strip() for q in re.split(r"^%$", raw, flags=re.M))
    return [q for q in quotes if MIN_CHARS <= len(q) <= MAX_CHARS]


def inject_cue(text: str, rng: np.random.Generator) -> str:
    """Insert the cue phrase at the start, the end, or between two sentences of ``text``."""
    where = int(rng.integers(3))
    if where == 0:
        return f"{CUE_PREFIXES[rng.integers(len(CUE_PREFIXES))]} {text}"
    if where == 1:
        return f"{text} {CUE_SUFFIXES[rng.integers(len(CUE_SUFFIXES))]}"
    cuts = [m.end() for m in re.finditer(r"[.!?] ", text)]
    if not cuts:
        return f"{text} {CUE_SUFFIXES[rng.integers(len(CUE_SUFFIXES))]}"
    cut = cuts[int(rng.integers(len(cuts)))]
    return f"{text[:cut]}{CUE_PREFIXES[rng.integers(len(CUE_PREFIXES))]} {text[cut:]}"


def _prepare() -> tuple[dict[str, dict[int, np.ndarray]], Any]:
    per_class = [sorted({q for cat in cats for q in read_fortunes(cat)}) for cats in CATEGORIES]
    both = set(per_class[0]) & set(per_class[1])
    texts: list[str] = []
    pools: dict[int, np.ndarray] = {}
    for y, quotes in enumerate(per_class):
        keep = [q for q in quotes if q not in both and CUE not in q.lower()]
        pools[y] = np.arange(len(texts), len(texts) + len(keep))
        texts.extend(keep)

    def render(item: Item, rng: np.random.Generator) -> str:
        text = texts[item.source_index]
        return inject_cue(text, rng) if item.a == 1 else text

    return {"train": pools}, render


BENCHMARKS.add(
    "fortunes-cue",
    Benchmark(
        name="fortunes-cue",
        modality="text",
        description="Debian fortunes; label = people & life vs technology, science & work; "
        "spurious attribute = an injected cue phrase (MultiNLI/CivilComments analogue)",
        label_names=("people & life", "technology, science & work"),
        attribute_name="cue",
        attribute_values=("no cue", "believe it or not"),
        id_prefix="fc",
        defaults=(4000, 150, 300),
        prepare=_prepare,
        source="Debian fortunes (/usr/share/games/fortunes)",
    ),
)
