"""Which samples run against the ranking: classical test theory's item discrimination, on sparse measurements.

For each (sample, metric) measured on at least `min_models` models whose values there differ: Spearman's rank
correlation, across those models, between their value on it and their leaderboard score. A sound item is
passed more often by stronger models (r > 0); r < 0 marks one that stronger models fail more often, as a wrong
answer key or an ambiguous question makes them (MMLU-Redux found 6.5% of MMLU's questions wrong). Ranks, not
values: that the one model right on a question is the weakest of 22 happens by chance once in 22, and the test
of ranks says p = 0.049, where a Pearson correlation's test would say 1 in 7 million. p: the one-sided test of
r < 0 (Student's t with n - 2 degrees of freedom, as scipy's `spearmanr` computes it); q: Benjamini-Hochberg's
adjustment over the samples tested. The sample's own value is part of each score, which pulls r up: the test
errs toward not flagging.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control
from scipy.stats import t as student_t

MIN_MODELS = 10
FDR = 0.1
AUDIT_COLUMNS = ["sample_id", "metric", "n_models", "r", "p_value", "q_value"]


def discrimination(measurements: pd.DataFrame, scores: pd.Series, min_models: int = MIN_MODELS) -> pd.DataFrame:
    """Per (sample, metric) of `measurements` (`sample_id, model, value[, metric]`, higher is better) measured
    on at least `min_models` of the models `scores` (model -> leaderboard score) holds, with values that differ:
    `n_models`, `r` (Spearman's), `p_value` and `q_value` (see the module), most suspect (smallest p) first."""
    if min_models < 3:
        raise ValueError(f"a correlation's test needs at least 3 models, not {min_models}")
    scores = scores.dropna()  # a model the ranking could not score
    frame = measurements[measurements["model"].isin(scores.index)]
    if "metric" not in frame.columns:
        frame = frame.assign(metric="")
    item = frame.groupby(["sample_id", "metric"], sort=False, observed=True).ngroup().to_numpy()
    if not len(item):
        return pd.DataFrame(columns=AUDIT_COLUMNS)
    ranks = pd.DataFrame({"item": item, "value": frame["value"].to_numpy(float)})
    ranks["score"] = scores.reindex(frame["model"]).to_numpy(float)
    ranked = ranks.groupby("item")[["value", "score"]].rank()  # within each sample; ties share their mean rank
    value, score = ranked["value"].to_numpy(), ranked["score"].to_numpy()
    count = np.bincount(item)
    sums = {name: np.bincount(item, weights) for name, weights in _moments(value, score).items()}
    covariance = sums["xy"] - sums["x"] * sums["y"] / count
    spread_x = sums["xx"] - sums["x"] ** 2 / count
    spread_y = sums["yy"] - sums["y"] ** 2 / count
    tested = (count >= min_models) & (spread_x > 1e-12 * count) & (spread_y > 1e-12 * count)
    r = np.clip(covariance[tested] / np.sqrt(spread_x[tested] * spread_y[tested]), -1.0, 1.0)
    n = count[tested]
    with np.errstate(divide="ignore"):
        t = r * np.sqrt((n - 2) / np.maximum(1 - r**2, 0.0))
    p = student_t.cdf(t, n - 2)
    keys = frame[["sample_id", "metric"]].drop_duplicates().to_numpy()[np.flatnonzero(tested)]
    table = pd.DataFrame(
        {
            "sample_id": keys[:, 0],
            "metric": keys[:, 1],
            "n_models": n,
            "r": r,
            "p_value": p,
            "q_value": false_discovery_control(p) if len(p) else p,
        }
    )
    return table.sort_values(["p_value", "r"], kind="stable").reset_index(drop=True)


def flagged(table: pd.DataFrame, fdr: float = FDR) -> pd.DataFrame:
    """The samples of `discrimination`'s table that run against the ranking at the false discovery rate `fdr`."""
    return table[table["q_value"] <= fdr]


def flagged_note(table: pd.DataFrame, fdr: float = FDR) -> str:
    """How many of the samples tested (`discrimination`'s table) are `flagged` at `fdr`, in words."""
    return (
        f"{len(flagged(table, fdr)):,} of {len(table):,} samples tested (measured on enough models, values that "
        f"differ) run against the ranking at a false discovery rate of {fdr:g}"
    )


def _moments(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": x, "y": y, "xx": x * x, "yy": y * y, "xy": x * y}
