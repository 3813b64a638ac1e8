"""The exact conditional Plackett-Luce (Rasch) likelihood for binary samples.

A binary sample on which `k` of its `n` measured models are correct has, given `k`, the probability

    prod_{i in C} w_i / e_k(w_1, ..., w_n)        (w = exp(theta), C the correct set)

where `e_k` is the elementary symmetric polynomial. The sample's difficulty cancels, so the estimate stays
consistent under selection-biased sparsity, and with complete data each model's number correct is its
sufficient statistic (the ranking is the accuracy ranking). Samples where all or none are correct carry no
information and are dropped (and counted).

How `log e_k` is computed: samples with the same measured set share one polynomial, so they are grouped by
that set; a sample with k > n/2 is flipped (e_k(w) = prod(w) e_{n-k}(1/w): theta -> -theta, the incorrect set
is "chosen"), so no polynomial goes past degree n/2. For each set, the coefficients 0..K of prod_m (1 + w_m z)
come from the recursion E_m[j] = E_{m-1}[j] + w_m E_{m-1}[j-1]; the gradient is its reverse-mode adjoint. A
small set (a sample measured on a few dozen models) runs it on the coefficients themselves, with strengths
relative to the strongest model of all: no division or exp per step, half the time of the ratios below, and
exact unless a coefficient it needs underflows (then the set goes on to the ratios). Any other set carries it as
ratios of neighbouring coefficients (nothing under- or overflows however far apart the k of one set are; the
same recursion in log space, with logaddexp, only if a value overflows). All are compiled loops (numba) over
each set's models and degrees: O(sum over sets of n * K) time per evaluation, and memory O(sqrt(n) * K) for the
largest set (the backward pass of the ratios recomputes the forward steps a segment at a time; the log-space
fallback keeps every step, n * K, as does the direct recursion, whose sets are small).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numba
import numpy as np
import pandas as pd

from aggregators import plackett_luce
from aggregators.orderings import Orderings, index_of, ranges, sample_metric_key

#: The ratio E[j-1] / E[j] of a degree j that no model has reached yet (E[j] = 0): stands for infinity.
ABSENT = 1e300


@dataclass(frozen=True)
class BinarySamples:
    """Binary units (one per sample and metric), flipped so that k <= n / 2, and grouped by measured set.

    per unit: `unit_sample` (index into the caller's sample list, for bootstrap weights), `unit_group`,
    `unit_k` (chosen count), `unit_weight`; per chosen entry: `chosen_unit`, `chosen_item`;
    per group: its model indices `group_items[group_start[g]:group_start[g + 1]]` (ascending), `group_sign`
    (+1, or -1 when flipped). `uninformative`: units dropped because all or none of their models were correct;
    `single_model`: those of them measured on one model only; `n_units`: all units, dropped or not.
    """

    n_models: int
    unit_sample: np.ndarray
    unit_group: np.ndarray
    unit_k: np.ndarray
    unit_weight: np.ndarray
    chosen_unit: np.ndarray
    chosen_item: np.ndarray
    group_items: np.ndarray
    group_start: np.ndarray
    group_sign: np.ndarray
    uninformative: int
    single_model: int
    n_units: int

    @property
    def group_size(self) -> np.ndarray:
        """Models per group."""
        return np.diff(self.group_start)

    def reweighted(self, sample_weight: np.ndarray) -> BinarySamples:
        """The same units with each weight multiplied by its sample's weight."""
        return replace(self, unit_weight=self.unit_weight * sample_weight[self.unit_sample])


def is_binary(values: pd.Series) -> bool:
    """True when every value is 0 or 1."""
    return bool(values.isin((0.0, 1.0)).all())


def from_measurements(measurements: pd.DataFrame, models: np.ndarray, samples: np.ndarray) -> BinarySamples:
    """Binary units from a long frame `sample_id, model, value[, metric]` with values 0/1.

    `models` and `samples` are the sorted lists that every row's model and sample id belong to.
    """
    item = index_of(models, measurements["model"], "model")
    sample = index_of(samples, measurements["sample_id"], "sample")
    unit, keys = pd.factorize(sample_metric_key(sample, measurements)[0])
    correct = measurements["value"].to_numpy(dtype=float) == 1.0
    n = np.bincount(unit, minlength=len(keys))
    k = np.bincount(unit, correct, minlength=len(keys)).astype(np.int64)
    unit_sample = np.zeros(len(keys), dtype=np.int64)
    unit_sample[unit] = sample
    informative = (k > 0) & (k < n)
    single_model = int((n == 1).sum())
    kept = np.flatnonzero(informative)
    renumber = np.cumsum(informative) - 1
    entries = informative[unit]
    unit, item, correct = renumber[unit[entries]], item[entries], correct[entries]
    # by unit, then model: one integer key; timsort ("stable") runs through rows already grouped by sample or model
    order = np.argsort(unit * np.int64(len(models)) + item, kind="stable")
    unit, item, correct = unit[order], item[order], correct[order]
    n, k = n[kept], k[kept]
    flip = 2 * k > n
    chosen = correct != flip[unit]
    start = np.r_[0, np.cumsum(n)]
    first, unit_group = _group_by_set(start, item, flip, len(models))
    group_start = np.r_[0, np.cumsum(n[first])]
    return BinarySamples(
        n_models=len(models),
        unit_sample=unit_sample[kept],
        unit_group=unit_group,
        unit_k=np.where(flip, n - k, k),
        unit_weight=np.ones(len(kept)),
        chosen_unit=unit[chosen],
        chosen_item=item[chosen],
        group_items=item[ranges(start[first], n[first])],
        group_start=group_start,
        group_sign=np.where(flip[first], -1.0, 1.0),
        uninformative=int((~informative).sum()),
        single_model=single_model,
        n_units=len(informative),
    )


def _group_by_set(
    start: np.ndarray, item: np.ndarray, flip: np.ndarray, n_models: int
) -> tuple[np.ndarray, np.ndarray]:
    """Group units (unit u's entries item[start[u]:start[u + 1]], ascending) by (flip, measured set): each
    group's first unit, and each unit's group."""
    if len(start) == 1:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    n = np.diff(start)
    _, first, unit_group = np.unique(
        _set_hash(start[:-1], item, flip, n_models), return_index=True, return_inverse=True
    )
    unit_group = unit_group.ravel()
    group_first = first[unit_group]  # per unit, the first unit of its group
    same = (n == n[group_first]).all() and (flip == flip[group_first]).all()
    if same:  # entry by entry against the group's first unit
        same = (item == item[ranges(start[group_first], n)]).all()
    if not same:  # two sets with one hash: sort the padded rows themselves (slower)
        padded = np.full((len(n), int(n.max()) + 1), n_models, dtype=np.int64)
        padded[:, 0] = flip
        padded[np.repeat(np.arange(len(n)), n), 1 + ranges(np.zeros_like(n), n)] = item
        _, first, unit_group = np.unique(padded, axis=0, return_index=True, return_inverse=True)
        unit_group = unit_group.ravel()
    return first, unit_group


def _set_hash(start: np.ndarray, item: np.ndarray, flip: np.ndarray, n_models: int) -> np.ndarray:
    """Per unit (its entries from `start` on), a 64-bit hash of (flip, set of items): a wrapping sum of fixed
    random words, one per model."""
    words = np.random.default_rng(0).integers(0, 2**63, size=n_models + 2, dtype=np.int64).view(np.uint64)
    return np.add.reduceat(words[item], start) + words[n_models + flip.astype(np.int64)]


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
def _sets_log_likelihood(
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


class Layout:
    """Everything one objective evaluation needs, derived once per BinarySamples: each set with weight (a
    bootstrap replicate leaves about a third of them out), its models, its weight per k and the models per
    segment of its backward pass, and the kernels' scratch arrays (allocated once, O(sqrt(models) * degrees)
    of the largest set)."""

    def __init__(self, binary: BinarySamples) -> None:
        b = binary
        self.n_models = b.n_models
        unit_sign = b.group_sign[b.unit_group]
        self.chosen = np.bincount(
            b.chosen_item, (b.unit_weight * unit_sign)[b.chosen_unit], minlength=b.n_models
        ).astype(float)
        self.total_weight = float(b.unit_weight.sum())
        weight = np.bincount(b.unit_group, b.unit_weight, minlength=len(b.group_sign))
        width = np.zeros(len(b.group_sign), dtype=np.int64)  # highest k needed, plus one
        np.maximum.at(width, b.unit_group, b.unit_k + 1)
        used = np.flatnonzero(weight > 0)
        size, width = b.group_size[used], width[used]
        self.items = b.group_items[ranges(b.group_start[used], size)]
        self.set_start = np.r_[0, np.cumsum(size)]
        self.sign = b.group_sign[used]
        self.count_start = np.r_[0, np.cumsum(width)]
        position = np.full(len(b.group_sign), -1)
        position[used] = np.arange(len(used))
        unit_set = position[b.unit_group]
        mine = unit_set >= 0
        self.counts = np.bincount(
            self.count_start[unit_set[mine]] + b.unit_k[mine], b.unit_weight[mine], minlength=self.count_start[-1]
        ).astype(float)
        # a segment's steps fill about SEGMENT_ELEMENTS, and hold at least sqrt(models): segments and
        # checkpoints both stay O(sqrt(models) * degrees)
        rows = np.maximum(SEGMENT_ELEMENTS // width, np.sqrt(size).astype(np.int64))  # width >= 2: k >= 1
        self.segment_rows = np.minimum(rows, size)
        self.direct = (size <= DIRECT_MODELS) & ((size + 1) * width <= SEGMENT_ELEMENTS)
        stay = int(np.r_[self.segment_rows * width, ((size + 1) * width)[self.direct]].max(initial=0))
        checkpoints = int((-(-size // self.segment_rows) * width).max(initial=0))
        widest, largest = int(width.max(initial=0)), int(size.max(initial=0))
        self.scratch = (
            np.empty(stay),
            np.empty(checkpoints),
            np.empty(4 * widest),
            np.empty(largest),
            np.empty(largest),
        )


def objective(theta: np.ndarray, layout: Layout) -> tuple[float, np.ndarray]:
    """Negative conditional log-likelihood and its gradient at `theta` (length n_models); no prior."""
    theta = np.array(theta, dtype=float)  # a writable copy: read-only arrays would compile a second kernel
    gradient = -layout.chosen
    value = -float(np.dot(layout.chosen, theta))
    value += _sets_log_likelihood(
        theta,
        layout.items,
        layout.set_start,
        layout.sign,
        layout.counts,
        layout.count_start,
        layout.segment_rows,
        layout.direct,
        gradient,
        layout.scratch,
    )
    return value, gradient


def fit(
    binary: BinarySamples,
    orderings: Orderings | None,
    alpha: float = 0.0,
    init: np.ndarray | None = None,
    tol: float = 1e-8,
) -> np.ndarray:
    """Centered log-strengths maximising the conditional likelihood of `binary` times the choice-set PL
    likelihood of `orderings` (numeric samples, comparisons; may be None) under the Gaussian prior `alpha`."""
    layout = Layout(binary)
    total_weight = layout.total_weight
    pl_layout = None
    if orderings is not None and len(orderings.item):
        pl_layout = plackett_luce.Layout(orderings)
        total_weight += pl_layout.total_weight

    def posterior(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient = objective(theta, layout)
        if pl_layout is not None:
            pl_value, pl_gradient = plackett_luce.objective(theta, pl_layout, 0.0)
            value, gradient = value + pl_value, gradient + pl_gradient
        return value + alpha * float(np.dot(theta, theta)), gradient + 2.0 * alpha * theta

    return plackett_luce.minimise(posterior, binary.n_models, total_weight, init, tol)
