"""The audit's item discrimination against scipy's Spearman correlation and Benjamini-Hochberg, a hand-computed
case, planted wrong answer keys, and the `audit` command on ChemBench."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import false_discovery_control, spearmanr

import aggregators
from aggregators.audit import discrimination
from harness.pool import Pool
from harness.reporting import build_report, ranking_inputs
from tasks.importers.matrix import import_matrix


def test_discrimination_is_scipys_one_sided_spearman() -> None:
    """Sparse, with ties in binary and ordinal values: r and p as scipy's `spearmanr(alternative="less")` on
    each sample's models, q as `false_discovery_control`; samples on fewer than 10 models, or whose values do not
    differ, are not tested."""
    rng = np.random.default_rng(0)
    models = [f"m{i}" for i in range(30)]
    scores = pd.Series(rng.normal(size=30), index=models)
    rows = [
        (f"s{s}", models[m], float(rng.random() < 0.5) if s % 2 else float(rng.integers(0, 4)))
        for s in range(200)
        for m in rng.choice(30, rng.integers(2, 30), replace=False)
    ]
    rows += [("same", m, 1.0) for m in models]
    frame = pd.DataFrame(rows, columns=["sample_id", "model", "value"])
    table = discrimination(frame, scores, min_models=10)
    counts = frame.groupby("sample_id")["value"].agg(["size", "nunique"])
    assert set(table["sample_id"]) == set(counts.index[(counts["size"] >= 10) & (counts["nunique"] > 1)])
    for row in table.itertuples():
        shown = frame[frame["sample_id"] == row.sample_id]
        expected = spearmanr(shown["value"], scores[shown["model"]].to_numpy(), alternative="less")
        assert (row.r, row.p_value) == pytest.approx((expected.statistic, expected.pvalue), abs=1e-12)
    assert table["q_value"].to_numpy() == pytest.approx(false_discovery_control(table["p_value"]))
    assert table["p_value"].is_monotonic_increasing
    with pytest.raises(ValueError, match="at least 3 models"):
        discrimination(frame, scores, min_models=2)


def test_one_weak_model_alone_right_is_not_a_discovery() -> None:
    """22 models, only the weakest right: by hand, Spearman's r = -sqrt(115.5 / 885.5) (the 0/1 ranks' squares
    sum to 21 x 0.25 + 10.5^2, the models' to 22 (22^2 - 1) / 12), and p near the exact 1/22."""
    models = [f"m{i:02d}" for i in range(22)]
    scores = pd.Series(np.arange(22.0), index=models)
    frame = pd.DataFrame({"sample_id": "q", "model": models, "value": [1.0] + [0.0] * 21})
    (row,) = discrimination(frame, scores).itertuples()
    assert row.r == pytest.approx(-np.sqrt(115.5 / 885.5)) and 0.03 < row.p_value < 0.07


def test_planted_wrong_keys_top_the_audit(tmp_path: Path) -> None:
    """200 Rasch models, 300 questions, 30% of the measurements kept; 15 questions' keys inverted (each model's
    outcome flipped): they are the 15 most suspect, and every sample flagged at a 10% false discovery rate is one;
    a report of the pool says how many are flagged."""
    rng = np.random.default_rng(0)
    ability, difficulty = rng.normal(0, 1, 200), rng.normal(0, 1, 300)
    correct = (rng.random((200, 300)) < 1 / (1 + np.exp(difficulty - ability[:, None]))).astype(float)
    planted = rng.choice(300, 15, replace=False)
    correct[:, planted] = 1 - correct[:, planted]
    model, sample = np.nonzero(rng.random((200, 300)) < 0.3)
    frame = pd.DataFrame(
        {"sample_id": [f"s{s}" for s in sample], "model": model.astype(str), "value": correct[model, sample]}
    )
    board = aggregators.rank(frame)
    table = discrimination(frame, board.set_index("model")["score"])
    wrong = {f"s{s}" for s in planted}
    assert set(table["sample_id"].head(15)) == wrong
    flagged = set(table.loc[table["q_value"] <= 0.1, "sample_id"])
    assert flagged and flagged <= wrong
    matrix = frame.pivot(index="sample_id", columns="model", values="value")
    matrix.to_csv(tmp_path / "planted.csv")
    pool = Pool(tmp_path / "pool", create=True)
    pool.write(import_matrix(tmp_path / "planted.csv", "planted"))
    scores, _ = ranking_inputs(pool, None)
    notes = build_report(pool, aggregators.rank(scores), scores, title="t", bootstrap=0).diagnostics["notes"]
    said = f"{len(flagged)} of {len(table)} samples tested (measured on enough models, values that differ) run"
    assert [note for note in notes if note.startswith(said)] == [
        f"{said} against the ranking at a false discovery rate of 0.1: `poolbench audit` lists them"
    ]


def test_audit_command_on_chembench_with_planted_keys(cli, shared_data: Path, tmp_path: Path) -> None:
    """ChemBench's 22 real models, 10 questions (7-15 of 22 right) with their outcomes flipped: at least 4 of
    them among the 10 most suspect; with 22 models none reaches q <= 0.1 (so --out writes a header alone, which
    --exclude-samples takes)."""
    matrix = pd.read_csv(shared_data / "chembench_binary" / "binary_matrix.csv", index_col=0)
    right = matrix.sum(axis=1)
    planted = np.random.default_rng(1).choice(matrix.index[(right >= 7) & (right <= 15)], 10, replace=False)
    matrix.loc[planted] = 1 - matrix.loc[planted]
    path = tmp_path / "flipped.csv"
    matrix.to_csv(path)
    cli("import", "matrix", str(path), "--source", "chembench", check=True)
    out = tmp_path / "flagged.csv"
    done = cli("audit", "--json", "--out", str(out), check=True)
    report = json.loads(done.stdout)
    assert (report["method"], report["min_models"], report["fdr"]) == ("pl-conditional", 10, 0.1)
    assert report["tested"] == len(report["samples"]) == int(((right > 0) & (right < 22)).sum())
    top = [s["source_id"] for s in report["samples"][:10]]
    assert len(set(top) & {str(p) for p in planted}) >= 4 and report["samples"][0]["n_models"] == 22
    assert report["flagged"] == sum(s["q_value"] <= 0.1 for s in report["samples"]) == len(pd.read_csv(out))
    assert f"{report['flagged']} flagged samples written to {out}" in done.stderr
    cli("rank", "--exclude-samples", str(out), check=True)
    text = cli("audit", "--top", "3", "--method", "mean", check=True)
    assert text.stdout.count("chembench") == 3 and "at a false discovery rate of 0.1" in text.stderr
    few = cli("audit", "--min-models", "23")
    assert few.returncode == 2 and "no sample is measured on 23 or more ranked models" in few.stderr
