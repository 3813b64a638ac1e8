"""The exact conditional Plackett-Luce (Rasch) likelihood for binary samples.

A binary sample on which `k` of its `n` measured models are correct has, given `k`, the probability

    prod_{i in C} w_i / e_k(w_1, ..., w_n)        (w = exp(theta), C the correct set)

where `e_k` is the elementary symmetric polynomial. The sample's difficulty cancels, so the estimate stays
consistent under selection-biased sparsity, and with complete data each model's number correct is its
sufficient statistic (the ranking is the accuracy ranking). Samples where all or none are correct carry no
information and are dropped (and counted).

How `log e_k` is computed: samples with the same measured set share one polynomial, so they are grouped by
that set; a sample with k > n/2 is flipped (e_k(w) = prod(w) e_{n-k}(1/w): theta -> -theta, the incorrect set
is "chosen"), so no polynomial goes past degree n/2. For each group, the coefficients 0..K of
prod_m (1 + w_m z) come from the recursion E_m[j] = E_{m-1}[j] + w_m E_{m-1}[j-1], carried as ratios of
neighbouring coefficients (nothing under- or overflows however far apart the k of one set are; the same
recursion in log space, with logaddexp, only if a value overflows) over the group's models, vectorised over
groups of similar size; the gradient is the recursion's reverse-mode adjoint. Cost per evaluation:
O(sum over groups of n * K).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from aggregators import plackett_luce
from aggregators.orderings import Orderings, index_of, sample_metric_key

#: Elements of one chunk's stored forward pass (float64): bounds the objective's memory at about 128 MB.
CHUNK_ELEMENTS = 1 << 24
#: Rows (groups) per chunk: fewer means less padding, more means fewer numpy calls per step.
CHUNK_ROWS = 2048
#: The ratio E[j-1] / E[j] of a degree j that a padded row's models never reach (E[j] = 0): stands for infinity,
#: and times a padding's w = 0 gives 0.
ABSENT = 1e300


@dataclass(frozen=True)
class BinarySamples:
    """Binary units (one per sample and metric), flipped so that k <= n / 2, and grouped by measured set.

    per unit: `unit_sample` (index into the caller's sample list, for bootstrap weights), `unit_group`,
    `unit_k` (chosen count), `unit_weight`; per chosen entry: `chosen_unit`, `chosen_item`;
    per group: `group_items` (model indices, padded with `n_models`), `group_size`, `group_sign` (+1, or -1 when
    flipped). `uninformative`: units dropped because all or none of their models were correct;
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
    group_size: np.ndarray
    group_sign: np.ndarray
    uninformative: int
    single_model: int
    n_units: int

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
    order = np.lexsort((item, unit))
    unit, item, correct = unit[order], item[order], correct[order]
    n, k = n[kept], k[kept]
    flip = 2 * k > n
    chosen = correct != flip[unit]
    group_items, unit_group = _group_by_set(unit, item, n, flip, len(models))
    group_flip = np.zeros(len(group_items), dtype=bool)
    group_flip[unit_group] = flip
    return BinarySamples(
        n_models=len(models),
        unit_sample=unit_sample[kept],
        unit_group=unit_group,
        unit_k=np.where(flip, n - k, k),
        unit_weight=np.ones(len(kept)),
        chosen_unit=unit[chosen],
        chosen_item=item[chosen],
        group_items=group_items,
        group_size=(group_items < len(models)).sum(axis=1),
        group_sign=np.where(group_flip, -1.0, 1.0),
        uninformative=int((~informative).sum()),
        single_model=single_model,
        n_units=len(informative),
    )


def _group_by_set(
    unit: np.ndarray, item: np.ndarray, n: np.ndarray, flip: np.ndarray, n_models: int
) -> tuple[np.ndarray, np.ndarray]:
    """Group units (entries sorted by unit, then item) by (flip, measured set): the groups' model indices
    (padded with n_models) and each unit's group."""
    if not len(n):
        return np.zeros((0, 0), dtype=np.int64), np.zeros(0, dtype=np.int64)
    start = np.r_[0, np.cumsum(n)[:-1]]
    padded = np.full((len(n), int(n.max()) + 1), n_models, dtype=np.int64)
    padded[:, 0] = flip
    padded[unit, 1 + np.arange(len(unit)) - start[unit]] = item
    _, first, unit_group = np.unique(_set_hash(start, item, flip, n_models), return_index=True, return_inverse=True)
    rows = padded[first]
    if not (rows[unit_group] == padded).all():  # two sets with one hash: sort the rows themselves (slower)
        rows, unit_group = np.unique(padded, axis=0, return_inverse=True)
    return rows[:, 1:], unit_group.ravel()


def _set_hash(start: np.ndarray, item: np.ndarray, flip: np.ndarray, n_models: int) -> np.ndarray:
    """Per unit (its entries from `start` on), a 64-bit hash of (flip, set of items): a wrapping sum of fixed
    random words, one per model."""
    words = np.random.default_rng(0).integers(0, 2**63, size=n_models + 2, dtype=np.int64).view(np.uint64)
    return np.add.reduceat(words[item], start) + words[n_models + flip.astype(np.int64)]


class _Chunk:
    """Groups of similar size evaluated together: models (R, n; n_models pads), signs (R,), unit weights per
    k (R, K + 1)."""

    def __init__(self, items: np.ndarray, sign: np.ndarray, counts: np.ndarray, n_models: int) -> None:
        self.items = items
        self.padding = items >= n_models
        self.sign = sign
        self.counts = counts
        with np.errstate(divide="ignore"):
            self.log_counts = np.log(counts)

    def log_likelihood_terms(self, theta_padded: np.ndarray) -> tuple[float, np.ndarray]:
        """sum over groups and k of counts * log e_k, and its gradient per (group, model position)."""
        x = np.where(self.padding, -np.inf, self.sign[:, None] * theta_padded[self.items])  # padding: w = 0
        result = self._ratios(x)
        return result if result is not None else self._log_space(x)

    @np.errstate(over="ignore", divide="ignore", invalid="ignore")  # an overflow: None, and log space
    def _ratios(self, x: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The recursion on ratios of neighbouring coefficients, r[j] = E[j-1] / E[j], and its adjoint on
        shares; None if a value overflows (strengths some 700 nats apart).

        Adding model m multiplies E[j] by 1 + t[j], t[j] = w_m r[j], so r[j] *= (1 + t[j-1]) / (1 + t[j]): no
        coefficient is stored, so none under- or overflows however far apart the k of one set are. Backwards,
        share[j] = (d value / d E[j]) * E[j] starts as the counts and splits at each model into the part where
        the model is not chosen (1 / (1 + t[j]): stays at j) and where it is (the rest: the model's gradient,
        and moves to j - 1). Arrays are (coefficient, row), so each step works on contiguous rows."""
        rows, size = x.shape
        width = self.counts.shape[1]
        center = x.max(axis=1)
        w = np.exp(x.T - center)  # (size, rows): at most 1; padding 0
        ratio = np.full((width, rows), ABSENT)
        stay = np.ones((size, width, rows))  # per model: E[j] before it / E[j] after it
        for m in range(size):
            known, reach = min(m, width - 1), min(m + 1, width - 1)  # degrees with a ratio before / after m
            grow = 1.0 + w[m] * ratio[: known + 1]  # a degree a padded row never reached: ABSENT * 0
            grow[0] = 1.0
            np.divide(1.0, grow, out=stay[m, : known + 1])
            ratio[1 : known + 1] *= grow[:known] * stay[m, 1 : known + 1]
            if reach > known:  # E[m + 1] was 0: none of it stays; its ratio E[m] / E[m + 1] = (1 + t[m]) / w_m
                stay[m, reach] = w[m] == 0  # padding (w = 0) reaches no new degree
                ratio[reach] = np.where(w[m] > 0, grow[known] / w[m], ABSENT)
        log_e = np.zeros((width, rows))
        log_e[1:] = -np.cumsum(np.log(ratio[1:]), axis=0)
        used = self.counts > 0
        log_e = log_e.T + np.arange(width) * center[:, None]
        value = float(np.dot(self.counts[used], log_e[used]))
        share = self.counts.T.copy()
        kept = np.empty((width, rows))
        gradient = np.empty((size, rows))
        for m in range(size - 1, -1, -1):
            np.multiply(share, stay[m], out=kept)
            share -= kept  # the part where model m is chosen
            gradient[m] = share.sum(axis=0)
            kept[:-1] += share[1:]
            share, kept = kept, share
        if not (np.isfinite(value) and np.isfinite(gradient).all()):
            return None
        return value, gradient.T

    def _log_space(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The same recursion and adjoint on logarithms (logaddexp): slower, never under- or overflows."""
        rows, size = x.shape
        width = self.counts.shape[1]
        prefix = np.full((size + 1, rows, width), -np.inf)
        prefix[:, :, 0] = 0.0
        for m in range(size):
            top = min(m + 2, width)
            np.logaddexp(prefix[m, :, 1:top], x[:, m, None] + prefix[m, :, : top - 1], out=prefix[m + 1, :, 1:top])
        log_e = prefix[size]
        used = self.counts > 0
        value = float(np.dot(self.counts[used], log_e[used]))
        gradient = np.empty((rows, size))
        with np.errstate(invalid="ignore"):
            adjoint = np.where(used, self.log_counts - log_e, -np.inf)  # log of d value / d e_j
            for m in range(size - 1, -1, -1):
                top = min(m + 2, width)  # prefix[m] is zero beyond degree m: neither it nor its adjoint counts
                terms = x[:, m, None] + adjoint[:, 1:top] + prefix[m, :, : top - 1]
                gradient[:, m] = np.exp(terms).sum(axis=1)
                np.logaddexp(adjoint[:, : top - 1], x[:, m, None] + adjoint[:, 1:top], out=adjoint[:, : top - 1])
        return value, np.nan_to_num(gradient)


class Layout:
    """Everything one objective evaluation needs, derived once per BinarySamples: the groups, sorted by
    degree (highest k) and size, cut into chunks of at most CHUNK_ROWS groups and CHUNK_ELEMENTS coefficients."""

    def __init__(self, binary: BinarySamples) -> None:
        b = binary
        self.n_models = b.n_models
        unit_sign = b.group_sign[b.unit_group] if len(b.unit_group) else np.zeros(0)
        self.chosen = np.bincount(
            b.chosen_item, (b.unit_weight * unit_sign)[b.chosen_unit], minlength=b.n_models
        ).astype(float)
        self.total_weight = float(b.unit_weight.sum())
        width = np.zeros(len(b.group_items), dtype=np.int64)  # highest k needed, plus one
        np.maximum.at(width, b.unit_group, b.unit_k + 1)
        weight = np.bincount(b.unit_group, b.unit_weight, minlength=len(b.group_items))
        order = np.lexsort((b.group_size, width))
        order = order[weight[order] > 0]  # a bootstrap replicate leaves about a third of the groups out
        self.chunks: list[_Chunk] = []
        start = 0
        while start < len(order):
            stop, most_models, most_width = start + 1, b.group_size[order[start]], width[order[start]]
            while stop < len(order):
                most_models = max(most_models, b.group_size[order[stop]])
                most_width = max(most_width, width[order[stop]])
                if stop - start >= CHUNK_ROWS or (stop + 1 - start) * (most_models + 1) * most_width > CHUNK_ELEMENTS:
                    break
                stop += 1
            self.chunks.append(self._chunk(b, order[start:stop], width))
            start = stop

    @staticmethod
    def _chunk(b: BinarySamples, groups: np.ndarray, width: np.ndarray) -> _Chunk:
        position = np.full(len(b.group_items), -1)
        position[groups] = np.arange(len(groups))
        mine = position[b.unit_group] >= 0
        counts = np.zeros((len(groups), int(width[groups].max())))
        np.add.at(counts, (position[b.unit_group[mine]], b.unit_k[mine]), b.unit_weight[mine])
        items = b.group_items[groups, : int(b.group_size[groups].max())]
        return _Chunk(items, b.group_sign[groups], counts, b.n_models)


def objective(theta: np.ndarray, layout: Layout) -> tuple[float, np.ndarray]:
    """Negative conditional log-likelihood and its gradient at `theta` (length n_models); no prior."""
    theta_padded = np.r_[theta, 0.0]
    value = -float(np.dot(layout.chosen, theta))
    gradient = -layout.chosen.copy()
    for chunk in layout.chunks:
        part, per_position = chunk.log_likelihood_terms(theta_padded)
        value += part
        signed = (chunk.sign[:, None] * per_position).ravel()
        gradient += np.bincount(chunk.items.ravel(), signed, minlength=layout.n_models + 1)[: layout.n_models]
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
