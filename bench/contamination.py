"""Contamination scan speed: `harness.contamination.scan` vs lm-eval's own n-grams on the same corpus.

    python bench/contamination.py [--samples 20000] [--words 5000000] [--ngram 13] [--repeats 2]

Synthetic samples (20-60 words of a 50,000-word vocabulary, Zipf-distributed) and a corpus of documents of
200-2,000 such words, one in a hundred samples copied into it shouted. The baseline is lm-eval's decontamination
in pure Python: `Janitor.normalize_string` and `word_ngrams` for the samples' n-grams (a dict) and for each
document's, each looked up. Both must find the same overlapping samples; ours and the baseline run in turns.
"""

from __future__ import annotations

import argparse
import contextlib
import io

import numpy as np
from timing import in_turns

from harness.contamination import Piece, scan


def texts(rng: np.random.Generator, count: int, low: int, high: int, vocabulary: np.ndarray) -> list[str]:
    """`count` texts of low..high words drawn from `vocabulary` by a Zipf law."""
    lengths = rng.integers(low, high + 1, count)
    ranks = np.minimum(rng.zipf(1.2, lengths.sum()), len(vocabulary)) - 1
    words = vocabulary[ranks]
    ends = np.cumsum(lengths)
    return [" ".join(words[end - length : end]) for end, length in zip(ends, lengths, strict=True)]


def lm_eval_overlapping(samples: list[str], documents: list[str], n: int) -> set[int]:
    """The samples with an n-gram in a document, found as lm-eval's decontamination finds them."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from lm_eval.decontamination.janitor import Janitor, word_ngrams  # says its C++ module is missing

    janitor = Janitor(ngram_n=n)
    lookup: dict[str, list[int]] = {}
    for i, text in enumerate(samples):
        for gram in word_ngrams(janitor.normalize_string(text), n):
            lookup.setdefault(gram, []).append(i)
    found: set[int] = set()
    for document in documents:
        for gram in word_ngrams(janitor.normalize_string(document), n):
            if gram in lookup:
                found.update(lookup[gram])
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--words", type=int, default=5_000_000)
    parser.add_argument("--ngram", type=int, default=13)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vocabulary = np.array([f"Word{i}," if i % 7 == 0 else f"word{i}" for i in range(50_000)])
    samples = texts(rng, args.samples, 20, 60, vocabulary)
    documents = texts(rng, args.words // 1_100, 200, 2_000, vocabulary)
    copied = rng.choice(len(samples), len(samples) // 100, replace=False)
    for i in copied:
        documents[rng.integers(len(documents))] += " " + samples[i].upper()
    corpus_words = sum(len(d.split()) for d in documents)
    results: dict[str, set[int]] = {}

    def ours() -> None:
        found = scan(samples, (Piece(d, str(i)) for i, d in enumerate(documents)), args.ngram)
        results["ours"] = {int(i) for i in found.overlapping()}

    def baseline() -> None:
        results["lm-eval"] = lm_eval_overlapping(samples, documents, args.ngram)

    ours_times, plain_times = in_turns(args.repeats, ours, baseline)
    assert results["ours"] == results["lm-eval"], "the two scans disagree"
    print(
        f"{args.samples:,} samples, {len(documents):,} documents, {corpus_words:,} corpus words, "
        f"{args.ngram}-grams: {len(results['ours']):,} overlapping samples ({len(copied):,} copied), both agree"
    )
    best, plain = min(ours_times), min(plain_times)
    print(f"scan:              {best:6.2f} s ({corpus_words / best / 1e6:.1f} M words/s)   runs: {ours_times}")
    print(f"lm-eval's n-grams: {plain:6.2f} s ({corpus_words / plain / 1e6:.1f} M words/s)   runs: {plain_times}")
    print(f"speed-up: {plain / best:.2f}x")


if __name__ == "__main__":
    main()
