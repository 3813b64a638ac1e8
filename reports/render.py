"""Self-contained HTML reports: jinja2 templates, Vega-Lite charts with their scripts inlined once.

Nothing on the page is fetched from a network. Dataset text and model outputs are untrusted: the template
autoescapes everything, data for scripts travels as JSON with `<`, `>` and `&` escaped, and the page's
scripts put text into the DOM with `textContent` only.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

CHART_SCRIPT = """const charts = JSON.parse(document.getElementById("charts-data").textContent);
for (const [id, spec] of Object.entries(charts)) { vegaEmbed("#" + id, spec, {actions: false, renderer: "svg"}); }
"""


@dataclass(frozen=True)
class ReportData:
    """What a leaderboard page shows. `board` is `aggregators.rank`'s frame; `source_means` and `coverage`
    are models x sources; `source_metrics` names the metric(s) of each source's means; `browser` is
    {"samples": [...], "models": {model: [[sample index, score, response], ...]}, "limit": int}; `csv` is the
    leaderboard table as CSV, offered for download; `runs` has a record per (model, run) that gave the ranked
    values: model, backend, weights, run, settings, values, status."""

    title: str
    header: dict[str, Any]
    board: pd.DataFrame
    source_means: pd.DataFrame
    coverage: pd.DataFrame
    diagnostics: dict[str, Any]
    browser: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    csv: str = ""
    runs: list[dict[str, Any]] = field(default_factory=list)
    source_metrics: dict[str, str] = field(default_factory=dict)


def safe_json(value: Any) -> str:
    """JSON that cannot close a <script> element or open a comment: <, > and & as unicode escapes."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_plain)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


@cache
def vega_bundle(cache: Path | None = None) -> str:
    """Vega, Vega-Lite and vega-embed as one script, plus the snippet that draws the page's charts.

    Building it takes seconds; with a `cache` folder it is built once per vl-convert version and reused.
    """
    import vl_convert

    version = metadata.version("vl-convert-python")
    key = hashlib.sha256(f"{version}\n{CHART_SCRIPT}".encode()).hexdigest()[:16]
    stored = cache / f"vega-bundle-{key}.js" if cache else None
    if stored and stored.is_file():
        return stored.read_text(encoding="utf-8")
    bundle = vl_convert.javascript_bundle(CHART_SCRIPT).replace("</script", "<\\/script")
    if stored:
        stored.parent.mkdir(parents=True, exist_ok=True)
        tmp = stored.with_name(f".{stored.name}.{os.getpid()}")
        tmp.write_text(bundle, encoding="utf-8")
        tmp.replace(stored)
    return bundle


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )


def charts_for(data: ReportData) -> dict[str, dict[str, Any]]:
    """The page's Vega-Lite specs keyed by the id of the element that shows them."""
    from reports import plots  # altair takes a second to import: only pages pay for it, not `rank`

    charts: dict[str, dict[str, Any]] = {}
    if len(data.board):
        charts["forest"] = plots.forest(data.board)
    if data.coverage.size:
        charts["coverage"] = plots.heatmap(data.coverage, "fraction of each source measured", "fraction")
    if len(data.board) and data.board.attrs.get("method") in ("pl", "pl-conditional", "bt"):
        board = data.board
        if board.attrs.get("method") == "bt":  # BT scores are on the 400/ln(10) Elo scale
            board = board.assign(score=(board["score"] - 1000) * (2.302585092994046 / 400))
        title = "P(row beats column)" + (" among the top 30" if len(board) > 30 else "")
        charts["head-to-head"] = plots.heatmap(plots.head_to_head(board), title, "p")
    if data.source_means.size:
        charts["sources"] = plots.per_source(data.source_means)
    if data.comparison:
        charts["deltas"] = plots.paired_deltas(data.comparison)
    return charts


def render_leaderboard(data: ReportData, bundle_cache: Path | None = None) -> str:
    """The leaderboard page as one HTML document (`bundle_cache`: see `vega_bundle`)."""
    board = data.board.copy()
    rows = []
    for _, row in board.iterrows():
        sources = {
            s: data.source_means.at[row.model, s] if row.model in data.source_means.index else None
            for s in data.source_means.columns
        }
        rows.append(
            {"row": row, "sources": {s: (None if v is None or v != v else float(v)) for s, v in sources.items()}}
        )
    template = _environment().get_template("leaderboard.html.j2")
    charts = charts_for(data)
    return template.render(
        data=data,
        rows=rows,
        sources=list(data.source_means.columns),
        charts=charts,
        charts_json=safe_json(charts),
        browser_json=safe_json(data.browser or {"samples": [], "models": {}}),
        bundle=vega_bundle(bundle_cache) if charts else "",
        diagnostics=data.diagnostics,
    )
