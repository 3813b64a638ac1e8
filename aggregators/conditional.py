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
same recursion in log space, with logaddexp, only if a value overflows). All are compiled loops (numba, in
`aggregators.elementary`) over each set's models and degrees: O(sum over sets of n * K) time per evaluation,
and memory O(sqrt(n) * K) for the largest set (the backward pass of the ratios recomputes the forward steps a
segment at a time; the log-space fallback keeps every step, n * K, as does the direct recursion, whose sets are
small).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from aggregators import elementary, plackett_luce
from aggregators.elementary import DIRECT_MODELS, SEGMENT_ELEMENTS
from aggregators.orderings import Orderings, index_of, ranges, sample_metric_key


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
    value += elementary.sets_log_likelihood(
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
