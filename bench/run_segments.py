"""Reading a pool after runs: a run's batches merged into one segment per table vs a segment per batch.

    python bench/run_segments.py [--models M] [--samples S]

Writes M runs of S samples each the way `runner.run` does (measurements and responses of 64 samples per
`Pool.write`), into one pool inside `Pool.merging()` (what the runner does) and into another without it;
then times, in turns, `Pool.scores()` (what `rank` reads) and one model's responses on each. Same rows in
both pools; the ratio is the per-batch pool's time over the merged pool's.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from questions import two_choice_questions
from timing import best_in_turns

from harness.pool import Pool

BATCH = 64  # harness.runner.SAMPLES_PER_CALL


def fill(pool: Pool, models: int, samples: int, merged: bool) -> float:
    """Write the runs; return the seconds the writes took."""
    pool.add("samples", two_choice_questions(samples))
    ids = pool.samples()["sample_id"].to_numpy()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for m in range(models):
        model = f"model-{m:03d}"
        with pool.merging() if merged else contextlib.nullcontext():
            for first in range(0, samples, BATCH):
                batch = ids[first : first + BATCH]
                correct = rng.integers(0, 2, len(batch)).astype(float)
                frames = {
                    "measurements": pd.DataFrame(
                        {"sample_id": batch, "model": model, "metric": "acc", "run_id": model, "value": correct}
                    ),
                    "responses": pd.DataFrame(
                        {"sample_id": batch, "model": model, "run_id": model, "response": '{"text": "b"}'}
                    ),
                }
                pool.write(frames, known_new=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        merged, per_batch = Pool(Path(tmp) / "merged", create=True), Pool(Path(tmp) / "per-batch", create=True)
        write_merged = fill(merged, args.models, args.samples, merged=True)
        write_per_batch = fill(per_batch, args.models, args.samples, merged=False)
        assert merged.scores().equals(per_batch.scores())
        timings = {
            "scores": lambda pool: pool.scores(),
            "responses of one model": lambda pool: pool.read("responses", models=["model-000"]),
        }
        results = {
            name: best_in_turns(args.repeats, partial(read, merged), partial(read, per_batch))
            for name, read in timings.items()
        }
        segments = [len(pool.store.segments("measurements")) for pool in (merged, per_batch)]
    batches = args.models * -(-args.samples // BATCH)
    print(f"{args.models} runs x {args.samples:,} samples, {batches:,} batches of {BATCH}; best of {args.repeats}")
    print(f"measurement segments: merged {segments[0]:,}, per batch {segments[1]:,}")
    print(f"writing (merges included): merged {write_merged:.1f} s, per batch {write_per_batch:.1f} s")
    for name, (ours, plain) in results.items():
        print(f"{name:<24} merged {ours:.3f} s   per batch {plain:.3f} s   ratio {plain / ours:.1f}")


if __name__ == "__main__":
    main()
