"""Synthetic data with known truth, for tests and the robustness experiment.

`rasch` draws binary outcomes P(correct) = sigmoid(ability - difficulty); `selection_bias` gives propensities
under which strong models mostly see hard samples and weak models easy ones (the case where the mean fails);
`thin` removes measurements per model, at random or by those propensities.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rasch(seed: int = 0, n_models: int = 30, n_samples: int = 3000) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Complete Rasch data: the long frame `sample_id, model, value`, the true abilities (by model), and each
    row's sample difficulty."""
    rng = np.random.default_rng(seed)
    ability = np.sort(rng.normal(0, 1.2, n_models))
    difficulty = rng.normal(0, 1.5, n_samples)
    correct = rng.random((n_samples, n_models)) < 1 / (1 + np.exp(difficulty[:, None] - ability[None, :]))
    models = np.array([f"m{i:02d}" for i in range(n_models)])
    frame = pd.DataFrame(
        {
            "sample_id": np.repeat(np.arange(n_samples).astype(str), n_models),
            "model": np.tile(models, n_samples),
            "value": correct.ravel().astype(float),
        }
    )
    return frame, pd.Series(ability, index=models), np.repeat(difficulty, n_models)


def selection_bias(
    frame: pd.DataFrame, ability: pd.Series, difficulty: np.ndarray, strength: float = 2.0
) -> np.ndarray:
    """Per row: exp(strength * z(ability) * z(difficulty)), so strong models mostly see hard samples."""
    a = ability.reindex(frame["model"]).to_numpy()
    return np.exp(strength * (a - ability.mean()) / ability.std() * (difficulty - difficulty.mean()) / difficulty.std())


def thin(
    frame: pd.DataFrame, missing: float, rng: np.random.Generator, weight: np.ndarray | None = None
) -> pd.DataFrame:
    """Keep about (1 - missing) of each model's rows (at least one), at random or weighted by `weight`."""
    if missing == 0:
        return frame
    keep = np.zeros(len(frame), dtype=bool)
    for rows in frame.groupby("model").indices.values():
        k = max(1, int(round(len(rows) * (1 - missing))))
        p = None if weight is None else weight[rows] / weight[rows].sum()
        keep[rng.choice(rows, size=k, replace=False, p=p)] = True
    return frame[keep]
