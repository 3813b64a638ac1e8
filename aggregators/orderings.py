"""Measurements and comparisons -> weak orders over models, as flat arrays.

An *ordering* is one (sample, metric) with the models measured on it, split into *tiers* of equal value,
best tier first. Entries are stored flat and sorted by (ordering, tier), so everything downstream is a
bincount or a cumulative sum: O(entries), no Python loop over samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TIE_MODES = ("both", "half")


@dataclass(frozen=True)
class Orderings:
    """Weak orders over `models`, flat.

    entry arrays (length E, sorted by ordering then tier): `item` (model index), `tier` (global tier id).
    tier arrays (length T): `tier_ordering` (ordering id), `tier_last` (global id of the last tier of the
    same ordering). ordering arrays (length O): `ordering_sample` (index into `samples`), `ordering_weight`.
    """

    models: np.ndarray
    samples: np.ndarray
    item: np.ndarray
    tier: np.ndarray
    tier_ordering: np.ndarray
    tier_last: np.ndarray
    ordering_sample: np.ndarray
    ordering_weight: np.ndarray

    @property
    def n_models(self) -> int:
        return len(self.models)

    @cached_property
    def winner(self) -> np.ndarray:
        """Per entry: True when its tier has something below it (it is chosen over that set)."""
        return self.tier_last[self.tier] != self.tier

    @cached_property
    def tier_first(self) -> np.ndarray:
        """Per tier: the global id of the first (best) tier of its ordering."""
        n_tiers = len(self.tier_last)
        if not n_tiers:
            return np.zeros(0, dtype=np.int64)
        first = np.zeros(n_tiers, dtype=np.int64)
        starts = np.flatnonzero(np.diff(self.tier_ordering, prepend=-1))
        first[starts] = starts
        return np.maximum.accumulate(first, out=first)

    @cached_property
    def loser(self) -> np.ndarray:
        """Per entry: True when its tier has something above it (it loses to that tier)."""
        return self.tier > self.tier_first[self.tier]

    def reweighted(self, sample_weight: np.ndarray) -> Orderings:
        """The orderings with each weight multiplied by its sample's weight; those of weight 0 left out."""
        weight = self.ordering_weight * sample_weight[self.ordering_sample]
        keep = weight > 0
        if keep.all():
            return replace(self, ordering_weight=weight)
        keep_tier = keep[self.tier_ordering]
        keep_entry = keep_tier[self.tier]
        tier_id = np.cumsum(keep_tier) - 1
        ordering_id = np.cumsum(keep) - 1
        return replace(
            self,
            item=self.item[keep_entry],
            tier=tier_id[self.tier[keep_entry]],
            tier_ordering=ordering_id[self.tier_ordering[keep_tier]],
            tier_last=tier_id[self.tier_last[keep_tier]],
            ordering_sample=self.ordering_sample[keep],
            ordering_weight=weight[keep],
        )


def from_measurements(
    measurements: pd.DataFrame,
    tolerance: float | dict[str, float] = 0.0,
    models: np.ndarray | None = None,
    samples: np.ndarray | None = None,
) -> Orderings:
    """Orderings from a long frame `sample_id, model, value[, metric]` (higher value is better).

    `models` and `samples` (sorted) fix the lists that indices point into (default: those of the frame).
    Values of one (sample, metric) within `tolerance` of their neighbour form one tier (per metric when a
    dict). Orderings with a single tier carry no information and are dropped. Raises ValueError on a
    missing column, sample id or model, a non-finite value, or a model measured twice on one (sample, metric).
    """
    for column in ("sample_id", "model", "value"):
        if column not in measurements.columns:
            raise ValueError(f"measurements need a {column!r} column")
    _refuse_missing(measurements, ("sample_id", "model"), "measurement")
    value = pd.to_numeric(measurements["value"], errors="coerce").to_numpy(dtype=float)  # text -> NaN
    if not np.isfinite(value).all():
        row = int(np.flatnonzero(~np.isfinite(value))[0])
        given = measurements["value"].iloc[row]
        raise ValueError(
            f"measurement row {row} (sample {measurements['sample_id'].iloc[row]!r}, model "
            f"{measurements['model'].iloc[row]!r}): value {given if isinstance(given, str) else float(value[row])!r} "
            "is not a finite number"
        )
    model_names = np.sort(np.asarray(models if models is not None else measurements["model"].unique()))
    item = index_of(model_names, measurements["model"])
    if samples is None:
        group, sample_names = pd.factorize(measurements["sample_id"], sort=True)
    else:
        group, sample_names = index_of(samples, measurements["sample_id"], "sample"), samples
    group, n_metrics, metric = sample_metric_key(group, measurements)  # one ordering per (sample, metric)
    _refuse_repeats(group, item, model_names, np.asarray(sample_names), n_metrics, metric)
    tol: float | np.ndarray = tolerance.get("", 0.0) if isinstance(tolerance, dict) else float(tolerance)
    if metric is not None and isinstance(tolerance, dict):
        metric_codes, metric_names = metric
        tol = np.array([tolerance.get(name, 0.0) for name in metric_names], dtype=float)[metric_codes]
    order = sort_order(group, value)
    item, value, group = item[order], value[order], group[order]
    new_ordering = np.ones(len(group), dtype=bool)
    new_ordering[1:] = group[1:] != group[:-1]
    ordering_sample = group[new_ordering] // n_metrics
    new_tier = new_ordering.copy()  # a tier starts at each new ordering and at each drop beyond the tolerance
    new_tier[1:] |= (value[:-1] - value[1:]) > (tol[order][1:] if isinstance(tol, np.ndarray) else tol)
    del group, value, order  # entry-sized: freed before _build makes its own
    ordering = np.cumsum(new_ordering, dtype=np.int64)
    ordering -= 1
    return _build(
        model_names,
        np.asarray(sample_names),
        item,
        ordering,
        new_tier,
        ordering_sample,
        np.ones(len(ordering_sample)),
    )


#: Up to this many cells (e.g. (sample, metric) x model), distinct cells are found with a bitmap of them (one
#: byte each); beyond it, by sorting the keys.
BITMAP_CELLS = 2**28


def distinct_cells(key: np.ndarray, cells: int) -> np.ndarray:
    """The distinct values of `key` (integers in [0, cells)), sorted; `key` itself is left as it was."""
    if cells <= BITMAP_CELLS:
        seen = np.zeros(cells, dtype=bool)
        seen[key] = True
        return np.flatnonzero(seen)
    ordered = np.sort(key, kind="stable")  # timsort: fast on keys that come grouped, as pools' rows do
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def _refuse_repeats(
    group: np.ndarray,
    item: np.ndarray,
    models: np.ndarray,
    samples: np.ndarray,
    n_metrics: int,
    metric: tuple[np.ndarray, pd.Index] | None,
) -> None:
    """ValueError naming a model measured twice on one (sample, metric): its orderings would be ambiguous."""
    if not len(group):
        return
    key = group * len(models) + item
    if len(distinct_cells(key, (int(group.max()) + 1) * len(models))) == len(key):
        return
    key.sort()
    repeated = np.flatnonzero(key[1:] == key[:-1])
    cell, model = divmod(int(key[repeated[0]]), len(models))
    sample, metric_code = divmod(cell, n_metrics)
    of_metric = f", metric {metric[1][metric_code]!r}" if metric is not None else ""
    raise ValueError(
        f"measurements hold model {models[model]!r} twice on sample {samples[sample]!r}{of_metric}: "
        "keep one value per (sample, model, metric) (Pool.scores keeps the latest)"
    )


def sample_metric_key(
    sample: np.ndarray, measurements: pd.DataFrame
) -> tuple[np.ndarray, int, tuple[np.ndarray, pd.Index] | None]:
    """Per row, one non-negative integer per (sample, metric): sample * n_metrics + metric code, from the
    rows' sample codes; also n_metrics and (metric codes, metric names), or, without a `metric` column, the
    sample codes themselves, 1 and None."""
    key = sample.astype(np.int64, copy=False)
    if "metric" not in measurements.columns:
        return key, 1, None
    metric_codes, metric_names = pd.factorize(measurements["metric"], use_na_sentinel=False)  # NaN: a metric too
    n_metrics = max(len(metric_names), 1)
    return key * n_metrics + metric_codes, n_metrics, (metric_codes, metric_names)


#: Groups whose ascending runs are this long on average are sorted by timsort (`_sort_kind`).
RUN_LENGTH = 64


def sort_order(group: np.ndarray, value: np.ndarray) -> np.ndarray:
    """The permutation sorting entries by `group` (non-negative integers), then by `value` descending,
    ties in input order: `np.lexsort((-value, group))`.

    When the group, the value's rank and the position fit together in 63 bits (integer values such as 0/1
    or ranks, or few distinct values), it is one `np.sort` of a packed integer key instead: several times
    faster than lexsort on tens of millions of entries.
    """
    n = len(value)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rank = _descending_rank(value)
    position_bits = (n - 1).bit_length()
    rank_bits = int(rank.max()).bit_length()
    if int(group.max()).bit_length() + rank_bits + position_bits > 63:
        return np.lexsort((-value, group))
    key = rank
    key <<= position_bits
    key |= group << (rank_bits + position_bits)
    key |= np.arange(n, dtype=np.int64)
    key.sort(kind=_sort_kind(group))
    key &= (1 << position_bits) - 1
    return key


def _sort_kind(group: np.ndarray) -> Literal["stable", "quicksort"]:
    """numpy's sort for keys led by `group`: timsort ("stable") when the groups come in long ascending runs
    (rows grouped by sample or by model, as pools and result logs hold them), which it merges in little more
    than one pass; else quicksort, twice as fast on keys in no order."""
    descents = np.count_nonzero(group[1:] < group[:-1])
    return "stable" if descents * RUN_LENGTH < len(group) else "quicksort"


def _descending_rank(value: np.ndarray) -> np.ndarray:
    """Integers that order like -value (equal values, equal integers): the values themselves when they are
    integers of a modest range, else their position among the distinct values."""
    top, bottom = value.max(), value.min()
    if top - bottom < 2**31 and (value == np.floor(value)).all():
        return (top - value).astype(np.int64)
    distinct, position = np.unique(value, return_inverse=True)  # 5x faster than searching `distinct` for each
    return len(distinct) - 1 - position.astype(np.int64, copy=False)


def _refuse_missing(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    """ValueError naming the first row (by position) whose `columns` hold a missing value."""
    for column in columns:
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            raise ValueError(f"{what} row {int(missing[0])}: {column} is missing")


def check_ties(ties: str) -> None:
    """ValueError unless `ties` is one of TIE_MODES."""
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}, not {ties!r}")


def from_comparisons(comparisons: pd.DataFrame, ties: str = "both", models: np.ndarray | None = None) -> Orderings:
    """Orderings from pairwise outcomes `model_a, model_b, winner` (winner in a|b|tie; `outcome` also read).

    Each decided comparison is a two-tier ordering, winner first. A tie gives one win each way, each of
    weight 1 (`ties="both"`, ONEBench) or 0.5 (`ties="half"`, LMArena). `sample_id` (optional) groups
    comparisons for the bootstrap; without it each comparison is its own sample. Raises ValueError on a
    missing column or model, an unknown winner, or a model compared with itself.
    """
    check_ties(ties)
    column = "winner" if "winner" in comparisons.columns else "outcome"
    for needed in ("model_a", "model_b", column):
        if needed not in comparisons.columns:
            raise ValueError(f"comparisons need a {'winner' if needed == 'outcome' else needed!r} column")
    outcome = comparisons[column].astype(str).to_numpy()
    bad = np.flatnonzero(~np.isin(outcome, ("a", "b", "tie")))
    if len(bad):
        raise ValueError(f"comparison row {int(bad[0])}: winner must be a, b or tie, not {outcome[bad[0]]!r}")
    _refuse_missing(comparisons, ("model_a", "model_b"), "comparison")
    a = comparisons["model_a"].to_numpy()
    b = comparisons["model_b"].to_numpy()
    itself = np.flatnonzero(a == b)
    if len(itself):
        raise ValueError(f"comparison row {int(itself[0])}: {a[itself[0]]!r} compared with itself")
    model_names = np.sort(np.asarray(models)) if models is not None else np.unique(np.r_[a, b])
    if "sample_id" in comparisons.columns:
        sample_codes, sample_names = pd.factorize(comparisons["sample_id"], sort=True)
    else:
        sample_codes, sample_names = np.arange(len(comparisons)), np.arange(len(comparisons)).astype(str)
    tie = outcome == "tie"
    first = np.where(outcome == "b", b, a)  # the winner, or model_a on a tie
    second = np.where(outcome == "b", a, b)
    winners = np.r_[first, second[tie]]
    losers = np.r_[second, first[tie]]
    weight = np.where(np.r_[tie, np.ones(tie.sum(), bool)], 0.5 if ties == "half" else 1.0, 1.0)
    sample = np.r_[sample_codes, sample_codes[tie]]
    n = len(winners)
    item = index_of(model_names, np.column_stack([winners, losers]).ravel())
    ordering = np.repeat(np.arange(n), 2)
    new_tier = np.ones(2 * n, dtype=bool)
    return _build(model_names, np.asarray(sample_names), item, ordering, new_tier, sample, weight)


def concat(parts: list[Orderings]) -> Orderings:
    """One Orderings over the union of the parts' models (and samples, kept apart by part)."""
    models = np.unique(np.concatenate([p.models for p in parts]))
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in Orderings.__dataclass_fields__}
    tiers = orderings = samples = 0
    for part in parts:
        remap = index_of(models, part.models)
        pieces["item"].append(remap[part.item])
        pieces["tier"].append(part.tier + tiers)
        pieces["tier_ordering"].append(part.tier_ordering + orderings)
        pieces["tier_last"].append(part.tier_last + tiers)
        pieces["ordering_sample"].append(part.ordering_sample + samples)
        pieces["ordering_weight"].append(part.ordering_weight)
        pieces["samples"].append(part.samples)
        tiers += len(part.tier_last)
        orderings += len(part.ordering_weight)
        samples += len(part.samples)
    joined = {name: np.concatenate(arrays) for name, arrays in pieces.items() if name != "models"}
    return Orderings(models=models, **joined)


def _build(
    models: np.ndarray,
    samples: np.ndarray,
    item: np.ndarray,
    ordering: np.ndarray,
    new_tier: np.ndarray,
    ordering_sample: np.ndarray,
    ordering_weight: np.ndarray,
) -> Orderings:
    """Assemble flat arrays (entries sorted by ordering, `new_tier` marking each tier's first entry),
    dropping orderings with fewer than two tiers."""
    tier = np.cumsum(new_tier, dtype=np.int64)
    tier -= 1
    tier_ordering = ordering[new_tier]
    tiers_per_ordering = np.bincount(tier_ordering, minlength=len(ordering_weight))
    informative = tiers_per_ordering >= 2
    if not informative.all():
        keep_entry = informative[ordering]
        keep_ordering = np.flatnonzero(informative)
        renumber = np.full(len(ordering_weight), -1)
        renumber[keep_ordering] = np.arange(len(keep_ordering))
        item, ordering, new_tier = item[keep_entry], renumber[ordering[keep_entry]], new_tier[keep_entry]
        ordering_sample, ordering_weight = ordering_sample[keep_ordering], ordering_weight[keep_ordering]
        tier = np.cumsum(new_tier) - 1
        tier_ordering = ordering[new_tier]
    last_tier_of_ordering = np.zeros(len(ordering_weight), dtype=np.int64)
    last_tier_of_ordering[tier_ordering] = np.arange(len(tier_ordering))  # the last write per ordering wins
    return Orderings(
        models=models,
        samples=samples,
        item=item.astype(np.int64, copy=False),
        tier=tier.astype(np.int64, copy=False),
        tier_ordering=tier_ordering.astype(np.int64, copy=False),
        tier_last=last_tier_of_ordering[tier_ordering],
        ordering_sample=ordering_sample.astype(np.int64, copy=False),
        ordering_weight=ordering_weight.astype(float, copy=False),
    )


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices start, ..., start + length - 1 of each (start, length), one range after another."""
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets


def index_of(names: np.ndarray, values: np.ndarray | pd.Series, what: str = "model") -> np.ndarray:
    """Position of each value in `names`; ValueError naming the first `what` that is not there.

    Hashes in Arrow: a Series of Arrow strings (pandas' default) is read without a copy, 10x faster than
    pandas' categorical codes of the same values."""
    if len(values) == 0:  # Arrow types an empty object array as null, which matches no list
        return np.zeros(0, dtype=np.int64)
    try:
        found = pc.index_in(pa.array(values), value_set=pa.array(names))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:  # e.g. numbers among names
        raise ValueError(f"{what}s of another type than the {what} list's: {err}") from None
    if found.null_count:
        first = np.flatnonzero(pc.is_null(found).to_numpy(zero_copy_only=False))[0]
        raise ValueError(f"{what} {np.asarray(values)[first]!r} is missing from the {what} list")
    return found.to_numpy().astype(np.int64)
