"""ONEBench's robustness experiment: how well does each method's ranking survive removed measurements?

    python bench/robustness.py [--seeds 5] [--part all|removal|pool-size] [--out-dir docs]

Data: ChemBench (22 models x 2,854 questions, complete, ../shared/data) and synthetic Rasch data (30 models x
3,000 and x 30,000 samples, complete, true abilities known). Removal, per model (5 seeds): MCAR (at random),
or selection-biased (strong models keep mostly hard samples, weak models easy ones; on ChemBench, ability and
difficulty are the logits of the full data's accuracy per model and per question). For each method, Kendall tau against
  * `own`: the method's own full-data ranking (ONEBench's measure),
  * `accuracy`: the full-data accuracy ranking,
  * `truth`: the true abilities (synthetic only).
Beside the methods, `random-difficulty`: the Rasch model fitted by marginal maximum likelihood, each sample's
difficulty drawn from N(0, sigma^2) and integrated out (sigma fitted too). It uses every measurement, those of
samples seen by one model included, so it is the model-based answer to random sparsity; but it assumes that
which samples a model saw says nothing about their difficulty, which selection-biased sparsity breaks. It is
here to show what a method could reach; `rank` does not offer it. And a ceiling: `known-difficulty`, the
maximum-likelihood Rasch ability of each model given its kept measurements and every sample's difficulty as
known (synthetic: the true difficulty; ChemBench: the logit of the question's full-data accuracy, which also
saw the removed measurements). No method knows this; it shows about how much a sample-level method could
gain over the mean (a practical ceiling, not a bound).
Prints one table per (data, removal, reference), the mean over 50-95% removed per method, and writes
robustness.png.

Pool size (`--part pool-size`): 95% removed at random from synthetic sets of ChemBench's shape with 22 to
1,000 models; tau by number of models, and pl-conditional minus mean paired by seed; robustness_pool_size.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import vl_convert
from scipy.optimize import minimize
from scipy.special import expit, log_expit, logit, logsumexp
from scipy.stats import kendalltau

import aggregators
from aggregators.simulate import rasch, selection_bias, thin

LEVELS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
METHODS = ("pl", "pl-conditional", "mean", "bt", "elo")
RANDOM_DIFFICULTY = "random-difficulty"
CEILING = "known-difficulty"
COLUMNS = (*METHODS, RANDOM_DIFFICULTY, CEILING)
#: One colour per method; the ceiling is grey (and dashed).
PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d9d9d"]
#: Gauss-Hermite nodes and weights (probabilists') for integrating a difficulty out: abilities within 0.003 of
#: 81 nodes' on complete 30-model data, within 0.0004 on ChemBench complete or half removed.
NODES, NODE_WEIGHTS = np.polynomial.hermite_e.hermegauss(21)
#: Samples of the synthetic sets (30 models each): at 95% removed, 150 or 1,500 measurements per model.
SYNTHETIC_SAMPLES = (3_000, 30_000)
#: The pool-size experiment: this many models, each on 5% of ChemBench's number of samples (about 143).
POOL_SIZES = (22, 50, 100, 200, 500, 1_000)
CHEMBENCH_SAMPLES = 2_854
POOL_SIZE_MISSING = 0.95
#: Not random-difficulty: its full-data fit at 1,000 models takes minutes.
POOL_COLUMNS = ("pl-conditional", "pl", "mean", CEILING)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def chembench() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The long frame, each row's sample difficulty, and each row's selection propensity for biased removal."""
    wide = pd.read_csv(SHARED / "chembench_binary" / "binary_matrix.csv", index_col=0)
    frame = wide.stack().rename("value").reset_index()
    frame.columns = ["sample_id", "model", "value"]
    frame["sample_id"] = frame["sample_id"].astype(str)
    ability = pd.Series(logit(np.clip(wide.mean(axis=0), 0.01, 0.99)), index=wide.columns)
    difficulty = -logit(np.clip(frame.groupby("sample_id")["value"].transform("mean"), 0.01, 0.99)).to_numpy()
    return frame, difficulty, selection_bias(frame, ability, difficulty)


def scores(frame: pd.DataFrame, method: str) -> pd.Series:
    return aggregators.rank(frame, method=method, alpha=0.01).set_index("model")["score"]


def known_difficulty_scores(frame: pd.DataFrame, difficulty: np.ndarray) -> pd.Series:
    """Per model, the ability t solving sum over its rows of sigmoid(t - difficulty) = its number correct
    (the Rasch MLE with difficulties known), by bisection on [-30, 30]; `difficulty` is per row of `frame`."""
    model, names = pd.factorize(frame["model"])
    correct = np.bincount(model, frame["value"].to_numpy(dtype=float))
    low, high = np.full(len(names), -30.0), np.full(len(names), 30.0)
    for _ in range(60):
        middle = (low + high) / 2
        too_high = np.bincount(model, expit(middle[model] - difficulty)) > correct
        high = np.where(too_high, middle, high)
        low = np.where(too_high, low, middle)
    return pd.Series((low + high) / 2, index=names)


def random_difficulty_scores(frame: pd.DataFrame, alpha: float = 0.01) -> pd.Series:
    """Centered Rasch abilities by marginal maximum likelihood, with `alpha * ||theta||^2` added (as `rank`'s
    prior): P(correct) = sigmoid(theta_model - d), each sample's d ~ N(0, sigma^2) integrated out by
    Gauss-Hermite quadrature, sigma fitted with the abilities by L-BFGS."""
    model, names = pd.factorize(frame["model"])
    sample, _ = pd.factorize(frame["sample_id"])
    value = frame["value"].to_numpy(dtype=float)
    sign, n_samples = 2 * value - 1, sample.max() + 1
    log_weight = np.log(NODE_WEIGHTS / NODE_WEIGHTS.sum())

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta, sigma = params[:-1], np.exp(params[-1])
        margin = theta[model]
        # log P(a sample's outcomes | its difficulty = sigma * node), per sample and node
        joint = log_weight + np.column_stack(
            [np.bincount(sample, log_expit(sign * (margin - sigma * node)), minlength=n_samples) for node in NODES]
        )
        log_marginal = logsumexp(joint, axis=1)
        posterior = np.exp(joint - log_marginal[:, None])
        grad_theta, grad_log_sigma = 2 * alpha * theta, 0.0
        # the sigmoids again, node by node, instead of a rows x nodes array kept from above: memory O(rows)
        for q, node in enumerate(NODES):
            residual = (value - expit(margin - sigma * node)) * posterior[sample, q]
            grad_theta -= np.bincount(model, residual, minlength=len(names))
            grad_log_sigma += sigma * node * residual.sum()
        return -log_marginal.sum() + alpha * theta @ theta, np.append(grad_theta, grad_log_sigma)

    theta = minimize(objective, np.zeros(len(names) + 1), jac=True, method="L-BFGS-B").x[:-1]
    return pd.Series(theta - theta.mean(), index=names)


def tau(a: pd.Series, b: pd.Series) -> float:
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    return float(kendalltau(joined.iloc[:, 0], joined.iloc[:, 1]).statistic)


def experiment(
    data: str,
    frame: pd.DataFrame,
    difficulty: np.ndarray,
    truth: pd.Series | None,
    seeds: int,
    propensity: np.ndarray | None = None,
    levels: tuple[float, ...] = LEVELS,
    columns: tuple[str, ...] = COLUMNS,
) -> list[dict[str, object]]:
    """Tau rows for every removal (MCAR, and biased when `propensity` is given), level, seed, column and
    reference; `difficulty` and `propensity` are per row of `frame`."""
    frame = frame.reset_index(drop=True)

    def fitted(sparse: pd.DataFrame, method: str) -> pd.Series:
        if method == CEILING:
            return known_difficulty_scores(sparse, difficulty[sparse.index.to_numpy()])
        if method == RANDOM_DIFFICULTY:
            return random_difficulty_scores(sparse)
        return scores(sparse, method)

    references: dict[str, dict[str, pd.Series]] = {
        "own": {m: fitted(frame, m) for m in columns},
        "accuracy": dict.fromkeys(columns, frame.groupby("model")["value"].mean()),
    }
    if truth is not None:
        references["truth"] = dict.fromkeys(columns, truth)
    removals = [("MCAR", None)] + ([("biased", propensity)] if propensity is not None else [])
    n_models = frame["model"].nunique()
    rows = []
    for removal, weight in removals:
        for level in levels:
            for seed in range(seeds if level else 1):
                sparse = thin(frame, level, np.random.default_rng(seed), weight)
                for method in columns:
                    estimate = fitted(sparse, method)
                    for reference, by_method in references.items():
                        rows.append(
                            {
                                "data": data,
                                "models": n_models,
                                "removal": removal,
                                "reference": reference,
                                "missing": level,
                                "seed": seed,
                                "method": method,
                                "tau": tau(estimate, by_method[method]),
                            }
                        )
    return rows


def pool_size_experiment(seeds: int) -> list[dict[str, object]]:
    """95% removed at random from synthetic sets of ChemBench's shape (2,854 samples, a similar spread of
    difficulty) with ever more models: from how many models on does a sample-level method beat the mean?"""
    rows = []
    for n_models in POOL_SIZES:
        frame, truth, difficulty = rasch(n_models=n_models, n_samples=CHEMBENCH_SAMPLES)
        name = f"synthetic {n_models:,} x {CHEMBENCH_SAMPLES:,}"
        rows += experiment(name, frame, difficulty, truth, seeds, levels=(POOL_SIZE_MISSING,), columns=POOL_COLUMNS)
    return rows


def removal_experiment(seeds: int) -> list[dict[str, object]]:
    """Every level of removal, MCAR and biased, on ChemBench and the synthetic sets."""
    rows = []
    if SHARED.is_dir():
        chem, chem_difficulty, chem_propensity = chembench()
        rows += experiment("ChemBench", chem, chem_difficulty, None, seeds, chem_propensity)
    for n_samples in SYNTHETIC_SAMPLES:
        frame, truth, difficulty = rasch(n_samples=n_samples)
        name = f"synthetic 30 x {n_samples:,}"
        rows += experiment(name, frame, difficulty, truth, seeds, selection_bias(frame, truth, difficulty))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--part", choices=("all", "removal", "pool-size"), default="all")
    parser.add_argument("--out-dir", type=Path, default=Path("docs"), help="where the PNGs go")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", None)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.part in ("all", "removal"):
        report_removal(pd.DataFrame(removal_experiment(args.seeds)), args.out_dir / "robustness.png")
    if args.part in ("all", "pool-size"):
        report_pool_size(pd.DataFrame(pool_size_experiment(args.seeds)), args.out_dir / "robustness_pool_size.png")


def report_removal(results: pd.DataFrame, png: Path) -> None:
    """Print the tau table per (data, removal, reference, level) and the 50-95% means; plot tau by level."""
    keys = ["data", "removal", "reference", "missing"]
    table = results.groupby(keys + ["method"])["tau"].mean().unstack("method")[list(COLUMNS)]
    print(table.round(3).to_string())
    middle = results[results["missing"].between(0.5, 0.95)]
    print("\nmean tau over 50-95% removed, MCAR and biased:")
    print(middle.groupby(["data", "reference", "method"])["tau"].mean().unstack("method")[list(COLUMNS)].round(3))
    plotted = table.stack().rename("tau").reset_index()
    plotted = plotted[plotted["reference"] == np.where(plotted["data"].str.startswith("synthetic"), "truth", "own")]
    chart = (
        line_chart(
            plotted, alt.X("missing:Q", title="fraction of measurements removed", scale=alt.Scale(domain=[0, 1]))
        )
        .properties(width=300, height=220)
        .facet(
            row=alt.Row("removal:N", title=None),
            column=alt.Column("data:N", title="ChemBench: tau vs own full-data ranking; synthetic: vs true ability"),
        )
    )
    save(chart, png)


def report_pool_size(results: pd.DataFrame, png: Path) -> None:
    """Print tau by number of models (mean and standard error over seeds, and pl-conditional minus mean,
    paired by seed); plot tau against the true abilities by number of models."""
    results = results[results["reference"] != "accuracy"]
    by = ["reference", "models", "method"]
    summary = results.groupby(by)["tau"].agg(["mean", "sem"]).round(3)
    print(f"\n{POOL_SIZE_MISSING:.0%} removed at random, {CHEMBENCH_SAMPLES:,} samples, mean (sem) over seeds:")
    cells = summary["mean"].map("{:.3f}".format) + " (" + summary["sem"].map("{:.3f}".format) + ")"
    print(cells.unstack("method")[list(POOL_COLUMNS)].to_string())
    paired = results.pivot_table(index=["reference", "models", "seed"], columns="method", values="tau")
    gain = (paired["pl-conditional"] - paired["mean"]).groupby(["reference", "models"]).agg(["mean", "sem"])
    print("\npl-conditional minus mean, paired by seed:")
    print(gain.round(3).unstack("reference").to_string())
    truth = results[results["reference"] == "truth"].groupby(["models", "method"])["tau"].mean().rename("tau")
    chart = line_chart(
        truth.reset_index(),
        alt.X(
            "models:Q", title="models in the pool", scale=alt.Scale(type="log", domain=[POOL_SIZES[0], POOL_SIZES[-1]])
        ),
    ).properties(
        width=420,
        height=260,
        title=f"{POOL_SIZE_MISSING:.0%} of each model's measurements removed at random: tau vs true ability",
    )
    save(chart, png)


def line_chart(plotted: pd.DataFrame, x: alt.X) -> alt.Chart:
    """Tau per method (one colour each, the same in every plot; the ceiling dashed grey) against `x`."""
    plotted = plotted.assign(ceiling=plotted["method"] == CEILING)
    present = set(plotted["method"])
    shown = [(column, colour) for column, colour in zip(COLUMNS, PALETTE, strict=True) if column in present]
    return (
        alt.Chart(plotted)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("tau:Q", title="Kendall tau", scale=alt.Scale(zero=False)),
            color=alt.Color("method:N", scale=alt.Scale(domain=[c for c, _ in shown], range=[c for _, c in shown])),
            strokeDash=alt.StrokeDash("ceiling:N", legend=None),
        )
    )


def save(chart: alt.TopLevelMixin, png: Path) -> None:
    png.write_bytes(vl_convert.vegalite_to_png(chart.to_dict(), scale=1.5))
    print(f"plot: {png}")


if __name__ == "__main__":
    main()
