"""Vega-Lite specs (through altair) for the report: forest plot, coverage and head-to-head heatmaps, sources,
a comparison's deltas.

Every function takes plain DataFrames and returns a Vega-Lite spec as a dict; the page renders them with
the Vega scripts inlined once (render.py).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

WIDTH = 640


def forest(board: pd.DataFrame) -> dict[str, Any]:
    """Scores with their 95% intervals, best at the top."""
    data = board[["model", "score", "ci_low", "ci_high", "rank"]].copy()
    data["ci_low"] = data["ci_low"].fillna(data["score"])
    data["ci_high"] = data["ci_high"].fillna(data["score"])
    order = data.sort_values("rank")["model"].tolist()
    y = alt.Y("model:N", sort=order, title=None)
    base = alt.Chart(data).encode(y=y)
    rule = base.mark_rule(color="#7a869a").encode(x=alt.X("ci_low:Q", title="score (95% CI)"), x2="ci_high:Q")
    point = base.mark_point(filled=True, size=60, color="#1f5fbf").encode(
        x="score:Q",
        tooltip=[
            "model",
            alt.Tooltip("score:Q", format=".3f"),
            alt.Tooltip("ci_low:Q", format=".3f"),
            alt.Tooltip("ci_high:Q", format=".3f"),
        ],
    )
    return (rule + point).properties(width=WIDTH, height=max(120, 18 * len(data))).to_dict()


def paired_deltas(comparison: dict[str, Any]) -> dict[str, Any]:
    """Candidate minus base, overall (first, when there is an overall test) and per source, with 95% intervals;
    regressions in red."""
    overall = [{"source": "overall", **comparison}] if comparison["delta"] is not None else []
    rows = [*overall, *comparison["by_source"]]
    data = pd.DataFrame(
        {
            "part": [str(r["source"]) for r in rows],
            "delta": [r["delta"] for r in rows],
            "ci_low": [r["ci_low"] for r in rows],
            "ci_high": [r["ci_high"] for r in rows],
            "verdict": ["regression" if r["regression"] else "no regression" for r in rows],
        }
    )
    y = alt.Y("part:N", sort=data["part"].tolist(), title=None)
    color = alt.Color(
        "verdict:N", scale=alt.Scale(domain=["no regression", "regression"], range=["#1f5fbf", "#b3261e"])
    )
    base = alt.Chart(data).encode(y=y, color=color)
    rule = base.mark_rule().encode(x=alt.X("ci_low:Q", title="candidate minus base (95% CI)"), x2="ci_high:Q")
    point = base.mark_point(filled=True, size=60).encode(
        x="delta:Q", tooltip=["part", alt.Tooltip("delta:Q", format="+.4f"), "verdict"]
    )
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4], color="#5b6577").encode(x="x:Q")
    return (zero + rule + point).properties(width=WIDTH, height=max(80, 22 * len(data))).to_dict()


def heatmap(matrix: pd.DataFrame, title: str, value: str, fmt: str = ".2f") -> dict[str, Any]:
    """A models x columns heatmap of `matrix` (index: rows, columns: columns) with values in [0, 1]."""
    long = matrix.rename_axis(index="row", columns="column").stack(future_stack=True).rename(value).reset_index()
    chart = (
        alt.Chart(long)
        .mark_rect()
        .encode(
            x=alt.X("column:N", sort=list(matrix.columns), title=None),
            y=alt.Y("row:N", sort=list(matrix.index), title=None),
            color=alt.Color(f"{value}:Q", scale=alt.Scale(domain=[0, 1], scheme="blues"), title=value),
            tooltip=["row", "column", alt.Tooltip(f"{value}:Q", format=fmt)],
        )
    )
    size = 16
    with alt.data_transformers.enable("default", max_rows=None):
        return chart.properties(
            title=title, width=max(200, size * matrix.shape[1]), height=max(120, size * matrix.shape[0])
        ).to_dict()


def head_to_head(board: pd.DataFrame, top: int = 30) -> pd.DataFrame:
    """P(row beats column) = logistic(score_row - score_col) from fitted PL log-strengths, for the `top`
    models, best first."""
    ordered = board.sort_values("rank").head(top)
    scores = ordered["score"].to_numpy(dtype=float)
    probability = 1.0 / (1.0 + np.exp(-(scores[:, None] - scores[None, :])))
    np.fill_diagonal(probability, np.nan)
    return pd.DataFrame(probability, index=ordered["model"], columns=ordered["model"])


def per_source(means: pd.DataFrame) -> dict[str, Any]:
    """Grouped bars: each model's mean primary metric per source (`means`: index models, columns sources)."""
    long = means.rename_axis(index="model", columns="source").stack().rename("mean").reset_index()
    chart = (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X("mean:Q", title="mean of the primary metric"),
            y=alt.Y("model:N", title=None, sort=list(means.index)),
            color=alt.Color("source:N"),
            yOffset="source:N",
            tooltip=["model", "source", alt.Tooltip("mean:Q", format=".3f")],
        )
    )
    return chart.properties(width=WIDTH, height=max(120, 14 * len(long))).to_dict()
