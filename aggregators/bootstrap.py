"""Bootstrap over samples: seeded, parallel, the same draws whatever the number of workers.

A replicate draws every sample's multiplicity from a multinomial (resampling samples with replacement),
and a method refits with those sample weights. Comparisons and metrics of one sample move together.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from scipy.stats import rankdata
from threadpoolctl import threadpool_limits

ScoreFn = Callable[[np.ndarray], np.ndarray]
_JOB: ScoreFn | None = None  # the score function a forked worker inherits
BATCH = 4  # replicates per task: small enough for a live progress bar, large enough to amortise the task


def replicate_scores(
    score: ScoreFn,
    n_samples: int,
    replicates: int,
    seed: int = 0,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Scores of `replicates` bootstrap draws, shape (replicates, n_models).

    `score(sample_weight)` refits on integer sample weights (length n_samples). Draw b uses the b-th child of
    `SeedSequence(seed)`, so results do not depend on `workers` (default: all cores). `progress(k)` is called
    as each batch of k replicates finishes.
    """
    children = np.random.SeedSequence(seed).spawn(replicates)
    weights = [
        np.random.default_rng(child).multinomial(n_samples, np.full(n_samples, 1.0 / n_samples)) for child in children
    ]
    report = progress or (lambda done: None)
    workers = min(workers or os.cpu_count() or 1, replicates)
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        rows = []
        for w in weights:
            rows.append(score(w))
            report(1)
        return np.array(rows)
    global _JOB
    _JOB = score
    try:
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            batches = np.array_split(np.arange(replicates), -(-replicates // BATCH))
            parts = []
            for part in pool.map(_run_chunk, [[weights[i] for i in batch] for batch in batches]):
                parts.append(part)
                report(len(part))
            return np.vstack(parts)
    finally:
        _JOB = None


def _run_chunk(weights: list[np.ndarray]) -> np.ndarray:
    assert _JOB is not None
    with threadpool_limits(1):  # one BLAS thread per worker: the workers already fill the cores
        return np.array([_JOB(w) for w in weights])


def intervals(draws: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """Percentile intervals of scores and of ranks (1 = best) from bootstrap draws (replicates, models)."""
    tail = (1.0 - level) / 2.0 * 100.0
    ranks = rankdata(-draws, axis=1, method="min")
    return {
        "ci_low": np.percentile(draws, tail, axis=0),
        "ci_high": np.percentile(draws, 100.0 - tail, axis=0),
        "rank_low": np.percentile(ranks, tail, axis=0, method="lower").astype(int),
        "rank_high": np.percentile(ranks, 100.0 - tail, axis=0, method="higher").astype(int),
    }
