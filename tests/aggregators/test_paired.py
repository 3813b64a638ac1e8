"""Paired comparison: statistics against scipy, verdicts, calibration, and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, wilcoxon

from aggregators.paired import (
    POWER,
    NotComparableError,
    compare,
    compare_many,
    detectable_drop,
    holm,
    mcnemar_power,
    paired_test,
)
from harness.pool import Pool


def long(base: np.ndarray, candidate: np.ndarray, sources: np.ndarray | None = None) -> pd.DataFrame:
    n = len(base)
    ids = [f"s{i}" for i in range(n)]
    src = sources if sources is not None else np.array(["all"] * n)
    return pd.DataFrame(
        {
            "sample_id": ids * 2,
            "model": ["base"] * n + ["cand"] * n,
            "value": np.r_[base, candidate],
            "source": np.r_[src, src],
        }
    )


def test_mcnemar_is_the_exact_binomial_on_discordant_pairs() -> None:
    base = np.array([1, 1, 1, 1, 0, 0, 1, 0, 1, 1] * 5, float)
    cand = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 0] * 5, float)
    result = paired_test(base, cand)
    improved, worsened = int(((cand - base) > 0).sum()), int(((cand - base) < 0).sum())
    assert (result.n_improved, result.n_worsened) == (improved, worsened) == (5, 20)
    assert result.p_value == pytest.approx(binomtest(5, 25, 0.5).pvalue)
    assert result.delta == pytest.approx((cand - base).mean())


def test_the_binary_interval_is_bonett_and_prices() -> None:
    """Hand-computed: 3 improved, 1 worsened of 30: (4/32 - 2/32) +- 1.96 sqrt((6/32 - (2/32)^2) / 32)."""
    base, cand = np.zeros(30), np.zeros(30)
    cand[:3] = 1
    base[3] = 1
    result = paired_test(base, cand)
    assert result.delta == pytest.approx(2 / 30)
    half = 1.959963984540054 * np.sqrt((6 / 32 - (2 / 32) ** 2) / 32)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 / 32 - half, 2 / 32 + half))
    same = paired_test(np.ones(30), np.ones(30))  # no pair differs: still an interval, not [0, 0]
    assert same.ci_low < 0 < same.ci_high and same.ci_high == pytest.approx(-same.ci_low)
    assert paired_test(np.zeros(3), np.ones(3)).ci_high == 1.0  # clipped to the possible range


def test_the_binary_interval_covers_the_true_difference() -> None:
    """Few discordant pairs, as between two versions of one model: 30 samples, the candidate gains 6% and
    loses 2%. The 95% interval covers the true +4% in at least 93% of 2,000 draws (a plain Wald interval: 85%)."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(2000):
        u = rng.random(30)
        base = (rng.random(30) < 0.5).astype(float)
        base[u < 0.06], base[(u >= 0.06) & (u < 0.08)] = 0, 1
        cand = np.where(u < 0.06, 1.0, np.where(u < 0.08, 0.0, base))
        result = paired_test(base, cand)
        covered += result.ci_low <= 0.04 <= result.ci_high
    assert 0.93 <= covered / 2000 <= 0.999  # 0.9945: on the safe side


def test_numeric_uses_wilcoxon_and_a_seeded_bootstrap() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=60)
    cand = base + rng.normal(0.3, 1.0, size=60)
    result = paired_test(base, cand, seed=3)
    assert result.test == "Wilcoxon signed-rank"
    assert result.p_value == pytest.approx(wilcoxon(cand - base).pvalue)
    assert result.ci_low < result.delta < result.ci_high
    assert paired_test(base, cand, seed=3) == result
    flips = compare(long(base, cand), "base", "cand").flips
    drops = [f["candidate"] - f["base"] for f in flips]  # type: ignore[operator]
    assert len(flips) == 60 and drops == sorted(drops)  # the largest drop first
    assert [f["change"] for f in flips] == ["worse" if d < 0 else "better" for d in drops]


def test_holm_hand_computed() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_three_points_worse_on_2000_samples_is_flagged_and_identical_passes() -> None:
    rng = np.random.default_rng(1)
    base = (rng.random(2000) < 0.70).astype(float)
    cand = base.copy()
    flip = rng.choice(np.flatnonzero(base == 1), 60, replace=False)  # 3 points of 2,000
    cand[flip] = 0.0
    result = compare(long(base, cand), "base", "cand")
    assert result.regression and result.overall.delta == pytest.approx(-0.03)
    assert len(result.flips) == 60 and {f["change"] for f in result.flips} == {"right -> wrong"}
    mixed = cand.copy()
    mixed[np.flatnonzero(base == 0)[:5]] = 1.0
    changes = [f["change"] for f in compare(long(base, mixed), "base", "cand").flips]
    assert changes == ["right -> wrong"] * 60 + ["wrong -> right"] * 5
    assert not compare(long(base, base.copy()), "base", "cand").regression
    assert not compare(long(base, cand), "base", "cand", max_drop=0.05).regression


def test_regression_in_one_source_after_holm() -> None:
    rng = np.random.default_rng(2)
    base = (rng.random(900) < 0.6).astype(float)
    sources = np.repeat(["a", "b", "c"], 300)
    cand = base.copy()
    cand[np.flatnonzero((sources == "c") & (base == 1))[:60]] = 0.0
    result = compare(long(base, cand, sources), "base", "cand")
    flagged = {s["source"]: s["regression"] for s in result.by_source}
    assert flagged == {"a": False, "b": False, "c": True} and result.regression


def test_false_positive_rate_is_calibrated() -> None:
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(500):
        ability = rng.random(300)
        base = (rng.random(300) < ability).astype(float)
        cand = (rng.random(300) < ability).astype(float)  # same model, independent noise
        # a false positive is a verdict either way: the two-sided size of the test at alpha
        hits += (
            compare(long(base, cand), "base", "cand", alpha=0.05).regression
            or compare(long(cand, base), "base", "cand", alpha=0.05).regression
        )
    assert 0.02 <= hits / 500 <= 0.08, hits / 500


@pytest.mark.parametrize(
    ("n", "discordant", "drop", "alpha", "max_drop"),
    [(30, 0.3, 0.1, 0.05, 0.0), (40, 0.2, 0.15, 0.05, 0.02), (25, 0.5, 0.0, 0.1, 0.0), (60, 0.1, 0.05, 0.01, 0.0)],
)
def test_mcnemar_power_is_the_sum_over_outcomes_that_the_test_flags(
    n: int, discordant: float, drop: float, alpha: float, max_drop: float
) -> None:
    """Every outcome (d samples differ, w of them losses) weighed by its probability, flagged where scipy's
    exact binomial test gives p < alpha and the observed drop exceeds max_drop: compare's overall rule."""
    from scipy.stats import binom

    worse = (discordant + drop) / (2 * discordant)
    flagged = sum(
        binom.pmf(d, n, discordant) * binom.pmf(w, d, worse)
        for d in range(1, n + 1)
        for w in range(d + 1)
        if (2 * w - d) / n > max_drop and binomtest(d - w, d, 0.5).pvalue < alpha
    )
    assert mcnemar_power(n, discordant, drop, alpha, max_drop) == pytest.approx(flagged, abs=1e-9)


def test_a_drop_of_the_detectable_size_is_flagged_as_often_as_the_power_says() -> None:
    """Simulated pairs, 12% of 200 differing, the candidate's true drop `detectable_drop`: compare flags 80% of
    them (600 draws: within 5 points, three standard errors); half that drop far less often. A handful of
    samples detects nothing."""
    n, discordant = 200, 0.12
    drop = detectable_drop(n, discordant)
    assert drop is not None and 0.03 < drop < discordant
    rng = np.random.default_rng(11)

    def flagged(true_drop: float) -> float:
        hits = 0
        for _ in range(600):
            differ = rng.random(n) < discordant
            loss = rng.random(n) < (discordant + true_drop) / (2 * discordant)
            both = (rng.random(n) < 0.5).astype(float)
            base = np.where(differ, loss.astype(float), both)
            cand = np.where(differ, 1.0 - base, both)
            hits += compare(long(base, cand), "base", "cand").regression
        return hits / 600

    assert abs(flagged(drop) - POWER) < 0.05
    assert flagged(drop / 2) < 0.45
    assert detectable_drop(5, 0.5) is None
    assert detectable_drop(n, discordant, max_drop=0.1) > 0.1 > drop


def with_metrics(frame: pd.DataFrame, metrics: np.ndarray) -> pd.DataFrame:
    return frame.assign(metric=np.r_[metrics, metrics])


def test_an_accuracy_and_a_loss_are_not_pooled_into_one_delta() -> None:
    """40 losses 0.3 worse (negated: higher is better) and 40 accuracies 10 points better: no overall test, a
    verdict per source; binary metrics of different names still pool (a proportion of samples right)."""
    rng = np.random.default_rng(6)
    loss = -rng.uniform(1.5, 2.5, 40)
    right = np.r_[np.zeros(4), (rng.random(36) < 0.5)].astype(float)
    base, cand = np.r_[loss, right], np.r_[loss - 0.3, np.r_[np.ones(4), right[4:]]]
    sources, metrics = np.repeat(["lm", "qa"], 40), np.repeat(["loss", "acc"], 40)
    result = compare(with_metrics(long(base, cand, sources), metrics), "base", "cand")
    assert result.overall is None and result.unpooled_metrics == ["acc", "loss"]
    by_source = {s["source"]: s for s in result.by_source}
    assert by_source["lm"]["regression"] and not by_source["qa"]["regression"] and result.regression
    document = result.as_dict()
    assert [document[k] for k in ("delta", "ci_low", "ci_high", "p_value", "test")] == [None] * 5
    assert (document["n_shared"], document["n_improved"], document["n_worsened"]) == (80, 4, 40)
    assert "acc, loss, whose units differ" in str(result.unpooled_note())
    with pytest.raises(NotComparableError, match="measured in acc, loss, whose units differ"):
        compare_many(with_metrics(long(base, cand, sources), metrics), ["base", "cand"])
    binary = with_metrics(long(right, 1 - right), np.repeat(["acc", "exact_match"], 20))
    pooled = compare(binary, "base", "cand")
    assert pooled.overall is not None and pooled.overall.n_shared == 40 and pooled.unpooled_note() is None


def test_disjoint_samples_are_an_error_not_a_p_value() -> None:
    scores = pd.DataFrame(
        {
            "sample_id": [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)],
            "model": ["x"] * 50 + ["y"] * 50,
            "value": 1.0,
        }
    )
    with pytest.raises(NotComparableError, match="share 0 measured samples"):
        compare(scores, "x", "y")
    with pytest.raises(NotComparableError):
        compare_many(scores, ["x", "y"])


def test_cli_exit_codes_json_and_junit(cli, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    base = (rng.random(400) < 0.7).astype(int)
    worse = base.copy()
    worse[np.flatnonzero(base == 1)[:40]] = 0
    matrix = tmp_path / "m.csv"
    pd.DataFrame({"id": [f"q{i}" for i in range(400)], "base": base, "same": base, "worse": worse}).to_csv(
        matrix, index=False
    )
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    same = cli("compare", "base", "same", "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["regression"] is False
    junit = tmp_path / "out.xml"
    bad = cli("compare", "base", "worse", "--json", "--junit", str(junit))
    document = json.loads(bad.stdout)
    assert bad.returncode == 1 and document["regression"] and document["n_shared"] == 400
    assert {"base", "candidate", "n_shared", "delta", "ci_low", "ci_high", "p_value", "by_source"} <= set(document)
    assert 'failures="2"' in junit.read_text() and f"<system-out>{document['power']}</system-out>" in junit.read_text()
    text = cli("compare", "base", "worse")  # overall and per source (one source: the same numbers), with the CI
    interval = f"delta {document['delta']:+.4f} [{document['ci_low']:+.4f}, {document['ci_high']:+.4f}]"
    assert text.returncode == 1 and text.stdout.startswith(f"worse vs base: REGRESSION: {interval}, p = ")
    assert f"\n  m: {interval}, p(Holm) = " in text.stdout
    drop = detectable_drop(400, 40 / 400)  # 40 samples differ, all losses
    assert document["detectable_drop"] == drop
    power = f"power: on 400 shared samples, 10.0% of them differing, the overall test flags a true drop of {drop:.2%}"
    assert power in text.stdout and document["power"].startswith(power)
    nobody = cli("compare", "base", "nobody")
    assert nobody.returncode == 2 and "'nobody' has no measurements here; measured: base, same, worse" in nobody.stderr
    prefs = tmp_path / "prefs.csv"
    prefs.write_text("model_a,model_b,winner\nbase,judged,b\n")
    cli("import", "pairwise", str(prefs), "--source", "arena", check=True)
    judged = cli("compare", "base", "judged")
    assert (
        judged.returncode == 2
        and "'judged' has no measurements here (only compared with other models:" in judged.stderr
    )
    matrix_json = cli("compare", "base", "same", "worse", "--alpha", "0.01", "--json")
    pairs = json.loads(matrix_json.stdout)["pairs"]
    assert [p["significant"] for p in pairs] == [p["p_holm"] < 0.01 for p in pairs] == [False, True, True]
    for gate in (["--junit", str(tmp_path / "m.xml")], ["--html", str(tmp_path / "m.html")], ["--max-drop", "0.1"]):
        refused = cli("compare", "base", "same", "worse", *gate)
        assert refused.returncode == 2 and "judge one CANDIDATE against one BASE" in refused.stderr
    assert not (tmp_path / "m.xml").exists() and not (tmp_path / "m.html").exists()
    itself = cli("compare", "base", "base")
    assert itself.returncode == 2 and "'base' compared with itself" in itself.stderr


def test_compare_many_keeps_the_pairs_it_can_compare(cli, tmp_path: Path) -> None:
    """A model measured on few samples (a sparse pool's usual case) is left out of the pairs it cannot make,
    named, and Holm corrects over the pairs compared (the whole matrix was an error)."""
    rng = np.random.default_rng(3)
    base = (rng.random(200) < 0.6).astype(float)
    worse = np.where(np.arange(200) < 30, 0.0, base)
    few = np.where(np.arange(200) < 10, base, np.nan)
    matrix = tmp_path / "m.csv"
    pd.DataFrame({"id": [f"q{i}" for i in range(200)], "base": base, "worse": worse, "few": few}).to_csv(
        matrix, index=False
    )
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    done = cli("compare", "base", "worse", "few", "--json", check=True)
    document = json.loads(done.stdout)
    [pair] = document["pairs"]
    alone = compare_many(Pool(tmp_path / "pool").measurements(), ["base", "worse"]).iloc[0]
    assert (pair["base"], pair["candidate"], pair["n_shared"]) == ("base", "worse", 200)
    assert pair["p_holm"] == pair["p_value"] == alone["p_holm"] and pair["delta"] == alone["delta"]
    reasons = [f"{a} and few share 10 samples (minimum 30)" for a in ("base", "worse")]
    assert [(p["candidate"], p["n_shared"], p["reason"]) for p in document["not_compared"]] == [
        ("few", 10, reason) for reason in reasons
    ]
    assert all(f"warning: not compared: {reason}" in done.stderr for reason in reasons)
    text = cli("compare", "base", "worse", "few", check=True).stdout.splitlines()
    assert len(text) == 2 and "reason" not in text[0] and text[1].split()[:3] == ["base", "worse", "200"]
    nothing = cli("compare", "base", "few")
    assert nothing.returncode == 2 and "share 10 measured samples (minimum 30)" in nothing.stderr


def test_cli_with_no_overall_delta(cli, tmp_path: Path) -> None:
    """A loss source and an accuracy source: per-source verdicts in the text, JSON, JUnit and HTML."""
    rng = np.random.default_rng(7)
    loss = rng.uniform(1.5, 2.5, 40)
    right = (rng.random(40) < 0.6).astype(int)
    for name, table, metric in (("l.csv", (loss, loss + 0.3), "loss"), ("a.csv", (right, right), "acc")):
        frame = pd.DataFrame({"id": [f"{metric}{i}" for i in range(40)], "base": table[0], "cand": table[1]})
        frame.to_csv(tmp_path / name, index=False)
        cli("import", "matrix", str(tmp_path / name), "--source", metric, "--metric", metric, check=True)
    junit, page = tmp_path / "c.xml", tmp_path / "c.html"
    done = cli("compare", "base", "cand", "--json", "--junit", str(junit), "--html", str(page))
    document = json.loads(done.stdout)
    assert done.returncode == 1 and document["regression"] and document["delta"] is None
    note = "no overall delta: the shared samples are measured in acc, loss, whose units differ"
    assert document["warnings"][0].startswith(note) and f"warning: {note}" in done.stderr
    assert 'tests="2" failures="1"' in junit.read_text() and 'name="overall"' not in junit.read_text()
    assert "no overall delta, 80 shared samples (the verdict is the sources')." in page.read_text()
    text = cli("compare", "base", "cand")
    assert text.stdout.startswith("cand vs base: REGRESSION: no overall delta (acc, loss are not pooled) on 80 shared")
    assert "\n  loss: delta -0.3000 [" in text.stdout


def test_compare_warns_when_the_models_ran_with_different_prompt_settings(cli, tmp_path: Path) -> None:
    cli("add", "starter", "capitals", check=True)
    run = ["run", "--model", "baseline-random", "--limit", "40", "--no-progress", "--name"]
    cli(*run, "base", check=True)
    cli(*run, "same", "--seed", "1", check=True)
    cli(*run, "shots", "--num-fewshot", "3", check=True)
    alike = cli("compare", "base", "same", "--min-shared", "1", "--json")
    assert json.loads(alike.stdout)["warnings"] == [] and "warning" not in alike.stderr
    page = tmp_path / "c.html"
    differ = cli("compare", "base", "shots", "--min-shared", "1", "--json", "--html", str(page))
    note = "the models were run with different prompt settings (0-shot: base; 3-shot: shots)"
    assert json.loads(differ.stdout)["warnings"] == [note]
    assert f"warning: {note}: the differences mix prompt effects with model effects" in differ.stderr
    assert f'<p class="warn">Warning: {note}.</p>' in page.read_text()
    many = cli("compare", "base", "same", "shots", "--min-shared", "1", "--json")
    assert json.loads(many.stdout)["warnings"] == [
        "the models were run with different prompt settings (0-shot: base, same; 3-shot: shots)"
    ]
