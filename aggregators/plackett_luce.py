"""The Plackett-Luce fit over weak orders, with ONEBench's choice-set encoding.

Every model of a tier is chosen over the set {itself} + everything in the tiers below it; a tier with
nothing below gives no choice. With log-strengths theta the negative log-posterior is

    f(theta) = - sum_choices w_c * (theta_winner - log sum_{j in set_c} exp theta_j) + alpha * ||theta||^2

i.e. `alpha` is an isotropic Gaussian prior on the log-strengths with variance 1 / (2 alpha), the same
penalty as `choix.opt_rankings(alpha=...)`. alpha = 0 is the maximum-likelihood estimate. f and its gradient
cost O(entries) (bincounts and cumulative sums, block by block); L-BFGS minimises it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from aggregators.orderings import Orderings

#: Entries per block of the objective: a block's dozen float arrays (about 6 MB) stay in cache between passes.
BLOCK_ENTRIES = 1 << 16


class Layout:
    """Arrays derived once per Orderings, cut into blocks of whole orderings of about BLOCK_ENTRIES entries.

    Each objective call runs its dozen passes block by block: a block's arrays stay in cache between passes,
    and its cumulative sums run over one block only (a sum over millions of entries would lose digits to
    cancellation, and with them the line search's progress).
    """

    def __init__(self, orderings: Orderings) -> None:
        o = orderings
        self.n_models = o.n_models
        strict = len(o.item) == len(o.tier_last)  # every tier one entry: tier arrays are entry arrays
        entry_weight = o.ordering_weight[o.tier_ordering]
        if not strict:
            entry_weight = entry_weight[o.tier]
        entry_weight *= o.winner  # only winners are chosen
        self.wins = np.bincount(o.item, entry_weight, minlength=o.n_models)
        self.total_weight = float(entry_weight.sum())
        # each ordering's first tier and first entry, then one past the last
        first_tier = np.r_[np.flatnonzero(np.diff(o.tier_ordering, prepend=-1)), len(o.tier_last)]
        first_entry = np.asarray(np.searchsorted(o.tier, first_tier))
        n_orderings = len(first_tier) - 1
        # blocks start at the first ordering that starts at or after each multiple of BLOCK_ENTRIES
        cuts = np.unique(np.searchsorted(first_entry, np.arange(0, len(o.item), BLOCK_ENTRIES)))
        bounds = np.r_[cuts[cuts < n_orderings], n_orderings]
        self.blocks = [
            _Block(o, entry_weight, first_tier[begin : end + 1], first_entry[begin], first_entry[end], strict)
            for begin, end in zip(bounds[:-1], bounds[1:], strict=True)
        ]


class _Block:
    """Whole orderings: entries [start, stop) as views of the entry arrays; per ordering its first tier
    (`first`, numbered from 0 in the block), its number of tiers (`size`) and one past its last (`end`)."""

    def __init__(
        self, o: Orderings, entry_weight: np.ndarray, first_tier: np.ndarray, start: int, stop: int, strict: bool
    ) -> None:
        self.item = o.item[start:stop]
        self.weight = entry_weight[start:stop]
        self.tier = None if strict else o.tier[start:stop] - first_tier[0]
        self.n_tiers = int(first_tier[-1] - first_tier[0])
        self.first = first_tier[:-1] - first_tier[0]
        self.size = np.diff(first_tier)
        self.end = self.first + self.size

    def terms(self, x: np.ndarray, n_models: int) -> tuple[float, np.ndarray]:
        """sum_c w_c log D_c and, per model, sum over the choice sets holding it of w_c x_i / D_c."""
        xe = x.take(self.item)
        suffix = np.zeros(self.n_tiers + 1)
        np.cumsum(self._per_tier(xe)[::-1], out=suffix[-2::-1])  # suffix[t]: tiers t, t+1, ... of the block
        below = suffix[1:] - np.repeat(suffix[self.end], self.size)  # per tier: its ordering's tiers below it
        denominator = self._per_entry(below) + xe  # a winner's choice set: itself and all below its tier
        log_sum = float(np.dot(self.weight, np.log(denominator)))
        inverse = self.weight / denominator
        prefix = np.zeros(self.n_tiers + 1)
        np.cumsum(self._per_tier(inverse), out=prefix[1:])  # prefix[t]: the block's tiers before t
        above = prefix[:-1] - np.repeat(prefix[self.first], self.size)  # per tier: its ordering's tiers above it
        share = self._per_entry(above) + inverse
        share *= xe
        return log_sum, np.bincount(self.item, share, minlength=n_models)

    def _per_tier(self, per_entry: np.ndarray) -> np.ndarray:
        return per_entry if self.tier is None else np.bincount(self.tier, per_entry, minlength=self.n_tiers)

    def _per_entry(self, per_tier: np.ndarray) -> np.ndarray:
        return per_tier if self.tier is None else per_tier.take(self.tier)


def objective(theta: np.ndarray, layout: Layout, alpha: float) -> tuple[float, np.ndarray]:
    """Negative log-posterior and its gradient at `theta` (length n_models)."""
    shift = theta.max() if len(theta) else 0.0
    x = np.exp(theta - shift)
    log_sum, expected = 0.0, np.zeros(layout.n_models)
    for block in layout.blocks:
        block_log_sum, block_expected = block.terms(x, layout.n_models)
        log_sum += block_log_sum
        expected += block_expected
    log_likelihood = float(np.dot(layout.wins, theta - shift)) - log_sum
    value = -log_likelihood + alpha * float(np.dot(theta, theta))
    gradient = expected - layout.wins + 2.0 * alpha * theta
    return value, gradient


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
