"""The Plackett-Luce fit over weak orders, with ONEBench's choice-set encoding.

Every model of a tier is chosen over the set {itself} + everything in the tiers below it; a tier with
nothing below gives no choice. With log-strengths theta the negative log-posterior is

    f(theta) = - sum_choices w_c * (theta_winner - log sum_{j in set_c} exp theta_j) + alpha * ||theta||^2

i.e. `alpha` is an isotropic Gaussian prior on the log-strengths with variance 1 / (2 alpha), the same
penalty as `choix.opt_rankings(alpha=...)`. alpha = 0 is the maximum-likelihood estimate. f and its gradient
cost O(entries) (bincounts and segmented cumulative sums); L-BFGS minimises it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from aggregators.orderings import Orderings


class _Layout:
    """Arrays derived once per Orderings for the objective: winners, their weights, each tier's first tier."""

    def __init__(self, orderings: Orderings) -> None:
        o = orderings
        self.o = o
        self.n_tiers = len(o.tier_last)
        self.winner = o.winner
        self.entry_weight = np.where(self.winner, o.ordering_weight[o.tier_ordering[o.tier]], 0.0)
        self.tier_first = o.tier_first
        self.wins = np.bincount(o.item, self.entry_weight, minlength=o.n_models)


def objective(theta: np.ndarray, layout: _Layout, alpha: float) -> tuple[float, np.ndarray]:
    """Negative log-posterior and its gradient at `theta` (length n_models)."""
    o = layout.o
    shift = theta.max() if len(theta) else 0.0
    x = np.exp(theta - shift)
    xe = x[o.item]
    tier_sum = np.bincount(o.tier, xe, minlength=layout.n_tiers)
    suffix = np.r_[np.cumsum(tier_sum[::-1])[::-1], 0.0]  # suffix[t] = sum of tier_sum[t:]
    below = suffix[np.arange(layout.n_tiers) + 1] - suffix[o.tier_last + 1]
    denominator = xe + below[o.tier]
    winner = layout.winner
    weight = layout.entry_weight
    log_likelihood = np.dot(weight[winner], theta[o.item[winner]] - shift - np.log(denominator[winner]))
    inverse = np.zeros_like(xe)
    inverse[winner] = weight[winner] / denominator[winner]
    tier_inverse = np.bincount(o.tier, inverse, minlength=layout.n_tiers)
    prefix = np.r_[0.0, np.cumsum(tier_inverse)]  # prefix[t] = sum of tier_inverse[:t]
    above = prefix[np.arange(layout.n_tiers)] - prefix[layout.tier_first]
    expected = np.bincount(o.item, xe * (inverse + above[o.tier]), minlength=o.n_models)
    value = -log_likelihood + alpha * np.dot(theta, theta)
    gradient = -(layout.wins - expected) + 2.0 * alpha * theta
    return float(value), gradient


def fit(
    orderings: Orderings, alpha: float = 0.0, init: np.ndarray | None = None, tol: float = 1e-9
) -> np.ndarray:
    """Centered log-strengths (mean 0) maximising the posterior; one per `orderings.models`.

    The caller checks identifiability first (diagnostics.check): with alpha = 0 and no MLE the optimiser
    would drift without bound. `tol` bounds the gradient's largest component relative to the total weight.
    """
    layout = _Layout(orderings)
    start = np.zeros(orderings.n_models) if init is None else np.asarray(init, dtype=float)
    scale = max(float(layout.entry_weight.sum()), 1.0)
    with threadpool_limits(1):  # model-length vectors: BLAS threads only spin and contend
        result = minimize(
            lambda t: objective(t, layout, alpha),
            start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20_000, "maxcor": 30, "gtol": tol * scale, "ftol": 0.0},
        )
    theta = result.x
    return theta - theta.mean()
