"""Audit speed: `aggregators.audit.discrimination` vs scipy's `spearmanr` sample by sample, on the same data.

    python bench/audit.py [--models 100] [--samples 20000] [--kept 0.3] [--repeats 2]

Rasch outcomes of `--models` models on `--samples` questions, a fraction `--kept` of the measurements kept at
random; the scores are the models' true abilities. The baseline groups the rows by sample in pandas and calls
`spearmanr(alternative="less")` on each sample measured on at least 10 models whose values differ; then
Benjamini-Hochberg over them. Both must give the same p-values; they run in turns.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control, spearmanr
from timing import in_turns

from aggregators.audit import MIN_MODELS, discrimination


def per_sample(frame: pd.DataFrame, scores: pd.Series) -> pd.Series:
    """p-value per tested sample, one scipy call each."""
    p_values = {}
    for sample, rows in frame.groupby("sample_id", sort=False):
        if len(rows) >= MIN_MODELS and rows["value"].nunique() > 1:
            test = spearmanr(rows["value"], scores[rows["model"]].to_numpy(), alternative="less")
            p_values[sample] = test.pvalue
    found = pd.Series(p_values)
    false_discovery_control(found.to_numpy())
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--kept", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ability, difficulty = rng.normal(0, 1, args.models), rng.normal(0, 1, args.samples)
    model, sample = np.nonzero(rng.random((args.models, args.samples)) < args.kept)
    correct = rng.random(len(model)) < 1 / (1 + np.exp(difficulty[sample] - ability[model]))
    frame = pd.DataFrame({"sample_id": sample.astype(str), "model": model.astype(str), "value": correct.astype(float)})
    scores = pd.Series(ability, index=np.arange(args.models).astype(str))
    results: dict[str, pd.Series] = {}

    def ours() -> None:
        table = discrimination(frame, scores)
        results["ours"] = table.set_index("sample_id")["p_value"]

    def scipy_loop() -> None:
        results["scipy"] = per_sample(frame, scores)

    ours_times, plain_times = in_turns(args.repeats, ours, scipy_loop)
    ours_p, scipy_p = results["ours"], results["scipy"].reindex(results["ours"].index)
    assert len(ours_p) == len(results["scipy"]) and np.allclose(ours_p, scipy_p, atol=1e-12), "p-values differ"
    print(f"{len(frame):,} measurements, {len(ours_p):,} samples tested; the same p-values")
    best, plain = min(ours_times), min(plain_times)
    print(f"discrimination:      {best:6.2f} s   runs: {ours_times}")
    print(f"spearmanr per sample: {plain:6.2f} s   runs: {plain_times}")
    print(f"speed-up: {plain / best:.1f}x")


if __name__ == "__main__":
    main()
