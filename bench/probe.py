"""Probing speed: embedding samples into the pool, and one query over stored embeddings.

    python bench/probe.py [--embed 10000] [--stored 100000]

1. Embed N samples (`embed_missing`: read the pool, encode, write a segment per batch, compact) vs
   sentence-transformers' `encode` of the same texts alone, in the same process.
2. One query (`probe`, top 50) over M stored embeddings: read them from the pool, encode the query,
   similarity, top-k, vs numpy on the same matrix already in memory (matrix-vector product + top-k).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from timing import in_turns

from harness.pool import Pool
from harness.probe import EMBEDDER, SentenceEmbedder, embed_missing, probe
from tasks.starter import starter_samples

QUERIES = 5


def texts(n: int) -> pd.DataFrame:
    """n distinct samples: the starter questions, each asked in numbered variants."""
    base = starter_samples()
    rows = base.loc[np.arange(n) % len(base)].reset_index(drop=True)
    rows["prompt"] = [f"{p} (variant {i // len(base)})" for i, p in enumerate(rows["prompt"])]
    rows["source_id"] = [f"{s}-{i}" for i, s in enumerate(rows["source_id"])]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--embed", type=int, default=10_000)
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args()
    embedder = SentenceEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        pool = Pool(Path(tmp) / "embed", create=True)
        pool.add("samples", texts(args.embed))
        sample_texts = pool.read("samples")["text"].tolist()
        start = time.perf_counter()
        embedder.encode(sample_texts)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        embed_missing(pool, embedder)
        ours = time.perf_counter() - start
        print(
            f"[1] embed {args.embed:,} samples: poolbench {ours:.1f} s, sentence-transformers encode alone "
            f"{plain:.1f} s, ratio {plain / ours:.2f}"
        )

        pool = Pool(Path(tmp) / "stored", create=True)
        samples = texts(args.stored)
        pool.add("samples", samples)
        ids = pool.read("samples")["sample_id"]
        rng = np.random.default_rng(0)
        vectors = rng.normal(size=(len(ids), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        pool.add(
            "embeddings",
            pd.DataFrame({"sample_id": ids, "embedder": EMBEDDER, "vector": [v.tobytes() for v in vectors]}),
        )
        probe(pool, "warm-up", embedder=embedder)  # first call: tokenizer and kernels warm
        query_text = "capital cities of countries"

        def in_memory() -> np.ndarray:
            query = embedder.encode([query_text])[0]
            return np.argpartition(-(vectors @ query), 50)[:50]

        ours_times, floor_times = in_turns(
            QUERIES, lambda: probe(pool, query_text, top_k=50, embedder=embedder), in_memory
        )
        ours, floor = float(np.median(ours_times)), float(np.median(floor_times))
        found, top = probe(pool, query_text, top_k=50, embedder=embedder), in_memory()
        assert len(found.samples) == len(top) == 50
        print(
            f"[2] one query over {len(ids):,} stored embeddings (median of {QUERIES}): poolbench {ours:.3f} s, "
            f"in-memory numpy (encode + product + top-k) {floor:.3f} s, ratio {floor / ours:.2f}"
        )


if __name__ == "__main__":
    main()
