"""Baseline rankings with the same output shape as Plackett-Luce: mean, Bradley-Terry, Elo, Borda.

Each takes `sample_weight` (one per sample, the bootstrap's multiplicities) and returns one score per model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from aggregators.orderings import Orderings, ranges

ELO_K, ELO_SCALE, ELO_BASE, ELO_INIT = 4.0, 400.0, 10.0, 1000.0
#: choix's regularisation of the Bradley-Terry fit (initial transition rates of its Markov chain): it keeps a
#: model that never wins or never loses finite, so such a rating rests on it, not on the data.
BT_REGULARISATION = 1e-6


def mean_scores(values: pd.DataFrame, models: np.ndarray, samples: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """Mean value per model, macro-averaged over `source` when that column is present (NaN if unmeasured).

    `values` has columns sample_id, model, value[, source]; `samples`, its sample ids, order the first weights.
    """
    weight = sample_weight[pd.Categorical(values["sample_id"], categories=samples).codes]
    frame = pd.DataFrame(
        {
            "model": values["model"].to_numpy(),
            "source": values["source"].to_numpy() if "source" in values.columns else "",
            "wv": weight * values["value"].to_numpy(dtype=float),
            "w": weight,
        }
    )
    per_source = frame.groupby(["model", "source"], sort=False)[["wv", "w"]].sum()
    per_source = per_source[per_source["w"] > 0]
    mean = (per_source["wv"] / per_source["w"]).groupby(level="model").mean()
    return mean.reindex(models).to_numpy(dtype=float)


def _entry_weight(orderings: Orderings, sample_weight: np.ndarray | None) -> np.ndarray:
    """Per entry: its ordering's weight times its sample's weight."""
    o = orderings
    weight = o.ordering_weight if sample_weight is None else o.ordering_weight * sample_weight[o.ordering_sample]
    return weight[o.tier_ordering[o.tier]]


def battles(
    orderings: Orderings, sample_weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pairwise battle within an ordering: (model_a, model_b, score of a, weight). A higher tier
    beats every lower one (score 1); two models of one tier tie (score 0.5)."""
    o = orderings
    weight = _entry_weight(o, sample_weight)
    tier_end = _ends(o.tier)
    a, b, w = _pairs(o.item, tier_end, _ends(o.tier_ordering[o.tier]), weight)
    ta, tb, tw = _pairs(o.item, np.arange(1, len(o.item) + 1), tier_end, weight)
    return np.r_[a, ta], np.r_[b, tb], np.r_[np.ones(len(a)), np.full(len(ta), 0.5)], np.r_[w, tw]


def pair_counts(orderings: Orderings, sample_weight: np.ndarray | None = None) -> np.ndarray:
    """W[i, j]: weighted times i sat in a higher tier than j; a shared tier counts half each way."""
    model_a, model_b, score, weight = battles(orderings, sample_weight)
    counts = np.zeros((orderings.n_models, orderings.n_models))
    np.add.at(counts, (model_a, model_b), score * weight)
    np.add.at(counts, (model_b, model_a), (1.0 - score) * weight)
    return counts


def _ends(group: np.ndarray) -> np.ndarray:
    """Per entry: one past the last position of its run of equal `group` values."""
    n = len(group)
    last = np.r_[group[1:] != group[:-1], True]
    end = np.where(last, np.arange(1, n + 1), 0)
    return np.minimum.accumulate(np.where(last, end, n + 1)[::-1])[::-1]


def _pairs(item: np.ndarray, start: np.ndarray, stop: np.ndarray, weight: np.ndarray):
    """All (item[e], item[f]) with start[e] <= f < stop[e], with weight[e]."""
    count = np.maximum(stop - start, 0)
    first = np.repeat(np.arange(len(item)), count)
    second = ranges(start, count)
    return item[first], item[second], weight[first]


def bt_scores(orderings: Orderings, sample_weight: np.ndarray) -> np.ndarray:
    """Bradley-Terry as LMArena reports it: pairwise counts (ties half), 1000 + 400 * log10-strength."""
    import choix  # it imports scipy.stats (a second): only bt pays for it

    counts = pair_counts(orderings, sample_weight)
    theta = choix.ilsr_pairwise_dense(counts, alpha=BT_REGULARISATION, max_iter=1000)
    return ELO_INIT + ELO_SCALE / math.log(ELO_BASE) * (theta - theta.mean())


def elo_scores(orderings: Orderings, sample_weight: np.ndarray, seed: int = 0) -> np.ndarray:
    """FastChat's online Elo (K=4, scale 400, base 10, start 1000) over every pairwise battle, ties = 0.5,
    battles in a seeded random order; a sample of weight k plays its battles k times."""
    model_a, model_b, outcome, weight = battles(orderings, sample_weight)
    repeats = np.ceil(weight - 1e-9).astype(int)
    order = np.random.default_rng(seed).permutation(int(repeats.sum()))
    played = np.repeat(np.arange(len(repeats)), repeats)[order]
    rating = np.full(orderings.n_models, ELO_INIT)
    for i, j, s in zip(model_a[played].tolist(), model_b[played].tolist(), outcome[played].tolist(), strict=True):
        expected = 1.0 / (1.0 + ELO_BASE ** ((rating[j] - rating[i]) / ELO_SCALE))
        rating[i] += ELO_K * (s - expected)
        rating[j] -= ELO_K * (s - expected)
    return rating


def borda_scores(orderings: Orderings, sample_weight: np.ndarray) -> np.ndarray:
    """Mean normalised Borda count: per ordering, (models below + half the tied ones) / (size - 1)."""
    o = orderings
    weight = _entry_weight(o, sample_weight)
    ordering_end = _ends(o.tier_ordering[o.tier])
    ordering_start = len(o.item) - _ends(o.tier_ordering[o.tier][::-1])[::-1]
    tier_end = _ends(o.tier)
    tier_start = len(o.item) - _ends(o.tier[::-1])[::-1]
    size = ordering_end - ordering_start
    points = (ordering_end - tier_end + 0.5 * (tier_end - tier_start - 1)) / np.maximum(size - 1, 1)
    total = np.bincount(o.item, weight * points, minlength=o.n_models)
    seen = np.bincount(o.item, weight, minlength=o.n_models)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(seen > 0, total / seen, np.nan)
