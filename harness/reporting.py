"""Pool -> the data a report shows (leaderboard, per-source means, coverage, sample browser, header)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from aggregators import BOARD_COLUMNS, board_notes
from aggregators.audit import discrimination, flagged, flagged_note
from harness.letters import LETTERS
from harness.pool import Pool
from harness.runner import package_versions, run_status
from reports.render import ReportData

MIN_SOURCE_SAMPLES = 30


def ranking_inputs(
    pool: Pool, sources: list[str] | None, metric: str | None = None, sample_ids: list[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The measurements (one per sample, model and metric, higher is better) and comparisons to rank on."""
    scores = pool.scores(sources=sources, metric=metric)
    comparisons = pool.read("comparisons", sources=sources).rename(columns={"outcome": "winner"})
    if sample_ids is not None:
        keep = set(sample_ids)
        scores = scores[scores["sample_id"].isin(keep)]
        comparisons = comparisons[comparisons["sample_id"].isin(keep)]
    return scores.reset_index(drop=True), comparisons.reset_index(drop=True)


def leaderboard_csv(board: pd.DataFrame, source_means: pd.DataFrame | None = None) -> str:
    """The leaderboard as CSV, best first: the columns of `rank --json` (intervals empty without a bootstrap),
    then, given `source_means` (models x sources), each source's mean value as measured in "mean:SOURCE"."""
    table = board.loc[:, list(BOARD_COLUMNS)].astype({"rank_low": "Int64", "rank_high": "Int64"})
    if source_means is not None:
        table = table.join(source_means.add_prefix("mean:"), on="model")
    return str(table.to_csv(index=False, lineterminator="\n"))


def build_report(
    pool: Pool,
    board: pd.DataFrame,
    scores: pd.DataFrame,
    *,
    title: str,
    bootstrap: int,
    browser_limit: int = 500,
    extra_header: dict[str, Any] | None = None,
    comparisons: pd.DataFrame | None = None,
) -> ReportData:
    """ReportData for `board` (from aggregators.rank) over `scores` and `comparisons` (from ranking_inputs);
    per-source means and the sample browser show values as measured (lower-is-better ones not negated); the
    diagnostics say how many samples run against the ranking (`aggregators.audit`), when any do."""
    compared = comparisons if comparisons is not None else pd.DataFrame(columns=["sample_id"])
    suspects = discrimination(scores, board.set_index("model")["score"])
    ranked = pd.concat([scores["sample_id"], compared["sample_id"]]).unique().tolist()
    samples = pool.samples(sample_ids=ranked) if ranked else pool.samples()
    per_source_total = samples.groupby("source").size()
    scores = scores.assign(value=scores["value"].where(~scores["negated"], -scores["value"]))  # as measured
    measured = scores.drop_duplicates(["sample_id", "model"])
    source_means = scores.groupby(["model", "source"])["value"].mean().unstack("source")
    coverage = measured.groupby(["model", "source"]).size().unstack("source").div(per_source_total, axis=1)
    order = board["model"].tolist()
    source_means = source_means.reindex([m for m in order if m in source_means.index])
    coverage = coverage.reindex([m for m in order if m in coverage.index]).fillna(0.0)
    grid = len(board) * max(len(samples), 1)
    header = {
        "pool": str(pool.path),
        "sources": ", ".join(sorted(per_source_total.index)) or "–",
        "models": len(board),
        "samples": f"{len(samples):,}",
        "measurements": f"{len(scores):,}",
        **({"comparisons": f"{len(compared):,}"} if len(compared) else {}),
        "measured": f"{len(measured) / grid:.1%} of the models x samples grid" if grid and len(scores) else "–",
        "method": board.attrs.get("method", ""),
        "alpha": "–" if board.attrs.get("alpha") is None else board.attrs["alpha"],
        "bootstrap": f"{bootstrap} replicates over samples" if bootstrap else "none",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": ", ".join(f"{k} {v}" for k, v in package_versions().items()),
        **(extra_header or {}),
    }
    diagnostics = dict(board.attrs.get("diagnostics", {}))
    small = per_source_total[per_source_total < MIN_SOURCE_SAMPLES]
    diagnostics["notes"] = board_notes(board) + [f"source {s} has only {n} samples" for s, n in small.items()]
    runs = model_runs(pool, scores, order, compared)
    diagnostics["notes"] += mixed_settings_notes(runs)
    if len(flagged(suspects)):
        diagnostics["notes"].append(f"{flagged_note(suspects)}: `poolbench audit` lists them")
    return ReportData(
        title=title,
        header=header,
        board=board,
        source_means=source_means,
        coverage=coverage,
        diagnostics=diagnostics,
        browser=_browser(pool, samples, scores, order, browser_limit),
        csv=leaderboard_csv(board, source_means),
        runs=runs,
        source_metrics=scores.groupby("source")["metric"].agg(lambda m: ", ".join(sorted(set(m)))).to_dict(),
    )


def model_runs(
    pool: Pool, scores: pd.DataFrame, models: list[str], comparisons: pd.DataFrame | None = None
) -> list[dict[str, Any]]:
    """How the ranked values were produced: a row per (model, run) in `models`' order (`_describe_runs`), with
    how many of the ranked measurements and comparisons it gave."""
    counts = _value_counts(scores, comparisons)
    position = {model: i for i, model in enumerate(models)}
    keys = sorted(counts.index, key=lambda key: (position.get(key[0], len(models)), key[1]))
    return _describe_runs(pool, keys, counts)


def pool_runs(pool: Pool, models: list[str] | None = None) -> list[dict[str, Any]]:
    """Every run of the pool (of `models`): those `poolbench run` recorded, oldest first, then the run ids of
    imported values (`_describe_runs`), each with how many measurements and comparisons name it."""
    scores = pool.read_arrow("measurements", models=models, columns=["model", "run_id"]).to_pandas()
    comparisons = pool.read_arrow("comparisons", models=models, columns=["model_a", "model_b", "run_id"])
    counts = _value_counts(scores, comparisons.to_pandas())
    recorded = pool.read_arrow("runs", models=models, columns=["run_id", "model", "started_at"]).to_pandas()
    recorded = recorded.sort_values(["started_at", "run_id"])
    keys = list(zip(recorded["model"], recorded["run_id"], strict=True))
    keys += sorted(set(counts.index) - set(keys))
    return _describe_runs(pool, [key for key in keys if models is None or key[0] in models], counts)


def _value_counts(scores: pd.DataFrame, comparisons: pd.DataFrame | None) -> pd.Series:
    """Measurements (`scores`) and comparisons (each counted for both its models) per (model, run_id)."""
    given = [scores[["model", "run_id"]]]
    if comparisons is not None and len(comparisons):
        given += [comparisons[[side, "run_id"]].rename(columns={side: "model"}) for side in ("model_a", "model_b")]
    return pd.concat(given).value_counts(["model", "run_id"])


def _describe_runs(pool: Pool, keys: list[tuple[str, str]], counts: pd.Series) -> list[dict[str, Any]]:
    """A row per (model, run id) of `keys`: the model's backend (with where and how the run ran) and weights,
    the run's settings, how many values `counts` gives it, its status (`run_status`), start, end and error;
    imported values (a run id no `poolbench run` recorded) say "imported"."""
    known = pool.read("models").set_index("model")
    runs = pool.read("runs").set_index("run_id")
    rows = []
    for model, run_id in keys:
        run = runs.loc[run_id] if run_id in runs.index else None
        config = json.loads(run["config"]) if run is not None else {}
        rows.append(
            {
                "model": model,
                "backend": _ran_on(known.at[model, "backend"], config.get("backend_info", {}))
                if model in known.index
                else "",
                "weights": known.at[model, "revision"] if model in known.index else "",
                "run": run_id,
                "settings": run_settings(config) if run is not None else "imported",
                "values": int(counts.get((model, run_id), 0)),
                "status": run_status(run["status"], config) if run is not None else "imported",
                "started_at": _iso(run["started_at"]) if run is not None else None,
                "finished_at": _iso(run["finished_at"]) if run is not None else None,
                "error": config.get("error"),
            }
        )
    return rows


def _iso(stamp: Any) -> str | None:
    """A timestamp as ISO 8601 text (seconds), or None when missing."""
    return None if pd.isna(stamp) else pd.Timestamp(stamp).isoformat(timespec="seconds")


def _ran_on(backend: str, described: dict[str, Any]) -> str:
    """The backend with the device, dtype and quantization its run recorded (`backend_info`): `hf (cuda,
    bfloat16)`, `hf (cpu, float32, int8)`."""
    where = [
        str(described[key]).removeprefix("torch.") for key in ("device", "dtype", "quantize") if described.get(key)
    ]
    return f"{backend} ({', '.join(where)})" if where else backend


def run_settings(config: dict[str, Any]) -> str:
    """A run's prompt settings in words: few-shot examples, chat template, answers by letter, system
    instruction, extraction."""
    parts = [f"{config.get('num_fewshot', 0)}-shot"]
    if config.get("chat_template"):
        turns = config.get("fewshot_as_multiturn") and config.get("num_fewshot", 0) > 0
        parts.append("chat template, examples as turns" if turns else "chat template")
    if config.get("multiple_choice") == "letter":
        parts.append("multiple choice by letter")
    if config.get("system_instruction") is not None:
        parts.append(f"system instruction {json.dumps(config['system_instruction'], ensure_ascii=False)}")
    if config.get("answer_pattern") is not None:
        parts.append(f"answer pattern {json.dumps(config['answer_pattern'], ensure_ascii=False)}")
    return ", ".join(parts)


def mixed_settings_notes(runs: list[dict[str, Any]]) -> list[str]:
    """A note when the models' own runs used different prompt settings (their scores then mix prompt
    effects with model differences); imported values are left out, their settings unknown."""
    by_settings: dict[str, list[str]] = {}
    for row in runs:
        if row["status"] != "imported" and row["model"] not in by_settings.setdefault(row["settings"], []):
            by_settings[row["settings"]].append(row["model"])
    if len(by_settings) < 2:
        return []
    groups = "; ".join(f"{settings}: {', '.join(models)}" for settings, models in by_settings.items())
    return [f"the models were run with different prompt settings ({groups})"]


def _browser(pool: Pool, samples: pd.DataFrame, scores: pd.DataFrame, models: list[str], limit: int) -> dict:
    """Compact sample-browser data: each sample once, then per model up to `limit` [index, score, response]."""
    index = {sid: i for i, sid in enumerate(samples["sample_id"])}
    entries = [{"prompt": row.prompt or row.source_id, "answer": _answer(row)} for row in samples.itertuples()]
    primary = scores.drop_duplicates(["sample_id", "model"])
    responses = pool.read("responses", models=models)
    latest = responses.sort_values("created_at").drop_duplicates(["sample_id", "model"], keep="last")
    response_of = {(r.sample_id, r.model): r.response for r in latest.itertuples()}
    choices_of = dict(zip(samples["sample_id"], samples["choices"], strict=True))
    per_model: dict[str, list[list[Any]]] = {}
    totals: dict[str, int] = {}
    for model, group in primary.groupby("model", sort=False):
        totals[str(model)] = len(group)
        rows = group.head(limit)
        per_model[str(model)] = [
            [
                index[r.sample_id],
                round(float(r.value), 4),
                _response_text(response_of.get((r.sample_id, model)), choices_of.get(r.sample_id)),
            ]
            for r in rows.itertuples()
            if r.sample_id in index
        ]
    return {"samples": entries, "models": {m: per_model[m] for m in models if m in per_model}, "totals": totals}


def _answer(row: Any) -> str:
    target = json.loads(row.target) if isinstance(row.target, str) else row.target
    choices = list(row.choices) if row.choices is not None else None
    if choices:
        lines = [("* " if i == target else "  ") + str(c) for i, c in enumerate(choices)]
        return "\n".join(lines)
    if isinstance(target, list):
        return " | ".join(map(str, target))
    return "" if target is None else str(target)


def _response_text(response: str | None, choices: Any) -> str:
    if not response:
        return ""
    data = json.loads(response)
    if "loglikelihoods" in data and choices is not None and len(choices):
        chosen = int(np.argmax(data["loglikelihoods"]))
        return f"chose: {choices[chosen]}"
    if "loglikelihoods" in data:  # a continuation sample: its target's log-likelihood, and whether it is greedy
        [loglikelihood], [greedy] = data["loglikelihoods"], data["is_greedy"]
        return f"log-likelihood of the target {loglikelihood:.3f}; {'' if greedy else 'not '}the greedy continuation"
    if "loglikelihood" in data:  # a document sample: its own log-likelihood
        return f"log-likelihood of the text {data['loglikelihood']:.3f}"
    text = str(data.get("text", ""))[:500]
    answer = data.get("extracted")  # what was scored, when the text is more than the answer
    if choices is not None and str(answer) in tuple(LETTERS[: len(choices)]):  # the letter of a choice
        answer = f"{answer} ({choices[LETTERS.index(str(answer))]})"
    return text if answer is None or str(answer) == text.strip() else f"{text}\nanswer: {answer}"
