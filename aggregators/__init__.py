"""Measurements and comparisons -> a leaderboard with intervals. Imports nothing from `harness`.

`rank(measurements, method="pl-conditional", ...)` takes a long DataFrame `sample_id, model, value` (higher
is better; an optional `metric` column keeps metrics apart, an optional `source` column is what `mean`
macro-averages over) and returns the leaderboard `model, score, rank, ci_low, ci_high, rank_low, rank_high,
n_samples`, best first, with `attrs["diagnostics"]`, `attrs["method"]`, `attrs["score"]` (what the score
is) and `attrs["alpha"]` (the prior of a PL method; None for the others, which take none).
`rank_pairwise(comparisons, ...)` does the same from `model_a, model_b, winner` (a|b|tie).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeGuard

import numpy as np
import pandas as pd

from aggregators import baselines, conditional, plackett_luce
from aggregators.bootstrap import competition_ranks, intervals, replicate_scores
from aggregators.diagnostics import (
    Diagnostics,
    NotIdentifiedError,
    bootstrap_prior_note,
    check,
    diagnose,
    groups_note,
    prior_note,
    undetermined,
    undetermined_mask,
    uninformative_note,
    unscored_note,
)
from aggregators.orderings import (
    Orderings,
    check_ties,
    concat,
    distinct_cells,
    from_comparisons,
    from_measurements,
    index_of,
)

METHODS = ("pl", "pl-conditional", "mean", "bt", "elo", "borda")
#: A leaderboard's columns.
BOARD_COLUMNS = ("model", "score", "rank", "ci_low", "ci_high", "rank_low", "rank_high", "n_samples")
#: What a leaderboard's `score` is, per method (`attrs["score"]`).
SCORE_MEANING = {
    "pl": "centered Plackett-Luce log-strengths",
    "pl-conditional": "centered Plackett-Luce log-strengths",
    "mean": "mean values (higher is better: lower-is-better metrics negated), macro-averaged over sources",
    "bt": "Bradley-Terry ratings on LMArena's scale (1000 + 400 log10 strength)",
    "elo": "online Elo ratings (K=4, starting at 1000)",
    "borda": "mean normalised Borda counts (1: always first, 0: always last)",
}
PL_METHODS = ("pl", "pl-conditional")
#: Binary samples through the exact conditional likelihood, everything else as `pl` (README: robustness).
DEFAULT_METHOD = "pl-conditional"
#: The Gaussian prior on log-strengths of the PL methods (the others take no prior).
DEFAULT_ALPHA = 0.01
#: Bootstrap replicates fit with at least this prior, so a draw that drops all of a model's wins stays finite
#: (with alpha = 0, the diagnostics count such draws and name the models they leave to this prior),
#: and to this gradient tolerance (relative to the total weight): far below the spread of the replicates.
BOOTSTRAP_MIN_ALPHA = 1e-6
BOOTSTRAP_TOL = 1e-6

__all__ = [
    "BOARD_COLUMNS",
    "DEFAULT_ALPHA",
    "DEFAULT_METHOD",
    "METHODS",
    "PL_METHODS",
    "NotIdentifiedError",
    "Orderings",
    "board_notes",
    "rank",
    "rank_pairwise",
]


def rank(
    measurements: pd.DataFrame | None,
    method: str = DEFAULT_METHOD,
    alpha: float = DEFAULT_ALPHA,
    bootstrap: int = 0,
    seed: int = 0,
    *,
    comparisons: pd.DataFrame | None = None,
    ties: str = "both",
    tolerance: float | dict[str, float] = 0.0,
    level: float = 0.95,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The leaderboard from measurements (and optionally comparisons, fitted together), best first.

    `alpha` is a Gaussian prior on PL log-strengths (variance 1/(2 alpha)); alpha = 0 is the MLE and raises
    NotIdentifiedError, naming the models, when the data do not determine it (bootstrap replicates that do not
    are fitted with BOOTSTRAP_MIN_ALPHA, and counted in the diagnostics). `bootstrap` replicates resample
    samples (seeded by `seed`) for `level` intervals of score and rank; `progress(0)` hears that the
    fit to all samples is done, then `progress(k)` of each k replicates done.
    `ties` picks how a tied comparison counts: "both" (a win each way, ONEBench) or "half" (LMArena).
    Methods: "pl-conditional" (binary samples by the exact conditional likelihood, the rest as "pl"), "pl"
    (ONEBench's choice-set encoding for everything), "mean", "bt", "elo", "borda". Raises ValueError on an
    unknown method or ties mode, a negative alpha or bootstrap, or a level outside (0, 1).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
    check_ties(ties)
    if alpha < 0 or bootstrap < 0 or not 0 < level < 1:
        raise ValueError(f"need alpha >= 0, bootstrap >= 0 and 0 < level < 1; got {alpha}, {bootstrap}, {level}")
    measured = from_measurements(measurements, tolerance=tolerance) if _has_rows(measurements) else None
    pair_ties = "half" if method in ("bt", "elo") else ties
    compared = from_comparisons(comparisons, ties=pair_ties) if _has_rows(comparisons) else None
    parts = [part for part in (measured, compared) if part is not None]
    if not parts:
        raise ValueError("nothing to rank: no measurements and no comparisons")
    orderings = parts[0] if len(parts) == 1 else concat(parts)
    diagnostics = diagnose(orderings)
    if method in PL_METHODS:
        diagnostics = check(diagnostics, alpha)
    elif method == "bt":  # regularised too (baselines.BT_REGULARISATION): the same models' ratings rest on that
        diagnostics = replace(diagnostics, prior_driven=undetermined(diagnostics))
    if method == "pl-conditional":
        fit = _conditional_fit(orderings, measurements, compared, tolerance)
        binary = fit.binary
        diagnostics = replace(
            diagnostics,
            uninformative=binary.uninformative,
            single_model=binary.single_model,
            binary_samples=binary.n_units,
        )
        fit_scores: Callable[..., np.ndarray] = fit.scores
    else:
        fit_scores = partial(_pl_scores, orderings)
    score = _score_function(method, orderings, measured, measurements, alpha, seed, fit_scores)
    full = score(np.ones(len(orderings.samples)))
    if method in PL_METHODS:
        score = partial(fit_scores, max(alpha, BOOTSTRAP_MIN_ALPHA), full, tol=BOOTSTRAP_TOL)
    if progress is not None:
        progress(0)
    count_undetermined = bootstrap > 0 and method in PL_METHODS and alpha < BOOTSTRAP_MIN_ALPHA
    replicate = partial(_with_undetermined, score, orderings) if count_undetermined else score
    draws = (
        replicate_scores(replicate, len(orderings.samples), bootstrap, seed, workers, progress) if bootstrap else None
    )
    if draws is not None and count_undetermined:
        n = orderings.n_models
        draws, prior_driven = draws[:, :n], draws[:, n:] > 0
        diagnostics = replace(
            diagnostics,
            bootstrap_replicates=bootstrap,
            bootstrap_without_mle=int(prior_driven.any(axis=1).sum()),
            bootstrap_prior_driven=orderings.models[prior_driven.any(axis=0)].astype(str).tolist(),
        )
    counts = _samples_per_model(orderings, measurements, comparisons)
    prior = alpha if method in PL_METHODS else None
    scored = ~np.isnan(full)  # mean: a model with comparisons only has no mean
    diagnostics = replace(diagnostics, unscored=orderings.models[~scored].astype(str).tolist())
    draws = draws[:, scored] if draws is not None else None
    return _leaderboard(
        orderings.models[scored], full[scored], draws, counts[scored], diagnostics, method, prior, level
    )


def board_notes(board: pd.DataFrame) -> list[str]:
    """What a reader of a leaderboard from `rank` is told beside it: groups of models no sample compares,
    the models the method leaves out or leaves to a prior, bootstrap replicates without an estimate, binary
    samples left out."""
    diagnostics = board.attrs["diagnostics"]
    alpha, method = board.attrs["alpha"], board.attrs["method"]
    notes = [groups_note(diagnostics, alpha, method in (*PL_METHODS, "bt")), prior_note(diagnostics, alpha)]
    if diagnostics.get("unscored"):
        notes.append(unscored_note(diagnostics, method))
    if diagnostics.get("bootstrap_without_mle"):
        notes.append(bootstrap_prior_note(diagnostics, BOOTSTRAP_MIN_ALPHA))
    if diagnostics.get("uninformative_samples"):
        notes.append(uninformative_note(diagnostics))
    return [note for note in notes if note]


def rank_pairwise(comparisons: pd.DataFrame, method: str = "pl", **options: object) -> pd.DataFrame:
    """`rank` from pairwise comparisons alone (`model_a, model_b, winner`)."""
    return rank(None, method, comparisons=comparisons, **options)  # type: ignore[arg-type]


def _score_function(
    method: str,
    orderings: Orderings,
    measured: Orderings | None,
    measurements: pd.DataFrame | None,
    alpha: float,
    seed: int,
    fit_scores: Callable[..., np.ndarray],
) -> Callable[[np.ndarray], np.ndarray]:
    """Scores from sample weights (`orderings`' samples; `measured`'s come first, as `concat` puts them)."""
    if method in PL_METHODS:
        return partial(fit_scores, alpha, None)
    if method == "mean":
        if measured is not None and _has_rows(measurements):
            return partial(baselines.mean_scores, measurements, orderings.models, measured.samples)
        raise ValueError("method 'mean' needs measurements")
    if method == "bt":
        return partial(baselines.bt_scores, orderings)
    if method == "elo":
        return partial(baselines.elo_scores, orderings, seed=seed)
    return partial(baselines.borda_scores, orderings)


def _with_undetermined(
    score: Callable[[np.ndarray], np.ndarray], orderings: Orderings, sample_weight: np.ndarray
) -> np.ndarray:
    """A replicate's scores, then a 1 for each model whose strength its data leave undetermined (else 0)."""
    return np.r_[score(sample_weight), undetermined_mask(orderings, sample_weight)]


def _pl_scores(
    orderings: Orderings, alpha: float, init: np.ndarray | None, sample_weight: np.ndarray, tol: float = 1e-8
) -> np.ndarray:
    return plackett_luce.fit(orderings.reweighted(sample_weight), alpha=alpha, init=init, tol=tol)


@dataclass(frozen=True)
class _ConditionalFit:
    """pl-conditional's data: binary units, and the orderings (numeric metrics, comparisons) fitted beside them,
    both indexing the same sample list."""

    binary: conditional.BinarySamples
    orderings: Orderings

    def scores(self, alpha: float, init: np.ndarray | None, sample_weight: np.ndarray, tol: float = 1e-8) -> np.ndarray:
        binary = self.binary.reweighted(sample_weight)
        return conditional.fit(binary, self.orderings.reweighted(sample_weight), alpha=alpha, init=init, tol=tol)


def _has_rows(frame: pd.DataFrame | None) -> TypeGuard[pd.DataFrame]:
    """Whether `frame` is given and not empty."""
    return frame is not None and len(frame) > 0


def _conditional_fit(
    orderings: Orderings,
    measurements: pd.DataFrame | None,
    compared: Orderings | None,
    tolerance: float | dict[str, float],
) -> _ConditionalFit:
    """Split the measurements into binary metrics (conditional likelihood) and the rest (choice sets)."""
    frame = measurements if measurements is not None else pd.DataFrame(columns=["sample_id", "model", "value"])
    metric = frame["metric"] if "metric" in frame.columns else pd.Series("", index=frame.index)
    binary_metric = frame["value"].groupby(metric, dropna=False).transform(conditional.is_binary).astype(bool)
    n_measured = frame["sample_id"].nunique()
    samples = orderings.samples[:n_measured]
    binary = conditional.from_measurements(frame[binary_metric], orderings.models, samples)
    rest = [from_measurements(frame[~binary_metric], tolerance, orderings.models, samples)]
    rest += [compared] if compared is not None else []
    joined = concat(rest) if len(rest) > 1 else rest[0]
    return _ConditionalFit(binary, joined)


def _samples_per_model(
    orderings: Orderings, measurements: pd.DataFrame | None, comparisons: pd.DataFrame | None
) -> np.ndarray:
    """Distinct samples (or comparisons without a sample id) each model was measured on."""
    samples, models = [], []
    if _has_rows(measurements):
        samples.append(measurements["sample_id"])
        models.append(measurements["model"])
    if _has_rows(comparisons):
        has_ids = "sample_id" in comparisons.columns
        ids = comparisons["sample_id"] if has_ids else pd.Series(comparisons.index.astype(str))
        for side in ("model_a", "model_b"):
            samples.append(ids)
            models.append(comparisons[side])
    codes, names = pd.factorize(_joined(samples))
    keys = codes.astype(np.int64, copy=False)
    keys *= len(orderings.models)
    keys += index_of(orderings.models, _joined(models))
    cells = distinct_cells(keys, len(names) * len(orderings.models))
    return np.bincount(cells % len(orderings.models), minlength=len(orderings.models))


def _joined(columns: list[pd.Series]) -> pd.Series:
    """The columns one after another (the one column itself, not a copy, when it is alone)."""
    return columns[0] if len(columns) == 1 else pd.concat(columns, ignore_index=True)


def _leaderboard(
    models: np.ndarray,
    scores: np.ndarray,
    draws: np.ndarray | None,
    n_samples: np.ndarray,
    diagnostics: Diagnostics,
    method: str,
    alpha: float | None,
    level: float,
) -> pd.DataFrame:
    board = pd.DataFrame({"model": models.astype(str), "score": scores})
    board["rank"] = competition_ranks(np.nan_to_num(scores, nan=-np.inf)).astype(int)
    if draws is not None:
        for name, values in intervals(draws, level).items():
            board[name] = values
    else:
        for name in ("ci_low", "ci_high", "rank_low", "rank_high"):
            board[name] = np.nan
    board["n_samples"] = n_samples
    board = board.sort_values(["rank", "model"], ignore_index=True)
    board.attrs["method"] = method
    board.attrs["score"] = SCORE_MEANING[method]
    board.attrs["alpha"] = alpha
    board.attrs["diagnostics"] = diagnostics.as_dict()
    return board
