"""Ranking straight from a pool: `Pool.scores()` and `aggregators.rank` on what it returns.

    python bench/rank_pool.py [--models M] [--samples S]

A pool of M models x S binary samples (1,280,000 measurements by default; string ids, as pools hold them,
one segment per model). Times, in turns, best of `--repeats`:
1. `Pool.scores()` (latest value per key, sign rule, source) against plain `pq.read_table` of the two tables'
   segments and a pandas merge on sample_id (no dedupe, no sign rule): the ratio is what the rules cost.
2. `aggregators.rank` (pl-conditional) on that frame, whose id columns are Arrow strings, against the same
   frame with the ids as Python objects (pandas' old default).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from questions import two_choice_questions
from timing import best_in_turns

import aggregators
from harness.pool import Pool


def build(root: Path, models: int, samples: int) -> Pool:
    pool = Pool(root / "pool", create=True)
    pool.add("samples", two_choice_questions(samples))
    ids = pool.samples()["sample_id"].to_numpy()
    rng = np.random.default_rng(0)
    skill = np.linspace(-1.0, 1.0, models)
    difficulty = rng.normal(size=samples)
    for m in range(models):
        correct = rng.random(samples) < 1 / (1 + np.exp(difficulty - skill[m]))
        frame = pd.DataFrame(
            {"sample_id": ids, "model": f"model-{m:03d}", "metric": "acc", "value": correct.astype(float)}
        )
        pool.write({"measurements": frame}, known_new=True)
    return pool


def plain_scores(pool: Pool) -> pd.DataFrame:
    def table(name: str, columns: list[str]) -> pd.DataFrame:
        segments = pool.store.segments(name)
        return pa.concat_tables(pq.read_table(path, columns=columns) for path in segments).to_pandas()

    measured = table("measurements", ["sample_id", "model", "metric", "value"])
    return measured.merge(table("samples", ["sample_id", "source"]), on="sample_id")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--samples", type=int, default=25_600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pool = build(Path(tmp), args.models, args.samples)
        scores_ours, scores_plain = best_in_turns(args.repeats, pool.scores, lambda: plain_scores(pool))
        frame = pool.scores()
        objects = frame.astype({"sample_id": object, "model": object, "metric": object, "source": object})
        rank_arrow, rank_objects = best_in_turns(
            args.repeats, lambda: aggregators.rank(frame), lambda: aggregators.rank(objects)
        )
        pd.testing.assert_frame_equal(aggregators.rank(frame), aggregators.rank(objects), check_dtype=False)
    print(f"{args.models} models x {args.samples:,} samples ({len(frame):,} measurements); best of {args.repeats}")
    print(
        f"Pool.scores()      {scores_ours:.2f} s   pyarrow read + pandas merge {scores_plain:.2f} s"
        f"   ratio {scores_plain / scores_ours:.2f}"
    )
    print(
        f"aggregators.rank   Arrow-string ids {rank_arrow:.2f} s   object ids {rank_objects:.2f} s"
        f"   ratio {rank_objects / rank_arrow:.2f}"
    )


if __name__ == "__main__":
    main()
