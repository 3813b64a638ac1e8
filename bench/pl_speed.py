"""Plackett-Luce fit speed against choix on the same data, in one process.

    python bench/pl_speed.py [--rankings 100000] [--big 1000000] [--bootstrap 200]

1. 100 models x N strict rankings over random subsets of 5-50 models: `aggregators.rank` (DataFrame in,
   scores out) vs `choix.ilsr_rankings` on the same rankings; same estimates (max abs difference printed).
2. 1,000,000 such rankings: wall time and peak memory (RSS, input frame included) of `aggregators.rank`.
3. A dense binary 4,280-model x 145-sample matrix (Open LLM Leaderboard ARC's shape), `pl` and `pl-conditional`.
4. 200 bootstrap replicates at N rankings, on all cores.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from functools import partial

import choix
import numpy as np
import pandas as pd

import aggregators


def rankings_frame(n_models: int, n_rankings: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Long frame of strict rankings from a PL model; also the flat items and ranking lengths.

    Built 100,000 rankings at a time, so that building it takes little more memory than the frame itself.
    """
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=n_models)
    parts = [_rankings(rng, truth, min(100_000, n_rankings - start)) for start in range(0, n_rankings, 100_000)]
    items = np.concatenate([p[0] for p in parts])
    lengths = np.concatenate([p[1] for p in parts])
    ranking = np.repeat(np.arange(n_rankings), lengths)
    position = np.arange(len(items)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = pd.DataFrame({"sample_id": ranking, "model": items, "value": -position.astype(float)})
    return frame, items, lengths


def _rankings(rng: np.random.Generator, truth: np.ndarray, n_rankings: int) -> tuple[np.ndarray, np.ndarray]:
    """Items (best first, ranking by ranking) and lengths of rankings over random subsets of 5-50 models."""
    lengths = rng.integers(5, 51, n_rankings)
    subsets = np.argsort(rng.random((n_rankings, len(truth))), axis=1)  # a random permutation per ranking
    items = subsets[np.arange(len(truth))[None, :] < lengths[:, None]]  # its first `length` models
    ranking = np.repeat(np.arange(n_rankings), lengths)
    utility = truth[items] + rng.gumbel(size=len(items))
    return items[np.lexsort((-utility, ranking))], lengths


def big_step(n_models: int, n_rankings: int) -> None:
    """Step 2 in a process of its own, so that its peak memory is its own."""
    big, _, _ = rankings_frame(n_models, n_rankings, 1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _, seconds = timed(partial(aggregators.rank, big, method="pl", alpha=0.0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"[2] {n_models} models x {n_rankings:,} rankings ({len(big):,} entries): {seconds:.1f} s, "
        f"peak RSS {peak / 1e6:.2f} GB (input frame built: {before / 1e6:.2f} GB)"
    )


def timed(func):
    start = time.perf_counter()
    result = func()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rankings", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--only-big", type=int, help="Run step 2 alone with this many rankings (own process).")
    args = parser.parse_args()
    n_models = 100
    if args.only_big:
        big_step(n_models, args.only_big)
        return

    frame, items, lengths = rankings_frame(n_models, args.rankings, 0)
    data = np.split(items, np.cumsum(lengths)[:-1])
    ours, t_ours = timed(lambda: aggregators.rank(frame, method="pl", alpha=0.0))
    theirs, t_choix = timed(lambda: choix.ilsr_rankings(n_models, data))
    ours_theta = ours.set_index("model").loc[[str(i) for i in range(n_models)], "score"].to_numpy()
    diff = np.abs(ours_theta - (theirs - theirs.mean())).max()
    print(
        f"[1] {n_models} models x {args.rankings:,} rankings ({len(items):,} entries): "
        f"poolbench {t_ours:.2f} s, choix.ilsr_rankings {t_choix:.2f} s, "
        f"speed-up {t_choix / t_ours:.1f}x, max |diff| {diff:.1e}"
    )

    done = subprocess.run(
        [sys.executable, __file__, "--only-big", str(args.big)], capture_output=True, text=True, check=True
    )
    print(done.stdout.strip())

    rng = np.random.default_rng(2)
    ability = rng.normal(size=4280)
    difficulty = rng.normal(size=145)
    correct = rng.random((145, 4280)) < 1 / (1 + np.exp(-(ability[None, :] - difficulty[:, None])))
    dense = pd.DataFrame(
        {
            "sample_id": np.repeat(np.arange(145), 4280),
            "model": np.tile(np.arange(4280), 145),
            "value": correct.ravel().astype(float),
        }
    )
    board, t_dense = timed(lambda: aggregators.rank(dense, method="pl", alpha=0.01))
    _, t_load = timed(lambda: aggregators.rank(dense[dense["model"] < 5], method="pl-conditional"))  # loads its kernels
    _, t_exact = timed(lambda: aggregators.rank(dense, method="pl-conditional", alpha=0.01))
    print(
        f"[3] dense binary 4,280 x 145 ({len(dense):,} measurements): pl {t_dense:.2f} s, pl-conditional "
        f"(the default) {t_exact:.2f} s (after loading its compiled kernels, once per process: {t_load:.2f} s)"
    )

    _, t_boot = timed(lambda: aggregators.rank(frame, method="pl", alpha=0.0, bootstrap=args.bootstrap))
    print(
        f"[4] {args.bootstrap} bootstrap replicates at {args.rankings:,} rankings: {t_boot:.1f} s "
        f"({t_boot / t_ours:.1f}x one fit)"
    )


if __name__ == "__main__":
    main()
