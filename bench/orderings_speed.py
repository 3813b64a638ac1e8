"""Measurements -> orderings: the two sorts at its heart against the numpy calls they stand in for, in one process.

    python bench/orderings_speed.py [--models 100] [--samples 100000] [--measured 0.3]

Rows: each of M models measured on a random share of S samples (3,000,000 rows by default), with values that
are binary, of five levels (partial credit) or continuous (a score such as BLEU); the rows grouped by sample
(as a pool returns them), grouped by model, or shuffled. Per case, best of 5, ours and numpy in turns:
1. `orderings.sort_order(sample, value)` (entries by sample, then value descending) against
   `np.lexsort((-value, sample))`: the same permutation (checked).
2. The distinct (sample, model) cells that `rank` counts each model's samples by: `orderings.distinct_cells`
   against sorting the keys and dropping repeated neighbours (`np.unique` takes longer still): the same cells.
3. The whole `aggregators.rank` (pl) of the continuous rows grouped by sample, against the same call with
   `np.lexsort` in place of `sort_order`: the same scores (checked).
"""

from __future__ import annotations

import argparse
from functools import partial

import numpy as np
import pandas as pd
from timing import best_in_turns

import aggregators
from aggregators import orderings
from aggregators.orderings import distinct_cells, sort_order

VALUES = {
    "binary": lambda rng, n: rng.integers(0, 2, n).astype(float),
    "5 levels": lambda rng, n: rng.integers(0, 5, n) / 4,
    "continuous": lambda rng, n: rng.random(n),
}


def sorted_distinct(key: np.ndarray) -> np.ndarray:
    """The distinct keys by one sort: neighbours that differ."""
    ordered = np.sort(key)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--measured", type=float, default=0.3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sample, model = np.nonzero(rng.random((args.samples, args.models)) < args.measured)  # grouped by sample
    orders = {
        "by sample": np.arange(len(sample)),
        "by model": np.argsort(model, kind="stable"),
        "shuffled": rng.permutation(len(sample)),
    }
    print(f"{len(sample):,} rows: {args.models} models x {args.samples:,} samples, {args.measured:.0%} measured")
    for values, draw in VALUES.items():
        value = draw(rng, len(sample))
        for name, order in orders.items():
            group, by = sample[order].astype(np.int64), value[order]
            ours_sort, lexsort = partial(sort_order, group, by), partial(np.lexsort, (-by, group))
            assert np.array_equal(ours_sort(), lexsort())
            ours, plain = best_in_turns(5, ours_sort, lexsort)
            print(f"sort   {values:>10}, {name:>9}: {ours:6.3f} s   np.lexsort {plain:6.3f} s   {plain / ours:5.1f}x")
    for name, order in orders.items():
        key = sample[order].astype(np.int64) * args.models + model[order]
        ours_cells, by_sorting = partial(distinct_cells, key, args.samples * args.models), partial(sorted_distinct, key)
        assert np.array_equal(ours_cells(), by_sorting())
        ours, plain = best_in_turns(5, ours_cells, by_sorting)
        print(f"cells  {name:>22}: {ours:6.3f} s   np.sort    {plain:6.3f} s   {plain / ours:5.1f}x")
    frame = pd.DataFrame({"sample_id": sample, "model": model, "value": VALUES["continuous"](rng, len(sample))})
    ours_rank, lexsort_rank = partial(aggregators.rank, frame), partial(rank_by_lexsort, frame)
    assert np.allclose(ours_rank()["score"], lexsort_rank()["score"], atol=1e-9)
    ours, plain = best_in_turns(3, ours_rank, lexsort_rank)
    print(f"rank   continuous, by sample: {ours:6.3f} s   np.lexsort {plain:6.3f} s   {plain / ours:5.1f}x")


def rank_by_lexsort(frame: pd.DataFrame) -> pd.DataFrame:
    """`aggregators.rank(frame)` with the entries sorted by `np.lexsort`."""
    ours = orderings.sort_order
    orderings.sort_order = lambda group, value: np.lexsort((-value, group))
    try:
        return aggregators.rank(frame)
    finally:
        orderings.sort_order = ours


if __name__ == "__main__":
    main()
