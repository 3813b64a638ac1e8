"""Bootstrap over samples: seeded, parallel, the same draws whatever the number of workers.

A replicate draws every sample's multiplicity from a multinomial (resampling samples with replacement),
and a method refits with those sample weights. Comparisons and metrics of one sample move together.
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np
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
    weights = replicate_weights(n_samples, replicates, seed)
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


def replicate_weights(n_samples: int, replicates: int, seed: int = 0) -> list[np.ndarray]:
    """Each replicate's multiplicity of every sample: draw b from the b-th child of `SeedSequence(seed)`."""
    children = np.random.SeedSequence(seed).spawn(replicates)
    return [
        np.random.default_rng(child).multinomial(n_samples, np.full(n_samples, 1.0 / n_samples)) for child in children
    ]


def _run_chunk(weights: list[np.ndarray]) -> np.ndarray:
    assert _JOB is not None
    with threadpool_limits(1):  # one BLAS thread per worker: the workers already fill the cores
        return np.array([_JOB(w) for w in weights])


def intervals(draws: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """Percentile intervals of scores and of ranks (1 = best) from bootstrap draws (replicates, models). A
    replicate where a model has no score (NaN: `mean` when none of its samples was drawn) leaves it out of
    that model's intervals and of the others' ranks; a model with no score in any replicate gets NaN."""
    tail = (1.0 - level) / 2.0 * 100.0
    ranks = competition_ranks(draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": that model's intervals are NaN
        return {
            "ci_low": np.nanpercentile(draws, tail, axis=0),
            "ci_high": np.nanpercentile(draws, 100.0 - tail, axis=0),
            "rank_low": np.nanpercentile(ranks, tail, axis=0, method="lower"),
            "rank_high": np.nanpercentile(ranks, 100.0 - tail, axis=0, method="higher"),
        }


def competition_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks along the last axis: 1 for the highest score, ties sharing their best rank ("1224", as
    `scipy.stats.rankdata(-scores, method="min")`); NaN for a NaN score, which outranks no one."""
    scores = np.asarray(scores, dtype=float)
    missing = np.isnan(scores)
    keys = np.where(missing, np.inf, -scores)  # ascending keys: best first, NaN last
    order = np.argsort(keys, axis=-1, kind="stable")
    ordered = np.take_along_axis(keys, order, axis=-1)
    starts = np.ones(ordered.shape, dtype=bool)
    starts[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    positions = np.broadcast_to(np.arange(ordered.shape[-1]), ordered.shape)
    first = np.maximum.accumulate(np.where(starts, positions, 0), axis=-1)  # where each tie group starts
    ranks = np.empty(ordered.shape)
    np.put_along_axis(ranks, order, first + 1.0, axis=-1)
    ranks[missing] = np.nan
    return ranks
