"""The robustness bench's reference estimators against closed forms and direct numerical integration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.integrate import quad_vec
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm

from aggregators.simulate import rasch, thin
from bench.robustness import known_difficulty_scores, random_difficulty_scores


def sparse_rasch() -> tuple[pd.DataFrame, np.ndarray]:
    """4 models x 25 samples, 40% removed: samples seen by one to four models."""
    frame, _, difficulty = rasch(seed=3, n_models=4, n_samples=25)
    sparse = thin(frame, 0.4, np.random.default_rng(0))
    return sparse, difficulty[sparse.index.to_numpy()]


def test_known_difficulty_solves_the_score_equation() -> None:
    """Per model: sum of sigmoid(ability - difficulty) over its rows equals its number correct."""
    frame, difficulty = sparse_rasch()
    ability = known_difficulty_scores(frame, difficulty)
    expected = expit(ability.reindex(frame["model"]).to_numpy() - difficulty)
    by_model = pd.DataFrame({"model": frame["model"], "expected": expected, "value": frame["value"]})
    sums = by_model.groupby("model")[["expected", "value"]].sum()
    np.testing.assert_allclose(sums["expected"], sums["value"], atol=1e-9)


def test_random_difficulty_maximises_the_integrated_likelihood() -> None:
    """The same maximum as the marginal likelihood integrated by scipy's adaptive quadrature (`quad_vec`) and
    maximised by BFGS, with the same prior on the abilities."""
    frame, _ = sparse_rasch()
    alpha = 0.01
    model, models = pd.factorize(frame["model"])
    sample, _ = pd.factorize(frame["sample_id"])
    correct = frame["value"].to_numpy() == 1

    def negative_log_posterior(params: np.ndarray) -> float:
        theta, sigma = params[:-1], np.exp(params[-1])

        def likelihoods(d: float) -> np.ndarray:
            """Per sample: P(its outcomes | difficulty d) times the density of d."""
            p = expit(theta[model] - d)
            return np.exp(np.bincount(sample, np.log(np.where(correct, p, 1 - p)))) * norm.pdf(d, scale=sigma)

        marginal = quad_vec(likelihoods, -12 * sigma, 12 * sigma, epsabs=0, epsrel=1e-12)[0]
        return -np.log(marginal).sum() + alpha * theta @ theta

    oracle = minimize(negative_log_posterior, np.zeros(len(models) + 1), method="BFGS", options={"gtol": 1e-7})
    expected = oracle.x[:-1] - oracle.x[:-1].mean()
    np.testing.assert_allclose(random_difficulty_scores(frame, alpha).reindex(models), expected, atol=1e-4)
