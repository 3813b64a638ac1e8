"""Bootstrap intervals (seeded, coverage) and the baselines against hand-computed cases."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import choix
import numpy as np
import pandas as pd
import pytest
from markupsafe import escape

import aggregators
from aggregators import baselines, orderings
from aggregators.bootstrap import competition_ranks, replicate_weights
from aggregators.diagnostics import prior_note
from aggregators.orderings import from_measurements
from harness.pool import Pool
from harness.reporting import build_report, ranking_inputs


def pl_rankings(truth: np.ndarray, n_rankings: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for s in range(n_rankings):
        items = rng.choice(len(truth), 4, replace=False)
        order = items[np.argsort(-(truth[items] + rng.gumbel(size=4)))]
        rows += [(f"s{s}", f"m{i}", float(4 - pos)) for pos, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["sample_id", "model", "value"])


def test_bootstrap_is_seeded_and_independent_of_workers() -> None:
    frame = pl_rankings(np.linspace(-1, 1, 6), 150, np.random.default_rng(0))
    one = aggregators.rank(frame, bootstrap=20, seed=7, workers=1)
    heard: list[int] = []
    two = aggregators.rank(frame, bootstrap=20, seed=7, workers=2, progress=heard.append)
    pd.testing.assert_frame_equal(one, two)
    assert heard[0] == 0 and sum(heard) == 20 and len(heard) > 2  # the full fit, then replicates as they finish
    other = aggregators.rank(frame, bootstrap=20, seed=8, workers=1)
    assert not np.allclose(one["ci_low"], other["ci_low"])
    assert (one["ci_low"] <= one["score"]).all() and (one["score"] <= one["ci_high"]).all()
    assert (one["rank_low"] <= one["rank"]).all() and (one["rank"] <= one["rank_high"]).all()


def test_competition_ranks_are_scipys_and_leave_a_missing_score_out() -> None:
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    for shape in ((7,), (50, 9), (3, 1)):
        scores = rng.integers(0, 5, shape) * 0.5
        np.testing.assert_array_equal(competition_ranks(scores), rankdata(-scores, axis=-1, method="min"))
    np.testing.assert_array_equal(competition_ranks(np.array([1.0, np.nan, 3.0, 3.0, -np.inf])), [3, np.nan, 1, 1, 4])


def test_mean_intervals_of_a_model_missing_from_some_replicates() -> None:
    """A model measured on one sample of 31 is in about 64% of the replicates (1 - (30/31)^31); its mean is
    undefined in the rest, which leave it out of its intervals and of the others' ranks."""
    rng = np.random.default_rng(0)
    rows = [(f"s{i}", m, float(rng.integers(0, 2))) for i in range(30) for m in "abc"] + [("s0", "d", 1.0)]
    board = aggregators.rank(pd.DataFrame(rows, columns=["sample_id", "model", "value"]), "mean", bootstrap=50)
    d = board.set_index("model").loc["d"]
    assert (d.ci_low, d.ci_high, d.rank_low, d.rank_high) == (1.0, 1.0, 1, 1)  # its one sample, always right
    assert board[["ci_low", "ci_high"]].stack().between(0, 1).all()
    assert board[["rank_low", "rank_high"]].stack().between(1, 4).all()


def one_loss_matrix() -> pd.DataFrame:
    """a and b beat each other on five samples each, c beats whichever lost there, and loses only on s10."""
    rows = [(f"s{s}", "a", float(s < 5)) for s in range(10)] + [(f"s{s}", "b", float(s >= 5)) for s in range(10)]
    rows += [(f"s{s}", "c", 1.0) for s in range(10)] + [("s10", "a", 1.0), ("s10", "b", 1.0), ("s10", "c", 0.0)]
    return pd.DataFrame(rows, columns=["sample_id", "model", "value"])


@pytest.mark.parametrize("method", ["pl", "pl-conditional"])
def test_alpha_0_counts_the_bootstrap_replicates_without_an_mle(method: str) -> None:
    """Hand criterion: a replicate has an MLE exactly when it draws s10 (c's one loss) and a sample of each of a's
    and b's wins; drawing no s10 leaves c to the prior. With alpha > 0 nothing is counted."""
    frame = one_loss_matrix()
    board = aggregators.rank(frame, method=method, alpha=0.0, bootstrap=40, seed=3, workers=1)
    weights = replicate_weights(11, 40, seed=3)  # samples in sorted order: s0, s1, s10, s2, ..., s9
    drawn = [dict(zip(sorted(frame["sample_id"].unique()), w, strict=True)) for w in weights]
    a_wins, b_wins = [f"s{i}" for i in range(5)], [f"s{i}" for i in range(5, 10)]
    has_mle = [d["s10"] > 0 and any(d[s] for s in a_wins) and any(d[s] for s in b_wins) for d in drawn]
    diagnostics = board.attrs["diagnostics"]
    assert diagnostics["bootstrap_without_mle"] == has_mle.count(False) > 0
    assert "c" in diagnostics["bootstrap_prior_driven"] and diagnostics["prior_driven"] == []
    prior = aggregators.rank(frame, method=method, alpha=0.01, bootstrap=40, seed=3, workers=1).attrs["diagnostics"]
    assert prior["bootstrap_without_mle"] == 0 and prior["bootstrap_prior_driven"] == []


def test_the_replicates_without_an_mle_are_told_on_the_command_line_and_in_the_report(cli, tmp_path: Path) -> None:
    matrix = tmp_path / "m.csv"
    one_loss_matrix().pivot(index="sample_id", columns="model", values="value").to_csv(matrix)
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    options = ["--method", "pl", "--alpha", "0", "--bootstrap", "40", "--seed", "3"]
    document = json.loads(cli("rank", *options, "--json", check=True).stdout)
    pool = Pool(tmp_path / "pool")
    scores, _ = ranking_inputs(pool, None)
    board = aggregators.rank(scores, "pl", alpha=0.0, bootstrap=40, seed=3)
    count = board.attrs["diagnostics"]["bootstrap_without_mle"]
    assert document["diagnostics"]["bootstrap_without_mle"] == count > 0
    note = f"{count} of 40 bootstrap replicates determine no maximum-likelihood estimate: fitted with alpha = 1e-06 instead"
    assert note in cli("rank", *options, check=True).stderr.replace("\n", " ")
    report = build_report(pool, board, scores, title="t", bootstrap=40)
    assert any(line.startswith(note) for line in report.diagnostics["notes"])


def test_95_percent_intervals_cover_the_truth() -> None:
    """Synthetic PL data with known strengths: the intervals cover the truth 88-99% of the time."""
    rng = np.random.default_rng(1)
    truth = np.linspace(-1.2, 1.2, 8)
    truth -= truth.mean()
    covered = []
    for _ in range(20):
        board = aggregators.rank(pl_rankings(truth, 300, rng), alpha=0.0, bootstrap=100, seed=int(rng.integers(1e9)))
        board = board.set_index("model").loc[[f"m{i}" for i in range(8)]]
        covered += list((board["ci_low"] <= truth) & (truth <= board["ci_high"]))
    assert 0.88 <= np.mean(covered) <= 0.99, np.mean(covered)


def test_mean_is_macro_over_sources() -> None:
    frame = pd.DataFrame(
        {
            "sample_id": ["a1", "a2", "a3", "b1", "a1", "b1"],
            "source": ["A", "A", "A", "B", "A", "B"],
            "model": ["x", "x", "x", "x", "y", "y"],
            "value": [1, 1, 0, 0, 0, 1.0],
        }
    )
    board = aggregators.rank(frame, method="mean").set_index("model")["score"]
    assert board["x"] == pytest.approx((2 / 3 + 0) / 2)
    assert board["y"] == pytest.approx((0 + 1) / 2)


def test_borda_hand_computed() -> None:
    frame = pd.DataFrame(
        {"sample_id": ["s"] * 3 + ["t"] * 2, "model": ["a", "b", "c", "a", "c"], "value": [3, 2, 2, 0, 1.0]}
    )
    board = aggregators.rank(frame, method="borda").set_index("model")["score"]
    # s: a beats b,c -> 2/2; b and c tie: (0 + 0.5)/2 each.  t: c beats a -> c 1, a 0.
    assert board.to_dict() == pytest.approx({"a": (1 + 0) / 2, "b": 0.25, "c": (0.25 + 1) / 2})


def test_elo_hand_computed() -> None:
    frame = pd.DataFrame({"sample_id": ["s", "s"], "model": ["a", "b"], "value": [1.0, 0.0]})
    board = aggregators.rank(frame, method="elo").set_index("model")["score"]
    assert board["a"] == pytest.approx(1000 + 4 * 0.5) and board["b"] == pytest.approx(1000 - 4 * 0.5)
    orderings = from_measurements(
        pd.DataFrame({"sample_id": ["s", "s", "t", "t"], "model": ["a", "b"] * 2, "value": [1.0, 0.0, 1.0, 1.0]})
    )
    rating = baselines.elo_scores(orderings, np.ones(2))
    # one decisive battle then one tie (or the reverse), each updating by K * (score - expected)
    first = 4 * 0.5
    expected_after = 1 / (1 + 10 ** (-2 * first / 400))
    tie_then = first + 4 * (0.5 - expected_after)
    tie_first = 0 + 4 * (1 - 0.5)
    assert rating[0] - 1000 == pytest.approx(tie_then) or rating[0] - 1000 == pytest.approx(tie_first)


def test_bt_matches_choix_on_pair_counts_with_half_ties() -> None:
    frame = pd.DataFrame(
        {
            "sample_id": ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3,
            "model": ["a", "b", "c"] * 3,
            "value": [1, 0, 0, 0, 1, 1, 1, 1, 0.0],
        }
    )
    counts = np.zeros((3, 3))
    counts[0, 1] = 1 + 0.5  # s1: a>b; s3: a~b
    counts[1, 0] = 1 + 0.5  # s2: b>a; s3: a~b
    counts[0, 2] = 1 + 1  # s1: a>c; s3: a>c
    counts[2, 0] = 1  # s2: c>a
    counts[1, 2] = 0.5 + 0.5 + 1  # s1: b~c; s2: b~c; s3: b>c
    counts[2, 1] = 0.5 + 0.5
    np.testing.assert_allclose(baselines.pair_counts(from_measurements(frame)), counts)
    theta = choix.ilsr_pairwise_dense(counts, alpha=1e-6, max_iter=1000)
    expected = 1000 + 400 / math.log(10) * (theta - theta.mean())
    board = aggregators.rank(frame, method="bt").set_index("model").loc[["a", "b", "c"], "score"]
    np.testing.assert_allclose(board.to_numpy(), expected, atol=1e-9)


def test_unknown_method_and_out_of_range_arguments_are_refused() -> None:
    frame = pd.DataFrame({"sample_id": ["s", "s"], "model": ["a", "b"], "value": [1.0, 0.0]})
    with pytest.raises(ValueError, match="unknown method 'best'"):
        aggregators.rank(frame, method="best")
    for bad in ({"alpha": -0.5}, {"bootstrap": -1}, {"bootstrap": 2, "level": 1.0}):
        with pytest.raises(ValueError, match="need alpha >= 0"):
            aggregators.rank(frame, **bad)
    with pytest.raises(ValueError, match="ties must be one of"):
        aggregators.rank(frame, ties="draw")
    with pytest.raises(ValueError, match="measurement row 1: model is missing"):
        aggregators.rank(frame.assign(model=["a", None]))
    with pytest.raises(ValueError, match="measurement row 0: sample_id is missing"):
        aggregators.rank(frame.assign(sample_id=[None, "s"]))
    for method in aggregators.METHODS:
        with pytest.raises(ValueError, match=r"measurement row 1 \(sample 's', model 'b'\): value nan is not a fin"):
            aggregators.rank(frame.assign(value=[1.0, None]), method=method)
    with pytest.raises(ValueError, match=r"measurement row 0 \(sample 's', model 'a'\): value 'high' is not a fin"):
        aggregators.rank(frame.assign(value=["high", 0.0]))
    pairs = pd.DataFrame({"model_a": ["a", "b"], "model_b": ["b", "b"], "winner": ["a", "tie"]})
    with pytest.raises(ValueError, match="comparison row 1: 'b' compared with itself"):
        aggregators.rank_pairwise(pairs)
    with pytest.raises(ValueError, match="comparison row 0: model_a is missing"):
        aggregators.rank_pairwise(pairs.assign(model_a=[None, "a"]))
    with pytest.raises(ValueError, match="comparison row 1: winner must be a, b or tie, not 'left'"):
        aggregators.rank_pairwise(pairs.assign(model_b=["b", "c"], winner=["a", "left"]))
    with pytest.raises(ValueError, match="comparisons need a 'winner' column"):
        aggregators.rank_pairwise(pairs.drop(columns="winner"))


@pytest.mark.parametrize("bitmap_cells", [2**28, 0])  # found with the bitmap, and by sorting
def test_a_model_measured_twice_on_a_sample_is_refused(monkeypatch: pytest.MonkeyPatch, bitmap_cells: int) -> None:
    monkeypatch.setattr(orderings, "BITMAP_CELLS", bitmap_cells)
    frame = pd.DataFrame(
        {"sample_id": ["s1", "s1", "s2", "s2"], "model": ["a", "b", "a", "b"], "value": [1.0, 0, 0, 1]}
    )
    again = frame.iloc[[3]].assign(value=0.0)
    for method in aggregators.METHODS:
        with pytest.raises(ValueError, match="model 'b' twice on sample 's2'"):
            aggregators.rank(pd.concat([frame, again]), method=method)
    two_metrics = pd.concat([frame.assign(metric="acc"), frame.assign(metric="f1")])
    assert len(aggregators.rank(two_metrics)) == 2  # one value per metric is no repeat
    with pytest.raises(ValueError, match="twice on sample 's2', metric 'f1'"):
        aggregators.rank(pd.concat([two_metrics, again.assign(metric="f1")]))


def test_a_missing_metric_is_a_metric_of_its_own() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {"sample_id": np.repeat([f"s{i}" for i in range(30)], 4), "model": list("abcd") * 30, "value": rng.random(120)}
    )
    named = pd.concat([frame.assign(metric="acc"), frame.assign(metric="other", value=rng.random(120))])
    unnamed = named.assign(metric=named["metric"].where(named["metric"] == "acc"))  # "other" -> NaN
    for method in ("pl", "pl-conditional", "bt"):
        expected = aggregators.rank(named, method=method).set_index("model")["score"]
        got = aggregators.rank(unnamed, method=method).set_index("model")["score"]
        np.testing.assert_allclose(got[expected.index], expected, atol=1e-9)


def test_cli_names_the_option_out_of_range(cli, tmp_path: Path) -> None:
    matrix = tmp_path / "m.csv"
    pd.DataFrame({"id": ["q1", "q2"], "a": [1, 0], "b": [0, 1]}).to_csv(matrix, index=False)
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    for option, value in (
        ("--alpha", "-1"),
        ("--bootstrap", "-3"),
        ("--seed", "-1"),
        ("--method", "best"),
        ("--ties", "x"),
    ):
        done = cli("rank", option, value)
        assert done.returncode == 2 and option in done.stderr and "Traceback" not in done.stderr
    for command in ("rank", "compare a b"):  # compare said: model 'a' has no measurements here; measured: none
        metric = cli(*command.split(), "--metric", "f1")
        assert metric.returncode == 2 and f"nothing to {command[:7]}: no measurements of metric 'f1'" in metric.stderr
        assert "(their measurements are of acc: choose one with --metric)" in metric.stderr
    for command in (["report", "--out"], ["compare", "a", "b", "--junit"], ["compare", "a", "b", "--html"]):
        folder = cli(*command, str(tmp_path))  # refused by the parser, before any work (report: its bootstrap)
        assert folder.returncode == 2 and f"Invalid value for '{command[-1]}'" in folder.stderr
        assert "bootstrap" not in folder.stderr
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.tmp"))
    kind = cli("add", "csv", str(matrix), "--source", "s", "--kind", "scored")  # was: refused after reading
    assert (
        kind.returncode == 2 and "Invalid value for '--kind'" in kind.stderr and "'scored' is not one of" in kind.stderr
    )


def test_bt_names_the_ratings_its_regularisation_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    """z only loses: no Bradley-Terry MLE, so its rating is whatever the regularisation makes it (another
    value moves it) and the diagnostics say so; x and y, who beat each other, move far less."""
    prefs = pd.DataFrame({"model_a": ["x", "y", "y"], "model_b": ["y", "x", "z"], "winner": ["a", "a", "a"]})
    board = aggregators.rank_pairwise(prefs, method="bt").set_index("model")["score"]
    diagnostics = aggregators.rank_pairwise(prefs, method="bt").attrs["diagnostics"]
    assert diagnostics["prior_driven"] == ["z"]
    note = "scores resting on bt's regularisation (1e-06), not on the data: z"
    assert prior_note(diagnostics, None) == note
    monkeypatch.setattr(baselines, "BT_REGULARISATION", 1e-3)
    moved = aggregators.rank_pairwise(prefs, method="bt").set_index("model")["score"] - board
    assert abs(moved["z"]) > 100 > 10 * abs(moved["x"] - moved["y"])
    for method in ("elo", "borda"):
        assert aggregators.rank_pairwise(prefs, method=method).attrs["diagnostics"]["prior_driven"] == []
    pl = aggregators.rank_pairwise(prefs, method="pl", alpha=0.5).attrs["diagnostics"]
    assert prior_note(pl, 0.5) == "scores resting on the prior (alpha = 0.5), not on the data: z"


def test_scores_resting_on_a_prior_are_told_on_the_command_line_and_in_the_report(cli, tmp_path: Path) -> None:
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("model_a,model_b,winner\nx,y,a\ny,x,a\ny,z,a\n")
    cli("import", "pairwise", str(prefs), "--source", "arena", check=True)
    for options, prior in (([], "the prior (alpha = 0.01)"), (["--method", "bt"], "bt's regularisation (1e-06)")):
        note = f"scores resting on {prior}, not on the data: z"
        assert note in cli("rank", *options, check=True).stderr
        for output in ("--json", "--csv"):  # stdout is the document; the notes go to stderr all the same
            assert note in cli("rank", *options, output, check=True).stderr
        assert note in json.loads(cli("rank", *options, "--json", check=True).stdout)["notes"]
        cli("report", *options, "--out", str(tmp_path / "r.html"), check=True)
        assert f'<li class="warn">{escape(note)}</li>' in (tmp_path / "r.html").read_text()


def test_mean_bootstrap_resamples_the_measured_samples_beside_comparisons() -> None:
    """Comparisons beside measurements: the mean's replicates weight each measured sample by its own draw (was:
    integer ids were looked up among the joined ids, now text, and all took the last one's weight: intervals of
    width 0), and ids shared with the comparisons' own samples are no error (was: categories not unique)."""
    rng = np.random.default_rng(3)
    for ids in (np.arange(1, 41), np.arange(40).astype(str)):
        measured = pd.DataFrame({"sample_id": np.repeat(ids, 2), "model": ["x", "y"] * 40, "value": rng.random(80)})
        compared = pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["a"]})  # its sample: "0"
        board = aggregators.rank(measured, "mean", comparisons=compared, bootstrap=50).set_index("model")
        assert (board["ci_low"] < board["score"]).all() and (board["score"] < board["ci_high"]).all()


def test_mean_leaves_out_the_models_it_cannot_score(cli, tmp_path: Path) -> None:
    """z is only compared: it has no mean, so no place on the mean's board (was: ranked last, its score nan),
    and the CLI and the report say why; the other methods rank it."""
    measured = pd.DataFrame({"sample_id": [1, 1, 2, 2], "model": ["x", "y", "x", "y"], "value": [1.0, 0.0, 1.0, 1.0]})
    compared = pd.DataFrame({"model_a": ["x"], "model_b": ["z"], "winner": ["b"]})
    board = aggregators.rank(measured, "mean", comparisons=compared, bootstrap=10)
    assert board["model"].tolist() == ["x", "y"] and board["rank_high"].max() <= 2
    assert board.attrs["diagnostics"]["unscored"] == ["z"]
    note = "left out: z (only compared, never measured on the selected samples: mean ranks measurements; the"
    assert aggregators.board_notes(board)[0].startswith(note)
    assert "z" in aggregators.rank(measured, "borda", comparisons=compared)["model"].tolist()
    pd.DataFrame({"id": ["q1", "q2"], "x": [1, 1], "y": [0, 1]}).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "p.csv").write_text("model_a,model_b,winner\nx,z,b\n")
    cli("import", "matrix", str(tmp_path / "m.csv"), "--source", "m", check=True)
    cli("import", "pairwise", str(tmp_path / "p.csv"), "--source", "p", check=True)
    board_json = json.loads(cli("rank", "--method", "mean", "--json", check=True).stdout)
    assert [m["model"] for m in board_json["models"]] == ["x", "y"] and board_json["diagnostics"]["unscored"] == ["z"]
    assert note in cli("rank", "--method", "mean", check=True).stderr
    cli("report", "--method", "mean", "--out", str(tmp_path / "r.html"), check=True)
    assert f'<li class="warn">{escape(note)}' in (tmp_path / "r.html").read_text()


def test_report_takes_the_metric_rank_takes(cli, tmp_path: Path) -> None:
    """a leads on accuracy, b on a second metric of the same samples: `report --metric f1` is the f1 board
    (as `rank --metric f1`), and its header says so."""
    rng = np.random.default_rng(8)
    matrix = tmp_path / "m.csv"
    pd.DataFrame({"id": [f"q{i}" for i in range(30)], "a": rng.random(30) < 0.8, "b": rng.random(30) < 0.3}).astype(
        {"a": int, "b": int}
    ).to_csv(matrix, index=False)
    cli("import", "matrix", str(matrix), "--source", "m", "--metric", "acc", check=True)
    pool = Pool(tmp_path / "pool")
    ids = pool.samples()["sample_id"]
    f1 = pd.DataFrame({"sample_id": np.r_[ids, ids], "model": ["a"] * 30 + ["b"] * 30, "metric": "f1"})
    pool.add("measurements", f1.assign(value=np.r_[rng.uniform(0, 0.5, 30), rng.uniform(0.5, 1, 30)]))
    for metric, order in ((None, ["a", "b"]), ("f1", ["b", "a"])):
        options = ["--metric", metric] if metric else []
        ranked = json.loads(cli("rank", *options, "--json", check=True).stdout)["models"]
        assert [m["model"] for m in ranked] == order
        cli("report", *options, "--bootstrap", "0", "--out", str(tmp_path / "r.html"), check=True)
        page = (tmp_path / "r.html").read_text()
        assert re.findall(r'class="leaderboard-row" data-model="(\w+)"', page) == order
        assert ("<tr><td>metric</td><td>f1</td></tr>" in page) == (metric == "f1")


def test_alpha_is_the_prior_of_the_pl_methods_only(cli, tmp_path: Path) -> None:
    matrix = tmp_path / "m.csv"
    pd.DataFrame({"id": ["q1", "q2", "q3"], "a": [1, 1, 0], "b": [0, 1, 1], "c": [0, 0, 1]}).to_csv(matrix, index=False)
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    for options, alpha in ((["--method", "pl"], 0.01), (["--method", "pl", "--alpha", "0.5"], 0.5), ([], 0.01)):
        done = cli("rank", *options, "--json", check=True)
        assert json.loads(done.stdout)["alpha"] == alpha and "--alpha" not in done.stderr
    wide = json.loads(cli("rank", "--method", "pl", "--alpha", "5", "--json", check=True).stdout)["models"]
    narrow = json.loads(cli("rank", "--method", "pl", "--alpha", "0.5", "--json", check=True).stdout)["models"]
    assert abs(wide[0]["score"]) < abs(narrow[0]["score"])  # a stronger prior pulls the scores to 0
    assert "scores resting on" not in cli("rank", check=True).stderr  # every model wins and loses
    for method in ("mean", "bt", "elo", "borda"):
        plain = cli("rank", "--method", method, "--json", check=True)
        assert json.loads(plain.stdout)["alpha"] is None and "--alpha" not in plain.stderr
        given = cli("rank", "--method", method, "--alpha", "0.5", "--json", check=True)
        assert json.loads(given.stdout) == json.loads(plain.stdout)
        assert f"--alpha is the prior of the pl methods: {method} takes none" in given.stderr


def test_rank_csv_is_the_json_leaderboard_as_a_table(cli, tmp_path: Path) -> None:
    matrix = tmp_path / "m.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"id": [f"q{i}" for i in range(40)], **{m: rng.integers(0, 2, 40) for m in "abcd"}}).to_csv(
        matrix, index=False
    )
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    for bootstrap in ("0", "20"):
        options = ("--bootstrap", bootstrap)
        document = json.loads(cli("rank", *options, "--json", check=True).stdout)
        as_csv = cli("rank", *options, "--csv", check=True)
        table = pd.read_csv(io.StringIO(as_csv.stdout))
        assert re.search(r"ranking by pl-conditional .* 1/1", as_csv.stderr)  # its progress bars' last state
        assert bool(re.search(r"bootstrap over samples .* 20/20", as_csv.stderr)) == (bootstrap == "20")
        assert table.columns.tolist() == list(aggregators.BOARD_COLUMNS)
        expected = pd.DataFrame(document["models"]).astype({c: float for c in aggregators.BOARD_COLUMNS[1:]})
        pd.testing.assert_frame_equal(table, expected, check_dtype=False, rtol=1e-12)
    both = cli("rank", "--json", "--csv")
    assert both.returncode == 2 and "--json and --csv: choose one" in both.stderr
