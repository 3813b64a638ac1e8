"""The Plackett-Luce fit over weak orders, with ONEBench's choice-set encoding.

Every model of a tier is chosen over the set {itself} + everything in the tiers below it; a tier with
nothing below gives no choice. With log-strengths theta the negative log-posterior is

    f(theta) = - sum_choices w_c * (theta_winner - log sum_{j in set_c} exp theta_j) + alpha * ||theta||^2

i.e. `alpha` is an isotropic Gaussian prior on the log-strengths with variance 1 / (2 alpha), the same
penalty as `choix.opt_rankings(alpha=...)`. alpha = 0 is the maximum-likelihood estimate. f and its gradient
cost O(entries) (bincounts and segmented cumulative sums); L-BFGS minimises it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from aggregators.orderings import Orderings


class Layout:
    """Arrays derived once per Orderings so that each objective call is a handful of sequential passes."""

    def __init__(self, orderings: Orderings) -> None:
        o = orderings
        self.n_models = o.n_models
        self.n_tiers = len(o.tier_last)
        self.item = o.item
        self.tier = o.tier
        self.one_entry_per_tier = len(o.item) == self.n_tiers  # strict orders: entries are their tiers
        winner = o.winner
        self.entry_weight = np.where(winner, o.ordering_weight[o.tier_ordering[o.tier]], 0.0)
        first = o.tier_first
        starts = np.flatnonzero(first == np.arange(self.n_tiers))
        self.ordering_first = starts  # first tier of each ordering that has tiers
        self.ordering_after = np.r_[starts[1:], self.n_tiers]  # one past its last tier
        self.tiers_per_ordering = self.ordering_after - starts
        self.wins = np.bincount(o.item, self.entry_weight, minlength=o.n_models)
        self.total_weight = float(self.entry_weight.sum())

    def per_entry(self, per_tier: np.ndarray) -> np.ndarray:
        return per_tier if self.one_entry_per_tier else per_tier[self.tier]

    def per_tier(self, per_entry: np.ndarray) -> np.ndarray:
        if self.one_entry_per_tier:
            return per_entry
        return np.bincount(self.tier, per_entry, minlength=self.n_tiers)


def objective(theta: np.ndarray, layout: Layout, alpha: float) -> tuple[float, np.ndarray]:
    """Negative log-posterior and its gradient at `theta` (length n_models)."""
    lay = layout
    shift = theta.max() if len(theta) else 0.0
    x = np.exp(theta - shift)
    xe = x[lay.item]
    suffix = np.zeros(lay.n_tiers + 1)
    np.cumsum(lay.per_tier(xe)[::-1], out=suffix[-2::-1])  # suffix[t] = sum of tiers t, t+1, ...
    below = suffix[1:] - np.repeat(suffix[lay.ordering_after], lay.tiers_per_ordering)
    denominator = xe + lay.per_entry(below)  # a winner's choice set: itself and all below its tier
    log_likelihood = np.dot(lay.entry_weight, (theta - shift)[lay.item] - np.log(denominator))
    inverse = lay.entry_weight / denominator
    prefix = np.zeros(lay.n_tiers + 1)
    np.cumsum(lay.per_tier(inverse), out=prefix[1:])  # prefix[t] = sum of tiers before t
    above = prefix[:-1] - np.repeat(prefix[lay.ordering_first], lay.tiers_per_ordering)
    expected = np.bincount(lay.item, xe * (inverse + lay.per_entry(above)), minlength=lay.n_models)
    value = -log_likelihood + alpha * np.dot(theta, theta)
    gradient = expected - lay.wins + 2.0 * alpha * theta
    return float(value), gradient


def fit(orderings: Orderings, alpha: float = 0.0, init: np.ndarray | None = None, tol: float = 1e-8) -> np.ndarray:
    """Centered log-strengths (mean 0) maximising the posterior; one per `orderings.models`.

    The caller checks identifiability first (diagnostics.check): with alpha = 0 and no MLE the optimiser
    would drift without bound. `tol` bounds the gradient's largest component relative to the total weight.
    """
    layout = Layout(orderings)
    return minimise(lambda t: objective(t, layout, alpha), orderings.n_models, layout.total_weight, init, tol)


def minimise(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    n_models: int,
    total_weight: float,
    init: np.ndarray | None = None,
    tol: float = 1e-8,
) -> np.ndarray:
    """Centered minimiser of a smooth convex `objective(theta) -> (value, gradient)` by L-BFGS; the gradient's
    largest component ends below `tol * total_weight`."""
    start = np.zeros(n_models) if init is None else np.asarray(init, dtype=float)
    with threadpool_limits(1):  # model-length vectors: BLAS threads only spin and contend
        result = minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 20_000, "maxcor": 30, "gtol": tol * max(total_weight, 1.0), "ftol": 0.0, "maxls": 5},
        )
    theta = result.x
    return theta - theta.mean()
