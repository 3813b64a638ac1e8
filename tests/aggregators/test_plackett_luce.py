"""The PL estimator against choix (the oracle) on the same data and alpha, and its diagnostics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import choix
import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

import aggregators
from aggregators import orderings, plackett_luce, simulate
from aggregators.diagnostics import NotIdentifiedError
from aggregators.orderings import concat, from_comparisons, from_measurements, index_of, sort_order

N = 7
NAMES = [f"m{i}" for i in range(N)]  # sorted names: index i is model m{i}


def centered(theta: np.ndarray) -> np.ndarray:
    return theta - theta.mean()


def strict_rankings(seed: int, n_rankings: int = 300) -> tuple[pd.DataFrame, list[list[int]]]:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=N)
    rows, rankings = [], []
    for s in range(n_rankings):
        items = rng.choice(N, rng.integers(2, N + 1), replace=False)
        order = items[np.argsort(-(truth[items] + rng.gumbel(size=len(items))))]
        rankings.append(order.tolist())
        rows += [(f"s{s}", NAMES[i], float(len(order) - pos)) for pos, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["sample_id", "model", "value"]), rankings


def binary_matrix(seed: int, n_samples: int = 250) -> tuple[pd.DataFrame, list[tuple[int, list[int]]]]:
    rng = np.random.default_rng(seed)
    ability = rng.normal(size=N)
    difficulty = rng.normal(size=(n_samples, 1))
    correct = rng.random((n_samples, N)) < 1 / (1 + np.exp(-(ability - difficulty)))
    measured = rng.random((n_samples, N)) < 0.7
    rows, top1 = [], []
    for s in range(n_samples):
        seen = np.flatnonzero(measured[s])
        rows += [(f"s{s}", NAMES[i], float(correct[s, i])) for i in seen]
        losers = [int(i) for i in seen if not correct[s, i]]
        top1 += [(int(i), losers) for i in seen if correct[s, i] and losers]
    return pd.DataFrame(rows, columns=["sample_id", "model", "value"]), top1


def random_comparisons(seed: int, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, N, n), rng.integers(0, N, n)
    keep = a != b
    return pd.DataFrame(
        {
            "model_a": np.array(NAMES)[a[keep]],
            "model_b": np.array(NAMES)[b[keep]],
            "winner": rng.choice(["a", "b", "tie"], keep.sum(), p=[0.45, 0.35, 0.2]),
        }
    )


def count_matrix(comparisons: pd.DataFrame, tie_weight: float) -> np.ndarray:
    counts = np.zeros((N, N))
    for a, b, w in comparisons[["model_a", "model_b", "winner"]].itertuples(index=False):
        i, j = NAMES.index(a), NAMES.index(b)
        if w == "a":
            counts[i, j] += 1
        elif w == "b":
            counts[j, i] += 1
        else:
            counts[i, j] += tie_weight
            counts[j, i] += tie_weight
    return counts


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences(seed: int) -> None:
    frame, _ = strict_rankings(seed, 80)
    frame.loc[frame.index % 5 == 0, "value"] = 1.0  # add ties: weak orders
    orderings = from_measurements(frame).reweighted(np.random.default_rng(seed).integers(0, 3, 80).astype(float))
    layout = plackett_luce.Layout(orderings)
    theta = np.random.default_rng(seed).normal(size=N)
    error = check_grad(
        lambda t: plackett_luce.objective(t, layout, 0.3)[0],
        lambda t: plackett_luce.objective(t, layout, 0.3)[1],
        theta,
        epsilon=1e-7,
    )
    assert error < 1e-4 * np.abs(plackett_luce.objective(theta, layout, 0.3)[1]).max()


@pytest.mark.parametrize("block", [1, 5, 64])
def test_objective_does_not_depend_on_the_blocks(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    frame, _ = strict_rankings(2, 60)
    frame.loc[frame.index % 4 == 0, "value"] = 1.0  # weak orders; most orderings are longer than 1 or 5 entries
    orderings = from_measurements(frame)
    theta = np.random.default_rng(2).normal(size=N)
    whole = plackett_luce.objective(theta, plackett_luce.Layout(orderings), 0.1)
    monkeypatch.setattr(plackett_luce, "BLOCK_ENTRIES", block)
    layout = plackett_luce.Layout(orderings)
    assert len(layout.blocks) > 1
    value, gradient = plackett_luce.objective(theta, layout, 0.1)
    assert value == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(gradient, whole[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_strict_rankings_equal_choix_ilsr_rankings(seed: int) -> None:
    frame, rankings = strict_rankings(seed)
    ours = aggregators.rank(frame, "pl", alpha=0.0).set_index("model").loc[NAMES, "score"].to_numpy()
    np.testing.assert_allclose(ours, centered(choix.ilsr_rankings(N, rankings, tol=1e-12)), atol=1e-6)


def test_prior_equals_choix_map_estimate() -> None:
    frame, rankings = strict_rankings(3)
    ours = aggregators.rank(frame, "pl", alpha=0.5).set_index("model").loc[NAMES, "score"].to_numpy()
    np.testing.assert_allclose(ours, centered(choix.opt_rankings(N, rankings, alpha=0.5, tol=1e-12)), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_samples_equal_choix_ilsr_top1(seed: int) -> None:
    frame, top1 = binary_matrix(seed)
    ours = aggregators.rank(frame, "pl", alpha=0.0).set_index("model").loc[NAMES, "score"].to_numpy()
    np.testing.assert_allclose(ours, centered(choix.ilsr_top1(N, top1, tol=1e-12, max_iter=2000)), atol=1e-6)


@pytest.mark.parametrize(("ties", "tie_weight"), [("half", 0.5), ("both", 1.0)])
def test_pairwise_equals_choix_ilsr_pairwise_dense(ties: str, tie_weight: float) -> None:
    comparisons = random_comparisons(4)
    ours = aggregators.rank_pairwise(comparisons, alpha=0.0, ties=ties).set_index("model").loc[NAMES, "score"]
    expected = centered(choix.ilsr_pairwise_dense(count_matrix(comparisons, tie_weight), tol=1e-12))
    np.testing.assert_allclose(ours.to_numpy(), expected, atol=1e-6)


def test_measurements_and_comparisons_share_one_fit() -> None:
    frame, top1 = binary_matrix(5)
    comparisons = random_comparisons(6)
    decided = comparisons[comparisons.winner != "tie"]
    extra = [
        (NAMES.index(a if w == "a" else b), [NAMES.index(b if w == "a" else a)])
        for a, b, w in decided[["model_a", "model_b", "winner"]].itertuples(index=False)
    ]
    ours = aggregators.rank(frame, "pl", alpha=0.0, comparisons=decided).set_index("model").loc[NAMES, "score"]
    expected = centered(choix.ilsr_top1(N, top1 + extra, tol=1e-12, max_iter=2000))
    np.testing.assert_allclose(ours.to_numpy(), expected, atol=1e-6)


def test_weak_orders_use_tolerance_and_metrics_stay_apart() -> None:
    frame = pd.DataFrame(
        {
            "sample_id": ["s"] * 3 + ["s"] * 3,
            "metric": ["f1"] * 3 + ["em"] * 3,
            "model": ["a", "b", "c"] * 2,
            "value": [0.90, 0.895, 0.2, 1.0, 0.0, 0.0],
        }
    )
    orderings = from_measurements(frame, tolerance={"f1": 0.01})
    assert len(orderings.ordering_weight) == 2
    tiers_of_f1 = orderings.tier[orderings.tier_ordering[orderings.tier] == 0]
    assert np.bincount(tiers_of_f1 - tiers_of_f1.min()).tolist() == [2, 1]


def test_no_mle_raises_at_once_naming_models() -> None:
    frame = pd.DataFrame(
        {
            "sample_id": ["s1", "s1", "s2", "s2", "s3", "s3"],
            "model": ["champ", "a", "champ", "b", "a", "b"],
            "value": [1, 0, 1, 0, 1, 0.0],
        }
    )
    with pytest.raises(NotIdentifiedError, match="never lose: champ"):
        aggregators.rank(frame, "pl", alpha=0.0)
    board = aggregators.rank(frame, "pl", alpha=0.1)
    assert board.attrs["diagnostics"]["prior_driven"] == ["b", "champ"]
    assert board.iloc[0]["model"] == "champ" and np.isfinite(board["score"]).all()


def test_a_model_tied_on_each_of_its_samples_is_named() -> None:
    """Measured, but only on samples where every model tied: in no ordering, so the MLE does not fix it."""
    frame = pd.DataFrame(
        {
            "sample_id": ["s1", "s1", "s2", "s2", "s3", "s3", "s3"],
            "model": ["a", "b", "a", "b", "a", "b", "tied"],
            "value": [1, 0, 0, 1, 1, 1, 1.0],
        }
    )
    with pytest.raises(NotIdentifiedError, match=r"tied on each of its samples: tied\)"):
        aggregators.rank(frame, "pl", alpha=0.0)
    assert aggregators.rank(frame, "pl", alpha=0.1).attrs["diagnostics"]["prior_driven"] == ["tied"]


def test_disconnected_groups_are_named() -> None:
    """No sample compares {a, b} with {c, d, e}: each group's scores stand on its data, where the groups stand
    against each other on the prior; e, who only loses to c, rests on the prior within its group too."""
    frame = pd.DataFrame(
        {
            "sample_id": ["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4", "s5", "s5"],
            "model": ["a", "b", "a", "b", "c", "d", "c", "d", "c", "e"],
            "value": [1, 0, 0, 1] * 2 + [1, 0],
        }
    )
    with pytest.raises(
        NotIdentifiedError, match=r"no sample compares 2 groups of models with one another \(sizes 3, 2\)"
    ):
        aggregators.rank(frame, "pl", alpha=0.0)
    board = aggregators.rank(frame, "pl", alpha=1.0)
    diagnostics = board.attrs["diagnostics"]
    assert diagnostics["groups"] == [["c", "d", "e"], ["a", "b"]]
    assert diagnostics["components"] == [["a", "b"], ["c", "d"], ["e"]]
    assert diagnostics["prior_driven"] == ["c", "d", "e"]  # outside the largest component: where they stand
    assert aggregators.board_notes(board) == [
        "no sample compares these groups of models with one another: 3 (c, d, e), 2 (a, b). Scores and ranks"
        " compare within a group only; across groups they rest on the prior (alpha = 1). Rank a group alone"
        " (--source), or give a model named two ways one name (pool rename-model)",
        "scores resting on the prior (alpha = 1), not on the data: e",
    ]
    mean = aggregators.rank(frame, "mean")
    assert aggregators.board_notes(mean)[0].endswith(
        "(c, d, e), 2 (a, b). Scores and ranks compare within a group"
        " only. Rank a group alone (--source), or give a model named two ways one name (pool rename-model)"
    )


def test_groups_are_told_only_when_no_sample_compares_them() -> None:
    """a and b beat each other, as c and d do, and a beats c: one group, two components; c and d rest on the
    prior (nothing says how far below a and b they are). Comparisons of models the mean cannot score (x, y)
    form no group on its board."""
    frame = pd.DataFrame(
        {
            "sample_id": ["s1", "s1", "s2", "s2", "s3", "s3", "s4", "s4", "s5", "s5"],
            "model": ["a", "b", "a", "b", "c", "d", "c", "d", "a", "c"],
            "value": [1, 0, 0, 1] * 2 + [1, 0],
        }
    )
    with pytest.raises(NotIdentifiedError, match=r"the comparison graph splits into 2 groups \(sizes 2, 2\)"):
        aggregators.rank(frame, "pl", alpha=0.0)
    board = aggregators.rank(frame, "pl", alpha=1.0)
    assert board.attrs["diagnostics"]["groups"] == []
    assert aggregators.board_notes(board) == ["scores resting on the prior (alpha = 1), not on the data: c, d"]
    pairs = pd.DataFrame({"model_a": ["x", "y"], "model_b": ["y", "x"], "winner": ["a", "a"]})
    both = aggregators.rank(frame[frame.sample_id != "s5"], "mean", comparisons=pairs)
    assert both.attrs["diagnostics"]["groups"] == [["a", "b"], ["c", "d"], ["x", "y"]]
    assert aggregators.board_notes(both)[0].startswith(
        "no sample compares these groups of models with one another: 2 (a, b), 2 (c, d). Scores"
    )
    assert not any(
        "no sample" in note for note in aggregators.board_notes(aggregators.rank(frame, "mean", comparisons=pairs))
    )


def test_the_groups_note_names_models_named_alike_in_different_groups() -> None:
    """The same words and numbers in any order and case, in two groups: likely one model named two ways."""
    wins = {
        "s1": ["GPT 4", "LLaMA-2-Chat (70B)"],
        "s2": ["LLaMA-2-Chat (70B)", "gpt 4 turbo"],
        "s3": ["gpt 4 turbo", "GPT 4"],
        "s4": ["GPT-4", "Llama-2-70B Chat"],
        "s5": ["Llama-2-70B Chat", "GPT-4"],
    }  # sample: (winner, loser)
    frame = pd.DataFrame(
        [
            (sample, model, value)
            for sample, pair in wins.items()
            for model, value in zip(pair, (1.0, 0.0), strict=True)
        ],
        columns=["sample_id", "model", "value"],
    )
    note = aggregators.board_notes(aggregators.rank(frame, "pl", alpha=1.0))[0]
    assert note.startswith("no sample compares these groups of models with one another: 3 (GPT 4, ")
    assert note.endswith(
        "(pool rename-model; named alike in different groups: 'GPT 4' and 'GPT-4', 'LLaMA-2-Chat (70B)' and"
        " 'Llama-2-70B Chat')"
    )


@pytest.mark.parametrize("dense_pairs", [0, 1 << 26])
@pytest.mark.parametrize("direct_limit", [0.0, 100.0])
def test_both_graph_encodings_find_the_same_components(
    direct_limit: float, dense_pairs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregators import diagnostics

    monkeypatch.setattr(diagnostics, "DENSE_PAIRS", dense_pairs)
    rankings, _ = strict_rankings(8, 50)  # one entry per tier; m5 and m6 ranked only against each other
    rankings = rankings[~rankings.model.isin(["m5", "m6"])]
    pair = pd.DataFrame({"sample_id": ["y1", "y1", "y2", "y2"], "model": ["m5", "m6"] * 2, "value": [1, 0, 0, 1.0]})
    strict = pd.concat([rankings, pair])
    found = diagnostics.diagnose(from_measurements(strict), direct_limit=direct_limit)
    assert found.components == [["m0", "m1", "m2", "m3", "m4"], ["m5", "m6"]]
    assert found.groups == found.components
    frame, _ = binary_matrix(7, 40)
    frame = frame[~frame.model.isin(["m5", "m6"])]
    frame = pd.concat(
        [
            frame,
            pd.DataFrame(
                {
                    "sample_id": ["z1", "z1", "z2", "z2", "z3", "z3"],
                    "model": ["m5", "m6", "m5", "m6", "m5", "m6"],
                    "value": [1, 0, 0, 1, 1, 1.0],
                }
            ),
        ]
    )
    found = diagnostics.diagnose(from_measurements(frame), direct_limit=direct_limit)
    assert found.components == [["m0", "m1", "m2", "m3", "m4"], ["m5", "m6"]]
    assert found.groups == found.components


@pytest.mark.parametrize(
    "values",
    [
        lambda rng, n: rng.integers(0, 2, n).astype(float),  # binary: packed key
        lambda rng, n: rng.integers(-40, 40, n) * 0.25,  # few distinct non-integers: ranks of distinct values
        lambda rng, n: rng.normal(size=n),  # all distinct
        lambda rng, n: rng.integers(0, 2, n) * 1e300,  # integers too far apart: ranks of distinct values
    ],
)
@pytest.mark.parametrize("grouped", [False, True])  # groups in no order (quicksort), in long runs (timsort)
def test_sort_order_is_lexsort(values: Callable[[np.random.Generator, int], np.ndarray], grouped: bool) -> None:
    rng = np.random.default_rng(5)
    value = values(rng, 5_000)
    group = rng.integers(0, 300, 5_000)
    if grouped:
        group = np.r_[np.sort(group[:2_500]), np.sort(group[2_500:])]  # two runs, as rows grouped by model come
    assert orderings._sort_kind(group) == ("stable" if grouped else "quicksort")
    np.testing.assert_array_equal(sort_order(group, value), np.lexsort((-value, group)))
    huge = group * 2**50  # too many bits to pack: lexsort itself
    np.testing.assert_array_equal(sort_order(huge, value), np.lexsort((-value, huge)))


@pytest.mark.parametrize("bitmap_cells", [2**28, 0])  # by the bitmap, and by sorting
def test_distinct_cells_are_numpys_unique(monkeypatch: pytest.MonkeyPatch, bitmap_cells: int) -> None:
    monkeypatch.setattr(orderings, "BITMAP_CELLS", bitmap_cells)
    key = np.random.default_rng(2).integers(0, 1_000, 3_000)
    given = key.copy()
    np.testing.assert_array_equal(orderings.distinct_cells(key, 1_000), np.unique(key))
    np.testing.assert_array_equal(key, given)  # left as it was
    assert len(orderings.distinct_cells(key[:0], 1_000)) == 0


def test_concat_keeps_parts_apart() -> None:
    first = from_measurements(pd.DataFrame({"sample_id": ["x", "x"], "model": ["a", "b"], "value": [1.0, 0]}))
    second = from_comparisons(pd.DataFrame({"model_a": ["c"], "model_b": ["a"], "winner": ["a"]}))
    joined = concat([first, second])
    assert joined.models.tolist() == ["a", "b", "c"]
    assert joined.models[joined.item].tolist() == ["a", "b", "c", "a"]
    assert joined.ordering_sample.tolist() == [0, 1]


def test_reweighting_leaves_zero_weight_orderings_out_exactly() -> None:
    """Dropping the weight-0 orderings (as a bootstrap replicate does) changes neither value nor gradient."""
    frame, _ = strict_rankings(8)
    orderings = concat([from_measurements(frame), from_comparisons(random_comparisons(8))])
    rng = np.random.default_rng(8)
    weight = rng.integers(0, 3, len(orderings.samples)).astype(float)
    dropped = orderings.reweighted(weight)
    kept = dataclasses.replace(orderings, ordering_weight=orderings.ordering_weight * weight[orderings.ordering_sample])
    assert len(dropped.ordering_weight) < len(kept.ordering_weight)
    theta = rng.normal(size=N)
    value, gradient = plackett_luce.objective(theta, plackett_luce.Layout(dropped), 0.01)
    expected_value, expected_gradient = plackett_luce.objective(theta, plackett_luce.Layout(kept), 0.01)
    assert value == pytest.approx(expected_value, rel=1e-12)
    np.testing.assert_allclose(gradient, expected_gradient, atol=1e-10)


@pytest.mark.parametrize("dtype", ["str", object, "category", "string"])
def test_index_of_finds_positions_whatever_the_string_dtype(dtype: object) -> None:
    names = np.array(["a", "b", "c"], dtype=object)
    assert index_of(names, pd.Series(["c", "a", "c", "b"], dtype=dtype)).tolist() == [2, 0, 2, 1]
    assert index_of(names, pd.Series([], dtype=dtype)).tolist() == []
    with pytest.raises(ValueError, match="sample 'zz' is missing from the sample list"):
        index_of(names, pd.Series(["a", "zz"], dtype=dtype), "sample")
    with pytest.raises(ValueError, match="models of another type"):
        index_of(names, pd.Series([1, 2]))


@pytest.mark.parametrize("method", ["pl-conditional", "pl"])
def test_rank_reads_ids_of_any_string_dtype_alike(method: str) -> None:
    frame, _, _ = simulate.rasch(seed=3, n_models=6, n_samples=300)
    as_objects = frame.astype({"sample_id": object, "model": object})
    as_arrow = frame.astype({"sample_id": "str", "model": "str"})
    expected = aggregators.rank(as_arrow, method=method)
    pd.testing.assert_frame_equal(aggregators.rank(as_objects, method=method), expected, check_dtype=False)
