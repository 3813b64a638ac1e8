"""Paired, sample-level comparison of models: only the samples both were measured on count.

Binary metrics: the mean difference with Bonett and Price's adjusted Wald 95% CI for paired proportions
(Statistics in Medicine, 2012: a plain Wald interval covers the truth far less often than 95% when few pairs
differ, and has zero width when none do) and the exact McNemar p-value (a two-sided binomial test on the
discordant pairs). Numeric metrics: the paired mean difference with a seeded paired
bootstrap CI and the Wilcoxon signed-rank p-value. Per source the same, Holm-corrected across sources.
Overall: all shared samples pooled, unless that would mix units (several metrics, not all of them 0/1: an
accuracy and a loss); then there is no overall test and the verdict is the sources'.
A regression: the candidate is worse than the base by more than `max_drop` with p < `alpha`, overall or in
any source after correction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binom, binomtest, norm, wilcoxon

#: The power `detectable_drop` is for (the usual planning value).
POWER = 0.8


class NotComparableError(ValueError):
    """Too few shared samples for a verdict (the message says how many there are)."""


@dataclass(frozen=True)
class PairedResult:
    n_shared: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    n_improved: int
    n_worsened: int


@dataclass(frozen=True)
class Comparison:
    """`overall` is None when pooling the shared samples would mix the units of `unpooled_metrics`."""

    base: str
    candidate: str
    overall: PairedResult | None
    by_source: list[dict[str, Any]]
    regression: bool
    flips: list[dict[str, object]] = field(default_factory=list)
    unpooled_metrics: list[str] = field(default_factory=list)
    detectable_drop: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The JSON document of `poolbench compare` (DESIGN.md keys first; with no overall test, its statistics
        are null and its counts the sums over sources)."""
        if self.overall is not None:
            overall: dict[str, object] = asdict(self.overall)
        else:
            overall = dict.fromkeys(PairedResult.__dataclass_fields__)
            for count in ("n_shared", "n_improved", "n_worsened"):
                overall[count] = sum(s[count] for s in self.by_source)
        return {
            "base": self.base,
            "candidate": self.candidate,
            **overall,
            "regression": self.regression,
            "detectable_drop": self.detectable_drop,
            "by_source": self.by_source,
            "flips": self.flips,
        }

    def headline(self) -> str:
        """One line: the verdict and the overall delta with its interval and p-value (or why there is none)."""
        verdict = "REGRESSION" if self.regression else "no regression"
        o = self.overall
        if o is None:
            overall = f"no overall delta ({', '.join(self.unpooled_metrics)} are not pooled)"
        else:
            overall = f"delta {o.delta:+.4f} [{o.ci_low:+.4f}, {o.ci_high:+.4f}], p = {o.p_value:.3g} ({o.test})"
        return f"{verdict}: {overall} on {sum(s['n_shared'] for s in self.by_source):,} shared samples"

    def power_note(self) -> str | None:
        """What the overall test could have found (`detectable_drop`), or None without a binary overall test."""
        o = self.overall
        if o is None or o.test != "exact McNemar":
            return None
        differ = f"{(o.n_improved + o.n_worsened) / o.n_shared:.1%} of them differing"
        if self.detectable_drop is None:
            return f"power: on {o.n_shared:,} shared samples the overall test flags no drop {POWER:.0%} of the time"
        return (
            f"power: on {o.n_shared:,} shared samples, {differ}, the overall test flags a true drop of "
            f"{self.detectable_drop:.2%} or more {POWER:.0%} of the time"
        )

    def unpooled_note(self) -> str | None:
        """Why there is no overall test, or None."""
        if not self.unpooled_metrics:
            return None
        return (
            f"no overall delta: the shared samples are measured in {', '.join(self.unpooled_metrics)}, whose units "
            "differ; the verdict is the sources' (or compare one metric: --metric, --source)"
        )


def paired_test(
    base: np.ndarray, candidate: np.ndarray, level: float = 0.95, seed: int = 0, bootstrap: int = 2000
) -> PairedResult:
    """Candidate minus base on paired values (aligned arrays)."""
    base, candidate = np.asarray(base, float), np.asarray(candidate, float)
    difference = candidate - base
    n = len(difference)
    improved, worsened = int((difference > 0).sum()), int((difference < 0).sum())
    delta = float(difference.mean())
    if np.isin(base, (0.0, 1.0)).all() and np.isin(candidate, (0.0, 1.0)).all():
        low, high = _adjusted_wald(improved, worsened, n, level)
        discordant = improved + worsened
        p = binomtest(improved, discordant, 0.5).pvalue if discordant else 1.0
        return PairedResult(n, delta, low, high, float(p), "exact McNemar", improved, worsened)
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, n, size=(bootstrap, n))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    p = wilcoxon(difference).pvalue if np.any(difference != 0) else 1.0
    return PairedResult(n, delta, float(low), float(high), float(p), "Wilcoxon signed-rank", improved, worsened)


def mcnemar_power(n: int, discordant: float, drop: float, alpha: float = 0.05, max_drop: float = 0.0) -> float:
    """The probability that the overall binary test of `compare` flags a regression on `n` shared samples:
    the exact two-sided McNemar p < `alpha` and the observed drop > `max_drop`, when a fraction `discordant` of
    samples differ and the candidate's true drop is `drop` (P(base right, candidate wrong) minus P(base wrong,
    candidate right); 0 <= drop <= discordant). Exact: a sum over the number of differing samples."""
    if discordant <= 0:
        return 0.0
    differ = np.arange(int(binom.ppf(1e-12, n, discordant)), int(binom.isf(1e-12, n, discordant)) + 1)
    # worse-side counts w with p < alpha: the other side d - w at most the largest k with 2 P(X <= k) < alpha
    fewer = binom.ppf(alpha / 2, differ, 0.5) - 1
    need = np.maximum(differ - fewer, np.floor((differ + n * max_drop) / 2) + 1)
    worse = (discordant + drop) / (2 * discordant)
    return float(np.sum(binom.pmf(differ, n, discordant) * binom.sf(need - 1, differ, worse)))


def detectable_drop(
    n: int, discordant: float, alpha: float = 0.05, max_drop: float = 0.0, power: float = POWER
) -> float | None:
    """The smallest true drop the overall binary test flags with probability `power` on `n` shared samples,
    a fraction `discordant` of them differing (as observed; a larger drop needs as many: then every differing
    sample is a loss); None when not even a drop on every sample would be."""

    def power_at(drop: float) -> float:
        return mcnemar_power(n, max(discordant, drop), drop, alpha, max_drop)

    if power_at(1.0) < power:
        return None
    low, high = 0.0, 1.0
    while high - low > 1e-5:
        middle = (low + high) / 2
        low, high = (low, middle) if power_at(middle) >= power else (middle, high)
    return high


def _adjusted_wald(improved: int, worsened: int, n: int, level: float) -> tuple[float, float]:
    """Bonett and Price's interval for the difference of paired proportions: each discordant count plus one,
    n plus two, a Wald interval on that, clipped to [-1, 1]."""
    up, down = (improved + 1) / (n + 2), (worsened + 1) / (n + 2)
    center = up - down
    half = norm.ppf(0.5 + level / 2) * np.sqrt((up + down - center**2) / (n + 2))
    return max(-1.0, center - half), min(1.0, center + half)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (monotone, capped at 1), in the input order."""
    order = np.argsort(p_values)
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def compare(
    scores: pd.DataFrame,
    base: str,
    candidate: str,
    alpha: float = 0.05,
    max_drop: float = 0.0,
    min_shared: int = 30,
    seed: int = 0,
) -> Comparison:
    """Compare two models on `scores` (`sample_id, model, value[, source, metric]`, higher is better).

    `flips`: every shared sample whose value changed, the largest drop first ("right -> wrong" and
    "wrong -> right" on binary values, else "worse" and "better"), its values as measured (where `scores`
    has Pool.scores' `negated` column, lower-is-better values are negated back).

    Raises NotComparableError when they share fewer than `min_shared` samples, when either has no
    measurements, or when base and candidate are the same model.
    """
    pairs = _pairs(scores, base, candidate)
    if len(pairs) < min_shared:
        raise NotComparableError(
            f"{base} and {candidate} share {len(pairs)} measured samples (minimum {min_shared}): no verdict"
        )
    unpooled = _unpooled_metrics(pairs)
    overall = None if unpooled else paired_test(pairs["base"], pairs["candidate"], seed=seed)
    sources = []
    for source, group in pairs.groupby("source", sort=True):
        result = paired_test(group["base"], group["candidate"], seed=seed)
        sources.append({"source": source, **asdict(result)})
    for entry, adjusted in zip(sources, holm([s["p_value"] for s in sources]), strict=True):
        entry["p_holm"] = adjusted
        entry["regression"] = bool(entry["delta"] < -max_drop and adjusted < alpha)
    overall_regression = overall is not None and overall.delta < -max_drop and overall.p_value < alpha
    regression = bool(overall_regression or any(s["regression"] for s in sources))
    changed = pairs[pairs["base"] != pairs["candidate"]]
    changed = changed.iloc[np.argsort((changed["candidate"] - changed["base"]).to_numpy(), kind="stable")]
    binary = bool(pairs[["base", "candidate"]].isin((0.0, 1.0)).all(axis=None))
    worse, better = ("right -> wrong", "wrong -> right") if binary else ("worse", "better")
    sign = np.where(changed["negated"], -1.0, 1.0) if "negated" in changed.columns else np.ones(len(changed))
    flips = [
        {
            "sample_id": r.sample_id,
            "source": r.source,
            "base": r.base * to_measured,
            "candidate": r.candidate * to_measured,
            "change": worse if r.candidate < r.base else better,
        }
        for r, to_measured in zip(changed.itertuples(), sign.tolist(), strict=True)
    ]
    detectable = None
    if overall is not None and overall.test == "exact McNemar":
        discordant = (overall.n_improved + overall.n_worsened) / overall.n_shared
        detectable = detectable_drop(overall.n_shared, discordant, alpha, max_drop)
    return Comparison(base, candidate, overall, sources, regression, flips, unpooled, detectable)


def compare_many(
    scores: pd.DataFrame, models: list[str], alpha: float = 0.05, min_shared: int = 30, seed: int = 0
) -> pd.DataFrame:
    """Every pair (a row: candidate minus base): delta, CI, p, Holm p across the pairs compared, and whether
    p_holm < alpha. A pair that cannot be compared (too few shared samples, metrics whose units differ) keeps
    its row with `reason` saying why and no statistics, so one sparse pair does not hide the others; with no
    pair comparable, NotComparableError."""
    rows = []
    for base, candidate in combinations(models, 2):
        pairs = _pairs(scores, base, candidate)
        unpooled = _unpooled_metrics(pairs)
        reason = ""
        if len(pairs) < min_shared:
            reason = f"{base} and {candidate} share {len(pairs)} samples (minimum {min_shared})"
        elif unpooled:
            reason = (
                f"{base} and {candidate} are measured in {', '.join(unpooled)}, whose units differ: compare one "
                "metric (--metric, --source), or two models for a verdict per source"
            )
        test = {"n_shared": len(pairs)} if reason else asdict(paired_test(pairs["base"], pairs["candidate"], seed=seed))
        rows.append({"base": base, "candidate": candidate, **test, "reason": reason})
    table = pd.DataFrame(rows)
    compared = table["reason"] == ""
    if not compared.any():
        raise NotComparableError("; ".join(table["reason"]))
    table = table.astype({"n_improved": "Int64", "n_worsened": "Int64"})  # missing where not compared
    table.loc[compared, "p_holm"] = holm(table.loc[compared, "p_value"].tolist())
    table["significant"] = table["p_holm"] < alpha
    return table


def _unpooled_metrics(pairs: pd.DataFrame) -> list[str]:
    """The pairs' metrics when one pooled delta would mix their units (several metrics whose values are not
    all 0/1), else []."""
    if "metric" not in pairs.columns or pairs["metric"].nunique() < 2:
        return []
    if pairs[["base", "candidate"]].isin((0.0, 1.0)).all(axis=None):
        return []
    return sorted(pairs["metric"].unique())


def _pairs(scores: pd.DataFrame, base: str, candidate: str) -> pd.DataFrame:
    """One row per shared (sample, metric): base and candidate values side by side."""
    if base == candidate:
        raise NotComparableError(f"{base!r} compared with itself: name two different models")
    known = set(scores["model"])
    for model in (base, candidate):
        if model not in known:
            raise NotComparableError(f"model {model!r} has no measurements here")
    keys = ["sample_id"] + [c for c in ("metric", "negated") if c in scores.columns]  # negated: per sample, metric
    frame = scores if "source" in scores.columns else scores.assign(source="")
    wide = frame[frame["model"].isin([base, candidate])].pivot_table(
        index=keys + ["source"], columns="model", values="value", aggfunc="last"
    )
    wide = wide.dropna(subset=[base, candidate]).reset_index()
    return wide.rename(columns={base: "base", candidate: "candidate"})
