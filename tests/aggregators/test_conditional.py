"""pl-conditional: the exact conditional likelihood against brute force, choix and the accuracy ranking."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import choix
import numpy as np
import pandas as pd
import pytest
from scipy.special import gammaln
from scipy.stats import kendalltau

import aggregators
from aggregators import conditional, elementary, plackett_luce
from aggregators.diagnostics import NotIdentifiedError, uninformative_note
from aggregators.orderings import from_measurements
from aggregators.simulate import rasch, selection_bias, thin

N = 6
NAMES = np.array([f"m{i}" for i in range(N)])


def random_binary(seed: int, n_samples: int = 60) -> pd.DataFrame:
    """Binary samples over random model subsets, two metrics, many with k > n / 2 (flipped)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_samples):
        for metric in ("acc", "acc_norm"):
            models = rng.choice(N, rng.integers(2, N + 1), replace=False)
            p = rng.uniform(0.1, 0.9)
            rows += [(f"s{s:02d}", NAMES[i], metric, float(rng.random() < p)) for i in models]
    return pd.DataFrame(rows, columns=["sample_id", "model", "metric", "value"])


def brute_force(frame: pd.DataFrame, theta: np.ndarray, weight: dict[str, float]) -> tuple[float, np.ndarray]:
    """Weighted negative conditional log-likelihood and its gradient, enumerating every subset of size k."""
    value, gradient = 0.0, np.zeros(N)
    for (sample, _), unit in frame.groupby(["sample_id", "metric"]):
        items = [int(m[1:]) for m in unit["model"]]
        correct = [i for i, v in zip(items, unit["value"], strict=True) if v == 1.0]
        k = len(correct)
        if k in (0, len(items)):
            continue
        subsets = [list(c) for c in itertools.combinations(items, k)]
        terms = np.array([np.exp(theta[c].sum()) for c in subsets])
        e_k = terms.sum()
        value -= weight[sample] * (theta[correct].sum() - np.log(e_k))
        gradient[correct] -= weight[sample]
        for c, term in zip(subsets, terms, strict=True):
            gradient[c] += weight[sample] * term / e_k
    return value, gradient


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_likelihood_and_gradient_equal_brute_force(seed: int) -> None:
    frame = random_binary(seed)
    samples = np.sort(frame["sample_id"].unique())
    rng = np.random.default_rng(seed)
    weights = rng.integers(0, 3, len(samples)).astype(float)  # bootstrap-like multiplicities, zeros included
    binary = conditional.from_measurements(frame, NAMES, samples).reweighted(weights)
    theta = rng.normal(0, 2, N)
    value, gradient = conditional.objective(theta, conditional.Layout(binary))
    expected_value, expected_gradient = brute_force(frame, theta, dict(zip(samples, weights, strict=True)))
    assert value == pytest.approx(expected_value, abs=1e-9)
    np.testing.assert_allclose(gradient, expected_gradient, atol=1e-9)
    assert (binary.unit_k * 2 <= binary.group_size[binary.unit_group]).all()  # flipped where k > n / 2


def test_samples_are_grouped_by_flip_and_measured_set_even_when_hashes_collide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Units share a group exactly when they have the same flip and the same measured models; with every hash
    equal (a collision), the rows themselves are sorted and the groups are the same."""
    frame = random_binary(3)
    samples = np.sort(frame["sample_id"].unique())
    binary = conditional.from_measurements(frame, NAMES, samples)
    per_unit = unit_sets(binary)
    assert len(binary.group_sign) == len(set(per_unit)) < len(per_unit)  # some units share a set
    monkeypatch.setattr(conditional, "_set_hash", lambda start, *_: np.zeros(len(start), dtype=np.uint64))
    collided = conditional.from_measurements(frame, NAMES, samples)
    assert unit_sets(collided) == per_unit


def unit_sets(binary: conditional.BinarySamples) -> list[tuple[float, ...]]:
    """Per unit, its group's sign and models."""
    start, items, sign = binary.group_start, binary.group_items, binary.group_sign
    return [(sign[g], *items[start[g] : start[g + 1]]) for g in binary.unit_group]


def test_large_sets_stay_finite() -> None:
    """A 400-model set with k = 200 and widely spread strengths: e_k is astronomically large, log e_k is not."""
    rng = np.random.default_rng(0)
    names = np.array([f"x{i:03d}" for i in range(400)])
    values = np.r_[np.ones(200), np.zeros(200)]
    frame = pd.DataFrame({"sample_id": "s", "model": names, "value": rng.permutation(values)})
    binary = conditional.from_measurements(frame, names, np.array(["s"]))
    value, gradient = conditional.objective(rng.normal(0, 8, 400), conditional.Layout(binary))
    assert np.isfinite(value) and np.isfinite(gradient).all()
    assert gradient.sum() == pytest.approx(0.0, abs=1e-8)  # shifting every strength changes nothing


def test_two_model_samples_equal_choix_pairwise() -> None:
    """With two models per sample and one right, the conditional likelihood is Bradley-Terry."""
    rng = np.random.default_rng(3)
    truth = rng.normal(size=N)
    rows, pairs = [], []
    for s in range(500):
        a, b = rng.choice(N, 2, replace=False)
        a_wins = rng.random() < 1 / (1 + np.exp(truth[b] - truth[a]))
        winner, loser = (a, b) if a_wins else (b, a)
        pairs.append((int(winner), int(loser)))
        rows += [(f"s{s}", NAMES[winner], 1.0), (f"s{s}", NAMES[loser], 0.0)]
    frame = pd.DataFrame(rows, columns=["sample_id", "model", "value"])
    board = aggregators.rank(frame, method="pl-conditional", alpha=0.0).set_index("model")["score"]
    expected = choix.ilsr_pairwise(N, pairs, alpha=0.0, tol=1e-12)
    np.testing.assert_allclose(board[NAMES].to_numpy(), expected - expected.mean(), atol=1e-6)


def test_numeric_samples_and_comparisons_fit_as_pl() -> None:
    """Without binary samples, pl-conditional is pl (which is checked against choix)."""
    rng = np.random.default_rng(4)
    numeric = pd.DataFrame(
        {"sample_id": np.repeat(np.arange(80).astype(str), N), "model": np.tile(NAMES, 80), "value": rng.random(80 * N)}
    )
    a, b = rng.integers(0, N, 300), rng.integers(0, N, 300)
    comparisons = pd.DataFrame(
        {"model_a": NAMES[a[a != b]], "model_b": NAMES[b[a != b]], "winner": rng.choice(["a", "b"], (a != b).sum())}
    )
    for options in (
        {"measurements": numeric},
        {"measurements": numeric, "comparisons": comparisons},
        {"measurements": None, "comparisons": comparisons},  # all zeros before: the comparisons were dropped
        {"measurements": numeric.iloc[:0], "comparisons": comparisons},
    ):
        pl = aggregators.rank(method="pl", **options).set_index("model")["score"]
        exact = aggregators.rank(method="pl-conditional", **options).set_index("model")["score"]
        np.testing.assert_allclose(exact[pl.index].to_numpy(), pl.to_numpy(), atol=1e-6)


def test_binary_and_numeric_metrics_share_one_fit() -> None:
    """Mixed data: the fit's gradient (conditional part + PL part + prior) vanishes at the returned scores."""
    binary = random_binary(5)
    rng = np.random.default_rng(5)
    numeric = binary.assign(metric=binary["metric"] + "_f1", value=rng.random(len(binary)))  # one per metric
    mixed = pd.concat([binary, numeric], ignore_index=True)
    board = aggregators.rank(mixed, method="pl-conditional", alpha=0.01).set_index("model")["score"]
    binary_only = aggregators.rank(binary, method="pl-conditional", alpha=0.01).set_index("model")["score"]
    assert not np.allclose(board[NAMES].to_numpy(), binary_only[NAMES].to_numpy(), atol=1e-3)
    samples = np.sort(mixed["sample_id"].unique())
    units = conditional.from_measurements(binary, NAMES, samples)
    orderings = from_measurements(numeric, models=NAMES, samples=samples)
    theta = board[NAMES].to_numpy()
    _, g_binary = conditional.objective(theta, conditional.Layout(units))
    _, g_numeric = plackett_luce.objective(theta, plackett_luce.Layout(orderings), 0.01)
    assert np.abs(g_binary + g_numeric).max() < 1e-5


def test_complete_chembench_reproduces_the_accuracy_ranking(shared_data: Path) -> None:
    wide = pd.read_csv(shared_data / "chembench_binary" / "binary_matrix.csv", index_col=0)
    frame = wide.stack().rename("value").reset_index()
    frame.columns = ["sample_id", "model", "value"]
    accuracy = wide.mean(axis=0)
    board = aggregators.rank(frame, method="pl-conditional", alpha=0.0).set_index("model")["score"]
    assert kendalltau(board[accuracy.index], accuracy).statistic >= 0.99
    pl = aggregators.rank(frame, method="pl", alpha=0.0).set_index("model")["score"]
    assert kendalltau(pl[accuracy.index], accuracy).statistic < 0.95  # the choice-set encoding does not
    assert board.attrs["diagnostics"]["uninformative_samples"] > 0


def test_complete_synthetic_data_reproduce_the_accuracy_ranking() -> None:
    frame, _, _ = rasch(seed=1, n_models=20, n_samples=1500)
    accuracy = frame.groupby("model")["value"].mean()
    board = aggregators.rank(frame, method="pl-conditional").set_index("model")["score"]
    assert kendalltau(board[accuracy.index], accuracy).statistic >= 0.99


def test_selection_biased_sparsity_recovers_the_truth_at_least_as_well_as_pl() -> None:
    taus: dict[str, list[float]] = {"pl": [], "pl-conditional": [], "mean": []}
    for seed in range(3):
        frame, truth, difficulty = rasch(seed=seed)
        sparse = thin(frame, 0.9, np.random.default_rng(seed), selection_bias(frame, truth, difficulty))
        for method, values in taus.items():
            scores = aggregators.rank(sparse, method=method).set_index("model")["score"]
            values.append(kendalltau(scores[truth.index], truth).statistic)
    assert np.mean(taus["pl-conditional"]) >= np.mean(taus["pl"]) - 0.01
    assert np.mean(taus["pl-conditional"]) > np.mean(taus["mean"]) + 0.5


def test_diagnostics_prior_and_bootstrap() -> None:
    frame = random_binary(6)
    never_right = frame.assign(value=np.where(frame["model"] == "m0", 0.0, frame["value"]))
    with pytest.raises(NotIdentifiedError, match="never win: m0"):
        aggregators.rank(never_right, method="pl-conditional", alpha=0.0)
    board = aggregators.rank(never_right, method="pl-conditional", alpha=0.05, bootstrap=20, seed=1)
    assert board.attrs["diagnostics"]["prior_driven"] == ["m0"]
    assert board["model"].iloc[-1] == "m0"
    assert ((board["ci_low"] <= board["score"]) & (board["score"] <= board["ci_high"])).all()
    again = aggregators.rank(never_right, method="pl-conditional", alpha=0.05, bootstrap=20, seed=1, workers=1)
    np.testing.assert_allclose(again["ci_low"], board["ci_low"], atol=1e-6)


def one_set(values: list[float]) -> conditional.Layout:
    """The layout of one sample measured on models m0, m1, ... with these values."""
    names = np.array([f"m{i}" for i in range(len(values))])
    frame = pd.DataFrame({"sample_id": "s", "model": names, "value": values})
    layout = conditional.Layout(conditional.from_measurements(frame, names, np.array(["s"])))
    assert len(layout.sign) == 1
    return layout


def strengths(layout: conditional.Layout, theta: np.ndarray, s: int = 0) -> np.ndarray:
    """Set s's signed log-strengths, as the kernels take them."""
    return layout.sign[s] * theta[layout.items[layout.set_start[s] : layout.set_start[s + 1]]]


def kernel(
    name: str, layout: conditional.Layout, x: np.ndarray, s: int = 0, rows: int | None = None
) -> tuple[float, np.ndarray] | None:
    """Set s's value and gradient by the kernel `_direct`, `_ratios` (its backward pass in segments of `rows`
    models, by default the layout's) or `_log_space`; None when it gives up (NaN)."""
    counts = layout.counts[layout.count_start[s] : layout.count_start[s + 1]]
    size, width = len(x), len(counts)
    rows = int(layout.segment_rows[s]) if rows is None else rows
    gradient, per_degree = np.empty(size), np.empty(4 * width)
    if name == "_direct":  # strengths relative to the largest, as the objective gives them
        prefix = np.empty((size + 1) * width)
        value = elementary._direct(np.exp(x - x.max()), x.max(), counts, prefix, per_degree, gradient)
    elif name == "_ratios":
        stay, checkpoints = np.empty(rows * width), np.empty(-(-size // rows) * width)
        value = elementary._ratios(x, counts, rows, stay, checkpoints, per_degree, gradient)
    else:
        value = elementary._log_space(x, counts, np.empty((size + 1) * width), per_degree, gradient)
    return None if np.isnan(value) else (value, gradient)


def assert_kernels_agree(layout: conditional.Layout, x: np.ndarray, atol: float, s: int = 0) -> None:
    """The ratio kernel, with the layout's segments, one segment, and segments of 1 and 7 models, equals the
    log-space kernel."""
    log_space = kernel("_log_space", layout, x, s)
    assert log_space is not None
    for rows in (None, len(x), 1, 7):
        ratios = kernel("_ratios", layout, x, s, rows)
        assert ratios is not None
        assert ratios[0] == pytest.approx(log_space[0], rel=1e-12)
        np.testing.assert_allclose(ratios[1], log_space[1], atol=atol)


@pytest.mark.parametrize("spread", [0.5, 8.0])
def test_ratio_and_log_space_recursions_agree(spread: float) -> None:
    """Both kernels on one 400-model set seen by samples with k from 3 to 390 (several k per set)."""
    rng = np.random.default_rng(7)
    names = np.array([f"x{i:03d}" for i in range(400)])
    frame = pd.concat(
        pd.DataFrame({"sample_id": f"s{k}", "model": names, "value": rng.permutation(np.arange(400) < k).astype(float)})
        for k in (3, 50, 120, 199, 250, 390)
    )
    layout = conditional.Layout(conditional.from_measurements(frame, names, np.sort(frame["sample_id"].unique())))
    theta = rng.normal(0, spread, 400)
    assert len(layout.sign) == 2  # flipped and not
    for s in range(2):
        assert_kernels_agree(layout, strengths(layout, theta, s), atol=1e-9, s=s)


@pytest.mark.parametrize(("spread", "answers"), [(0.5, 7), (3.0, 7), (40.0, 5)])
def test_direct_and_log_space_recursions_agree(spread: float, answers: int) -> None:
    """The direct recursion (small sets) against the log-space one on sets of 2 to 200 models seen by samples
    with several k, flipped (k > n / 2) and not. Where strengths lie hundreds of nats apart it gives up on the
    sets whose coefficients underflow (the ratios take those), and answers the others as exactly."""
    rng = np.random.default_rng(11)
    answered = 0
    for size in (2, 7, 30, 200):
        names = np.array([f"x{i:03d}" for i in range(size)])
        ks = sorted({1, max(size // 4, 1), size // 2, size - 1})
        frame = pd.concat(
            pd.DataFrame(
                {"sample_id": f"s{k}", "model": names, "value": rng.permutation(np.arange(size) < k).astype(float)}
            )
            for k in ks
        )
        layout = conditional.Layout(conditional.from_measurements(frame, names, np.sort(frame["sample_id"].unique())))
        assert layout.direct.all() and len(layout.sign) == (2 if size > 2 else 1)
        theta = rng.normal(0, spread, size)
        for s in range(len(layout.sign)):
            x = strengths(layout, theta, s)
            direct, log_space = kernel("_direct", layout, x, s), kernel("_log_space", layout, x, s)
            assert log_space is not None
            if direct is not None:
                answered += 1
                assert direct[0] == pytest.approx(log_space[0], rel=1e-12)
                np.testing.assert_allclose(direct[1], log_space[1], atol=1e-11)
    assert answered == answers


def test_coefficients_too_small_for_the_direct_recursion_go_to_the_ratios() -> None:
    """One model at 0 and fifteen 110 nats below it, eight chosen: e_8 ~ e^-770 is under what a float holds.
    The direct recursion gives up; the objective's value is then the ratio recursion's."""
    layout = one_set([1.0] * 8 + [0.0] * 8)
    theta = np.r_[0.0, np.random.default_rng(2).normal(-110.0, 1.0, 15)]
    assert kernel("_direct", layout, theta) is None
    ratios = kernel("_ratios", layout, theta)
    assert ratios is not None
    value, gradient = conditional.objective(theta, layout)
    assert value == pytest.approx(ratios[0] - theta[:8].sum(), rel=1e-12)
    np.testing.assert_allclose(gradient, ratios[1] - np.r_[np.ones(8), np.zeros(8)], atol=1e-12)


def test_far_apart_k_in_one_set_need_no_log_space() -> None:
    """Equal strengths, 4,000 models, k = 5 and k = 1,990 in one set: e_1990 / e_5 is about 10^1170, far past
    what a float holds (the old linear recursion went to log space here): the ratios hold it exactly."""
    names = np.array([f"x{i:04d}" for i in range(4000)])
    frame = pd.concat(
        pd.DataFrame({"sample_id": f"s{k}", "model": names, "value": (np.arange(4000) < k).astype(float)})
        for k in (5, 1990)
    )
    layout = conditional.Layout(conditional.from_measurements(frame, names, np.sort(frame["sample_id"].unique())))
    assert len(layout.sign) == 1
    scratch = sum(array.size for array in layout.scratch)
    assert scratch < 0.05 * 4000 * 1991  # segments and checkpoints of about sqrt(n) steps, not every step
    result = kernel("_ratios", layout, np.zeros(4000))
    assert result is not None
    value, gradient = result
    log_binomial = [gammaln(4001) - gammaln(k + 1) - gammaln(4001 - k) for k in (5, 1990)]
    assert value == pytest.approx(sum(log_binomial), rel=1e-12)  # e_k of equal unit strengths = C(n, k)
    np.testing.assert_allclose(gradient, (5 + 1990) / 4000, rtol=1e-9)  # inclusion probability k / n each


def test_a_model_hundreds_of_nats_below_the_others_still_agrees_with_log_space() -> None:
    """b, 400 nats below a and second in the set, opens degree 2 with a ratio of e^400 (within a float): value
    and gradient still agree with the log-space recursion."""
    layout = one_set([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    theta = np.array([0.0, -400.0, 0.5, -1.0, 0.2, -0.3])
    assert_kernels_agree(layout, strengths(layout, theta), atol=1e-12)


@pytest.mark.parametrize("below", [720.0, 800.0])
def test_strengths_too_far_apart_for_the_ratios_go_to_log_space(below: float) -> None:
    """b, second in the set, 720 nats below a: E[1] / E[2] after b is e^720, past a float; 800 below, b's
    strength relative to a's is 0 in a float. The ratios give up on both, and the log-space recursion answers
    (it holds b's e^-800 as a logarithm)."""
    layout = one_set([1.0, 1.0, 0.0, 0.0, 0.0])
    theta = np.array([0.0, -below, 0.5, -1.0, 0.0])
    x = strengths(layout, theta)
    assert layout.items.tolist() == [0, 1, 2, 3, 4] and kernel("_ratios", layout, x) is None
    log_space = kernel("_log_space", layout, x)
    assert log_space is not None
    w = np.exp(theta[[0, 2, 3, 4]])  # e_2 without b (its terms are e^-720 smaller)
    assert log_space[0] == pytest.approx(np.log((w.sum() ** 2 - (w**2).sum()) / 2), rel=1e-12)
    assert log_space[1][1] == pytest.approx(np.exp(-below) * w.sum() / np.exp(log_space[0]), rel=1e-9)
    value, gradient = conditional.objective(theta, layout)  # chose a and b (the direct recursion's set)
    assert value == pytest.approx(below + log_space[0], rel=1e-15)
    np.testing.assert_allclose(gradient, log_space[1] - [1, 1, 0, 0, 0], rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize(
    ("n_rows", "counts", "advice"),
    [
        (5, (2, 1, 3), False),  # s3 is left out because both models were right, not for want of a second model
        (6, (3, 2, 4), False),  # half the samples on one model: not most
        (7, (4, 3, 5), True),
    ],
)
def test_diagnostics_count_the_samples_left_out_and_advise_the_mean_when_most_have_one_model(
    n_rows: int, counts: tuple[int, int, int], advice: bool
) -> None:
    rows = [("s1", "a", 1.0), ("s1", "b", 0.0), ("s2", "a", 1.0), ("s3", "a", 1.0), ("s3", "b", 1.0)]
    rows += [("s4", "b", 0.0), ("s5", "b", 1.0)]
    frame = pd.DataFrame(rows[:n_rows], columns=["sample_id", "model", "value"])
    diagnostics = aggregators.rank(frame, method="pl-conditional", alpha=0.1).attrs["diagnostics"]
    keys = ("uninformative_samples", "single_model_samples", "binary_samples")
    assert tuple(diagnostics[key] for key in keys) == counts
    note = uninformative_note(diagnostics)
    assert note.startswith(f"{counts[0]} of {counts[2]} binary samples ({counts[1]} measured on one model only)")
    assert ("--method mean" in note) == advice


def test_kernels_compile_in_the_process_where_no_folder_can_hold_numba_s_cache(tmp_path: Path) -> None:
    """A copy of the package whose `__pycache__` is a file, and a HOME with no cache folder: numba can cache the
    kernels nowhere. `rank` still works (the kernels compile in the process) and one warning says so."""
    shutil.copytree(
        Path(aggregators.__file__).parent, tmp_path / "aggregators", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "aggregators" / "__pycache__").write_text("")
    env = {key: value for key, value in os.environ.items() if key not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env |= {"HOME": "/dev/null", "PYTHONPATH": str(tmp_path)}
    script = (
        "import aggregators, pandas as pd; print(aggregators.__file__); "
        "frame = pd.DataFrame({'sample_id': list('aabbcc'), 'model': list('xyxyxy'), 'value': [1, 0, 0, 1, 1, 0.0]}); "
        "print(aggregators.rank(frame).set_index('model')['score'].round(6).to_dict())"
    )
    command = [sys.executable, "-c", script]  # run in tmp_path: `-c` puts the working folder first on the path
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    where, scores = done.stdout.splitlines()
    assert where == str(tmp_path / "aggregators" / "__init__.py")
    assert scores == "{'x': 0.34146, 'y': -0.34146}"  # x right on 2 of the 3 samples: the same fit as here
    assert done.stderr.count("numba finds no writable folder") == 1
