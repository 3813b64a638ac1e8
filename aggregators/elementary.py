"""Compiled kernels (numba) of the conditional likelihood: for each set of models, the weighted sum over degrees
k of log e_k (the elementary symmetric polynomial) of its strengths, and its gradient.

Three recursions compute it (`aggregators.conditional` explains when each is used): `_direct` on the
coefficients, `_ratios` on ratios of neighbouring coefficients, `_log_space` on their logarithms;
`sets_log_likelihood` runs them over all sets of a `conditional.Layout`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

#: The ratio E[j-1] / E[j] of a degree j that no model has reached yet (E[j] = 0): stands for infinity.
ABSENT = 1e300


def compiled(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """numba.njit(**options) with numba's on-disk cache, so a process loads the kernel instead of compiling it;
    where no folder can hold the cache (the package's and the user's cache folder both read-only), without it,
    and a warning says that the kernels compile in each process."""

    def decorate(function: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, **options)(function)
        except RuntimeError as error:  # numba: "cannot cache function ...: no locator available for file ..."
            if "cannot cache" not in str(error):
                raise
            warnings.warn(
                "numba finds no writable folder to cache pl-conditional's kernels in: they compile in each process "
                "(about 5 s); set NUMBA_CACHE_DIR to a writable folder",
                RuntimeWarning,
                stacklevel=1,  # one warning, not one per kernel
            )
            return numba.njit(**options)(function)

    return decorate


#: Elements of the stored forward steps of one segment of a set's models (float64, 512 KB: stays in cache).
SEGMENT_ELEMENTS = 1 << 16


#: With numpy's error model (a division by zero gives inf, it raises nothing), reassociation lets the loops over
#: degrees vectorise; no flag assumes finite values, so the checks for inf and NaN hold.
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


@compiled(error_model="numpy", fastmath=FASTMATH, inline="always")  # a call costs as much as a small step
def _step(ratio: np.ndarray, grow: np.ndarray, stay: np.ndarray, w: float, m: int) -> None:
    """Add model m (strength w relative to the set's strongest) to the ratios; its stay factors into `stay`."""
    width = len(stay)
    top = min(m, width - 1)
    for j in range(1, top + 1):
        grow[j] = 1.0 + w * ratio[j]
    stay[0] = 1.0
    for j in range(1, top + 1):
        inverse = 1.0 / grow[j]
        stay[j] = inverse
        ratio[j] *= grow[j - 1] * inverse
    if m + 1 < width:  # E[m + 1] was 0: none of it stays; its ratio E[m] / E[m + 1] = (1 + t[m]) / w_m
        stay[m + 1] = 0.0
        ratio[m + 1] = grow[m] / w


@compiled(error_model="numpy", fastmath=FASTMATH)
def _ratios(
    x: np.ndarray,
    counts: np.ndarray,
    rows: int,
    stay: np.ndarray,
    checkpoints: np.ndarray,
    scratch: np.ndarray,
    gradient: np.ndarray,
) -> float:
    """One set's sum over k of counts[k] * log e_k(exp(x)) by the recursion on ratios of neighbouring
    coefficients, r[j] = E[j-1] / E[j], and its gradient in x (the adjoint, on shares) into `gradient`; NaN when
    a value under- or overflows (strengths some 700 nats apart).

    Adding model m multiplies E[j] by 1 + t[j], t[j] = w_m r[j], so r[j] *= (1 + t[j-1]) / (1 + t[j]): no
    coefficient is stored, so none under- or overflows however far apart the k of one set are. Backwards,
    share[j] = (d value / d E[j]) * E[j] starts as the counts and splits at each model into the part where
    the model is not chosen (stay[m, j] = 1 / (1 + t[j]): stays at j) and where it is (the rest: the model's
    gradient, and moves to j - 1). The backward pass needs every step's stay factors: they are recomputed a
    segment of `rows` models at a time from the ratios checkpointed at its start, so memory is O(sqrt(n) * K)
    and in cache, not n * K. Scratch: stay (rows * len(counts)), checkpoints (segments * len(counts)), scratch
    (4 * len(counts)). Each step's loops over degrees vectorise."""
    size, width = len(x), len(counts)
    last = (size - 1) // rows
    center = x.max()
    ratio, grow, share, chosen = (
        scratch[:width],
        scratch[width : 2 * width],
        scratch[2 * width : 3 * width],
        scratch[3 * width : 4 * width],
    )
    ratio[:] = ABSENT
    grow[0] = 1.0  # 1 + t[0], t[0] = 0: degree 0 does not move
    for m in range(size):
        if m % rows == 0:
            checkpoints[(m // rows) * width : (m // rows + 1) * width] = ratio
        w = math.exp(x[m] - center)
        if w == 0.0:
            return math.nan
        row = m % rows  # the last segment's steps stay stored for the backward pass
        _step(ratio, grow, stay[row * width : (row + 1) * width], w, m)
    value, log_e = 0.0, 0.0
    for j in range(width):
        if j > 0:
            log_e -= math.log(ratio[j])
        if counts[j] > 0:
            value += counts[j] * (log_e + j * center)
    if not math.isfinite(value):
        return math.nan
    share[:] = counts
    for segment in range(last, -1, -1):
        first, end = segment * rows, min((segment + 1) * rows, size)
        if segment < last:
            ratio[:] = checkpoints[segment * width : (segment + 1) * width]
            for m in range(first, end):
                row = m - first
                _step(ratio, grow, stay[row * width : (row + 1) * width], math.exp(x[m] - center), m)
        for m in range(end - 1, first - 1, -1):
            top = min(m + 1, width - 1)  # E[j] before model m is 0 past degree m + 1
            row = m - first
            factors = stay[row * width : (row + 1) * width]
            total = 0.0
            for j in range(top + 1):
                chosen[j] = share[j] - share[j] * factors[j]
                total += chosen[j]
            for j in range(top):
                share[j] += chosen[j + 1] - chosen[j]
            share[top] -= chosen[top]
            if not math.isfinite(total):
                return math.nan
            gradient[m] = total
    return value


#: The smallest coefficient E[k] that the direct recursion trusts: what it lost to underflow (terms under 1e-308)
#: is then under 1e-18 of it.
SMALLEST = 1e-290

#: Sets of at most this many models (and steps that fit SEGMENT_ELEMENTS) go to the direct recursion: their
#: coefficients, at most 2^n of strengths <= 1, cannot overflow.
DIRECT_MODELS = 512


@compiled(error_model="numpy", fastmath=FASTMATH)
def _direct(
    w: np.ndarray, center: float, counts: np.ndarray, prefix: np.ndarray, adjoint: np.ndarray, gradient: np.ndarray
) -> float:
    """One set's sum over k of counts[k] * log e_k(w * exp(center)) and its gradient in log w into `gradient`,
    by the recursion on the coefficients themselves, E_m[j] = E_{m-1}[j] + w_m E_{m-1}[j-1], every step kept,
    and its adjoint: no division, no exp; every term positive, so nothing cancels. For small sets (strengths
    w <= 1, relative to the largest of all models); NaN when a coefficient the counts need is below SMALLEST or
    a value is not finite (the ratio recursion then takes the set). Scratch: prefix ((len(w) + 1) *
    len(counts)), adjoint (len(counts))."""
    size, width = len(w), len(counts)
    prefix[:width] = 0.0  # prefix[m * width + j] = E[j] after the first m models
    prefix[0] = 1.0
    for m in range(size):
        before, after, w_m = m * width, (m + 1) * width, w[m]
        prefix[after] = 1.0
        top = min(m + 1, width - 1)  # E[j] is 0 past degree m + 1: the next step reads one of those zeros
        for j in range(1, top + 1):
            prefix[after + j] = prefix[before + j] + w_m * prefix[before + j - 1]
        if top + 1 < width:
            prefix[after + top + 1] = 0.0
    value, last = 0.0, size * width
    for j in range(width):
        adjoint[j] = 0.0  # d value / d E[j]
        if counts[j] > 0:
            coefficient = prefix[last + j]
            if not coefficient >= SMALLEST:
                return math.nan
            value += counts[j] * (math.log(coefficient) + j * center)
            adjoint[j] = counts[j] / coefficient
    check = 0.0
    for m in range(size - 1, -1, -1):
        before, w_m = m * width, w[m]
        top = min(m + 1, width - 1)  # E[j] before model m is 0 past degree m: so is what it takes of the adjoint
        total = 0.0
        for j in range(1, top + 1):
            total += adjoint[j] * prefix[before + j - 1]
        for j in range(top):  # ascending: adjoint[j + 1] is still the later step's
            adjoint[j] += w_m * adjoint[j + 1]
        gradient[m] = w_m * total
        check += gradient[m]
    return value if math.isfinite(value) and math.isfinite(check) else math.nan


@compiled()
def _log_space(
    x: np.ndarray, counts: np.ndarray, prefix: np.ndarray, adjoint: np.ndarray, gradient: np.ndarray
) -> float:
    """The same value and gradient by the same recursion and adjoint on logarithms (logaddexp):
    slower, never under- or overflows. Scratch: prefix ((len(x) + 1) * len(counts)), adjoint (len(counts))."""
    size, width = len(x), len(counts)
    prefix[:width] = -math.inf  # prefix[m * width + j] = log E[j] after the first m models
    prefix[0] = 0.0
    for m in range(size):
        before, after = m * width, (m + 1) * width
        prefix[after : after + width] = -math.inf
        prefix[after] = 0.0
        for j in range(1, min(m + 1, width - 1) + 1):
            prefix[after + j] = _logaddexp(prefix[before + j], x[m] + prefix[before + j - 1])
    value = 0.0
    last = size * width
    for j in range(width):
        adjoint[j] = -math.inf  # log of d value / d E[j]
        if counts[j] > 0:
            value += counts[j] * prefix[last + j]
            adjoint[j] = math.log(counts[j]) - prefix[last + j]
    for m in range(size - 1, -1, -1):
        top, before, x_m = min(m + 1, width - 1), m * width, x[m]
        total = 0.0
        for j in range(1, top + 1):
            total += math.exp(x_m + adjoint[j] + prefix[before + j - 1])
        for j in range(top):
            adjoint[j] = _logaddexp(adjoint[j], x_m + adjoint[j + 1])
        gradient[m] = total
    return value


@compiled()
def _logaddexp(a: float, b: float) -> float:
    """log(exp(a) + exp(b)), exact for -inf."""
    high, low = max(a, b), min(a, b)
    return high if low == -math.inf else high + math.log1p(math.exp(low - high))


@compiled()
def sets_log_likelihood(
    theta: np.ndarray,
    items: np.ndarray,
    set_start: np.ndarray,
    sign: np.ndarray,
    counts: np.ndarray,
    count_start: np.ndarray,
    segment_rows: np.ndarray,
    direct: np.ndarray,
    gradient: np.ndarray,
    scratch: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> float:
    """Sum over sets and k of counts * log e_k of the set's signed strengths; adds its gradient to `gradient`.
    Each set: the direct recursion where `direct` says it is small enough, else (or when it gives up) the ratio
    recursion, and when a value under- or overflows there, the log-space one. `scratch`: Layout.scratch."""
    stay, checkpoints, per_degree, x, per_model = scratch
    centers = (theta.max(), -theta.min())  # of the strengths and of their inverses (flipped sets)
    strength = (np.exp(theta - centers[0]), np.exp(-theta - centers[1]))
    value = 0.0
    for s in range(len(sign)):
        models = items[set_start[s] : set_start[s + 1]]
        set_counts = counts[count_start[s] : count_start[s + 1]]
        size, width = len(models), len(set_counts)
        part = math.nan
        if direct[s]:
            side = 0 if sign[s] > 0 else 1
            for m in range(size):
                x[m] = strength[side][models[m]]
            part = _direct(x[:size], centers[side], set_counts, stay, per_degree, per_model)
        if math.isnan(part):
            for m in range(size):
                x[m] = sign[s] * theta[models[m]]
            part = _ratios(x[:size], set_counts, segment_rows[s], stay, checkpoints, per_degree, per_model)
        if math.isnan(part):
            part = _log_space(x[:size], set_counts, np.empty((size + 1) * width), per_degree, per_model)
        value += part
        for m in range(size):
            gradient[models[m]] += sign[s] * per_model[m]
    return value
