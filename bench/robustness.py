"""ONEBench's robustness experiment: how well does each method's ranking survive removed measurements?

    python bench/robustness.py [--seeds 5] [--png docs/robustness.png]

For 0-99% of measurements removed (per model, at random; 5 seeds), Kendall tau of each method's ranking
(pl, mean, bt, elo) against:
  * ChemBench (22 models x 2,854 questions, ../shared/data): the method's own full-data ranking;
  * synthetic Rasch data where strong models mostly see hard samples (selection-biased sparsity, the case
    where the mean fails): the true abilities.
Prints the table and writes a PNG plot (Vega-Lite through vl-convert).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import vl_convert
from scipy.stats import kendalltau

import aggregators

LEVELS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
METHODS = ("pl", "mean", "bt", "elo")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def chembench() -> pd.DataFrame:
    wide = pd.read_csv(SHARED / "chembench_binary" / "binary_matrix.csv", index_col=0)
    frame = wide.stack().rename("value").reset_index()
    frame.columns = ["sample_id", "model", "value"]
    frame["sample_id"] = frame["sample_id"].astype(str)
    return frame


def synthetic(seed: int = 0, n_models: int = 30, n_samples: int = 3000) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """Rasch data; returns the long frame, true abilities, and each entry's selection propensity."""
    rng = np.random.default_rng(seed)
    ability = np.sort(rng.normal(0, 1.2, n_models))
    difficulty = rng.normal(0, 1.5, n_samples)
    correct = rng.random((n_samples, n_models)) < 1 / (1 + np.exp(difficulty[:, None] - ability[None, :]))
    models = np.array([f"m{i:02d}" for i in range(n_models)])
    frame = pd.DataFrame(
        {
            "sample_id": np.repeat(np.arange(n_samples).astype(str), n_models),
            "model": np.tile(models, n_samples),
            "value": correct.ravel().astype(float),
        }
    )
    # strong models mostly see hard samples, weak models easy ones
    propensity = np.exp(
        2.0 * np.tile(ability, n_samples) / ability.std() * np.repeat(difficulty, n_models) / difficulty.std()
    )
    return frame, pd.Series(ability, index=models), propensity


def thin(
    frame: pd.DataFrame, missing: float, rng: np.random.Generator, weight: np.ndarray | None = None
) -> pd.DataFrame:
    """Keep about (1 - missing) of each model's measurements, at random (weighted by `weight` if given)."""
    if missing == 0:
        return frame
    keep = np.zeros(len(frame), dtype=bool)
    for _, rows in frame.groupby("model").indices.items():
        k = max(1, int(round(len(rows) * (1 - missing))))
        p = None if weight is None else weight[rows] / weight[rows].sum()
        keep[rng.choice(rows, size=k, replace=False, p=p)] = True
    return frame[keep]


def scores(frame: pd.DataFrame, method: str) -> pd.Series:
    board = aggregators.rank(frame, method=method, alpha=0.01)
    return board.set_index("model")["score"]


def tau(a: pd.Series, b: pd.Series) -> float:
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    return float(kendalltau(joined.iloc[:, 0], joined.iloc[:, 1]).statistic)


def experiment(
    name: str, frame: pd.DataFrame, reference: dict[str, pd.Series], seeds: int, weight: np.ndarray | None = None
) -> list[dict[str, object]]:
    rows = []
    for level in LEVELS:
        for seed in range(seeds if level else 1):
            sparse = thin(frame, level, np.random.default_rng(seed), weight)
            for method in METHODS:
                rows.append(
                    {
                        "data": name,
                        "missing": level,
                        "seed": seed,
                        "method": method,
                        "tau": tau(scores(sparse, method), reference[method]),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--png", type=Path, default=Path("docs/robustness.png"))
    args = parser.parse_args()
    rows = []
    if SHARED.is_dir():
        chem = chembench()
        full = {m: scores(chem, m) for m in METHODS}
        rows += experiment("ChemBench, MCAR (tau vs own full-data ranking)", chem, full, args.seeds)
    frame, truth, propensity = synthetic()
    rows += experiment(
        "synthetic, strong models see hard samples (tau vs true ability)",
        frame,
        {m: truth for m in METHODS},
        args.seeds,
        propensity,
    )
    table = pd.DataFrame(rows).groupby(["data", "missing", "method"])["tau"].mean().unstack("method")
    pd.set_option("display.width", 160)
    print(table.round(3).to_string())
    long = table.stack().rename("tau").reset_index()
    chart = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("missing:Q", title="fraction of measurements removed", scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("tau:Q", title="Kendall tau", scale=alt.Scale(zero=False)),
            color="method:N",
        )
        .properties(width=360, height=240)
        .facet(column=alt.Column("data:N", title=None))
    )
    args.png.parent.mkdir(parents=True, exist_ok=True)
    args.png.write_bytes(vl_convert.vegalite_to_png(chart.to_dict(), scale=1.5))
    print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
