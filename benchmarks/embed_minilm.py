"""MiniLM over 10,000 real `fortunes` texts: curate's embedder vs ``SentenceTransformer.encode``.

Same model files, same texts, same batch size, same CPU threads; reports throughput of each, the
ratio (target >= 1.0x) and the max absolute difference of the embeddings (target <= 1e-4).
Run: ``.venv/bin/python -m benchmarks.embed_minilm [--n 10000]``.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import polars as pl

os.environ.setdefault("CURATE_NO_PROGRESS", "1")


def fortunes_texts(n: int, seed: int = 0) -> list[str]:
    from curate.data.benchmarks.fortunes_cue import fortunes_dir, read_fortunes

    cats = sorted(p.name for p in fortunes_dir().iterdir() if p.is_file() and "." not in p.name)
    texts = sorted({q for c in cats for q in read_fortunes(c)})
    rng = np.random.default_rng(seed)
    return [texts[i] for i in rng.permutation(len(texts))[:n]]


def main() -> None:
    from sentence_transformers import SentenceTransformer

    from benchmarks._common import report, timed
    from curate.data import SampleTable
    from curate.embed import create_encoder, embed_table
    from curate.embed.text import minilm_path

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    texts = fortunes_texts(args.n)
    table = SampleTable(
        pl.DataFrame(
            {
                "sample_id": [f"f{i}" for i in range(len(texts))],
                "label": [0] * len(texts),
                "split": ["train"] * len(texts),
                "text": texts,
            }
        )
    )
    enc = create_encoder("minilm").load("cpu")
    st = SentenceTransformer(minilm_path(), device="cpu")
    warm = table.with_frame(table.frame.head(64))
    embed_table(warm, enc)
    st.encode(texts[:64], batch_size=args.batch_size)
    t_ours, ours = timed(lambda: embed_table(table, enc, batch_size=args.batch_size).matrix)
    t_st, ref = timed(lambda: st.encode(texts, batch_size=args.batch_size, convert_to_numpy=True))
    diff = float(np.abs(ours - ref).max())
    report(
        "embed_minilm",
        [
            f"texts: {len(texts)} Debian fortunes, batch size {args.batch_size}, CPU",
            f"curate minilm: {len(texts) / t_ours:.1f} texts/s ({t_ours:.1f} s)",
            f"SentenceTransformer.encode: {len(texts) / t_st:.1f} texts/s ({t_st:.1f} s)",
            f"throughput ratio curate/sentence-transformers: {t_st / t_ours:.2f}x (target >= 1.0x)",
            f"max abs difference: {diff:.2e} (target <= 1e-4)",
        ],
    )


if __name__ == "__main__":
    main()
