"""lm-eval `--log_samples` JSONL (`samples_<task>_<date>.jsonl`) -> samples, measurements and responses.

lm-eval writes requests as {"gen_args_0": {"arg_0": context, "arg_1": continuation or generation kwargs}}
and stringifies every leaf of `resps` / `filtered_resps` (log-likelihoods become "-3.21", is_greedy "False").
lm-eval 0.4.2 named the files `.json` and for a while wrote them as one JSON array: both are read.
Multiple-choice files give per-choice log-likelihoods, generation files the generated text, loglikelihood
tasks' files (one request per document, LAMBADA's kind) continuation samples with the target's log-likelihood
and greediness, loglikelihood_rolling tasks' files (wikitext's kind) document samples measured by their
log-likelihood (the number lm-eval's corpus-level perplexities are made of), as `add lm-eval` makes them.
Each metric named in `metrics` that has a number per sample becomes a measurement (a continuation's
per-sample "perplexity", its log-likelihood, as `loglikelihood`, as a run measures it).
"""

from __future__ import annotations

import ast
import contextlib
import re
from pathlib import Path
from typing import Any

import pandas as pd

from harness.schema import METRICS, PoolError, complete_samples, error_text, is_null, to_json
from tasks.files import read_rows

FILE_NAME = re.compile(r"samples_(?P<task>.+?)_(?P<date>\d{4}-\d{2}-\d{2}T[\d\-.:]+)\.jsonl?$")


def task_of(path: Path) -> str:
    """The task name in `samples_<task>_<date>.jsonl`; PoolError for another name."""
    match = FILE_NAME.search(path.name)
    if not match:
        raise PoolError(
            f"{path}: expected a file named samples_<task>_<date>.jsonl as lm-eval writes it (.json before 0.4.3)"
        )
    return match.group("task")


def import_lm_eval_samples(path: str | Path, model: str) -> dict[str, pd.DataFrame]:
    """Tables for one samples file of `model`. Raises PoolError naming file:line for a malformed record.

    A metric whose per-sample values are not numbers (bleu, chrf, ter, perplexities, IFEval's instruction-level
    accuracies: lm-eval logs the items its corpus-level aggregation takes) is left out; so are the records of
    every filter but the file's first (lm-eval logs a document once per filter, gsm8k's "strict-match" and
    "flexible-extract"; `add lm-eval` scores with the first too). What was left out is said in the
    measurements' `attrs["notes"]`; PoolError if no metric is left.
    """
    path = Path(path)
    task = task_of(path)
    rows = read_rows(path, "jsonl")
    filters = list(dict.fromkeys(rows["filter"].dropna())) if "filter" in rows.columns else []
    if len(filters) > 1:
        rows = rows[rows["filter"] == filters[0]]
    samples, measurements, responses = [], [], []
    left_out: dict[str, None] = {}  # an ordered set
    for record in rows.to_dict(orient="records"):
        where = f"{path}:{record['_line']}"
        metrics = record.get("metrics")
        if not isinstance(metrics, list):
            raise PoolError(f"{where}: not an lm-eval sample record (no list of `metrics`)")
        values = {}
        for metric in metrics:
            value = record.get(metric)
            if is_null(value):  # NaN: absent from this line, present in others
                raise PoolError(f"{where}: metric {metric!r} has no value")
            values[metric] = _number(value)
        numbers = {metric: value for metric, value in values.items() if value is not None}
        left_out.update(dict.fromkeys(metric for metric in values if metric not in numbers))
        try:
            sample, response = _sample_and_response(record, task)
        except (KeyError, TypeError, ValueError, SyntaxError) as err:
            raise PoolError(f"{where}: not an lm-eval sample record ({error_text(err)})") from None
        if sample["kind"] == "document":  # its rolling log-likelihood: the number its perplexities take
            numbers, sample["metric"] = {"loglikelihood": response["loglikelihood"]}, "loglikelihood"
        else:  # as `add lm-eval` chooses: the first listed metric that a run measures for the kind, else the first
            sample["metric"] = next((m for m in numbers if m in METRICS[sample["kind"]]), next(iter(numbers), "acc"))
        if sample["kind"] == "continuation":  # lm-eval logs the log-likelihood as "perplexity", to aggregate it
            numbers = {("loglikelihood" if m == "perplexity" else m): value for m, value in numbers.items()}
        samples.append(sample)
        measurements += [
            {"metric": metric, "value": value, "_row": len(samples) - 1} for metric, value in numbers.items()
        ]
        responses.append({"response": to_json(response), "_row": len(samples) - 1})
    if not measurements:
        why = f"{', '.join(left_out)}: lm-eval aggregates these over the corpus" if left_out else "none listed"
        raise PoolError(f"{path}: no metric with a number per sample ({why}); nothing to rank")
    table = complete_samples(pd.DataFrame(samples))
    ids = table["sample_id"].to_numpy()
    run_id = f"lm-eval:{path.name}"

    def attach(rows: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame(rows)
        frame["sample_id"] = ids[frame.pop("_row").to_numpy()]
        return frame.assign(model=model, run_id=run_id)

    measured = attach(measurements)
    measured.attrs["notes"] = (
        [f"left out {', '.join(left_out)}: no number per sample (a corpus-level metric)"] if left_out else []
    ) + (
        [f"left out the records of filter {', '.join(filters[1:])}: scored with the first, {filters[0]}"]
        if len(filters) > 1
        else []
    )
    return {"samples": table.drop_duplicates("sample_id"), "measurements": measured, "responses": attach(responses)}


def _number(value: Any) -> float | None:
    """A logged metric value as a float (lm-eval writes numpy floats as text), or None for items such as lists."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return None


def _sample_and_response(record: dict[str, Any], task: str) -> tuple[dict[str, Any], dict[str, Any]]:
    arguments = [args for _, args in sorted(record["arguments"].items(), key=lambda kv: int(kv[0].split("_")[-1]))]
    context = arguments[0]["arg_0"]
    metadata = {"task": task, "doc_id": record.get("doc_id"), "doc": record.get("doc")}
    base = {"source": task, "source_id": str(record.get("doc_id", ""))}
    second = arguments[0].get("arg_1")
    if "arg_1" not in arguments[0]:  # a loglikelihood_rolling task's document (wikitext's kind)
        sample = {**base, "kind": "document", "prompt": context, "choices": None, "target": None, "metadata": metadata}
        return sample, {"loglikelihood": float(_literal(record["filtered_resps"][0]))}
    if isinstance(second, str) and len(arguments) == 1:  # a loglikelihood task's one request (LAMBADA's kind)
        loglikelihood, greedy = _literal(record["filtered_resps"][0])
        sample = {
            **base,
            "kind": "continuation",
            "prompt": context,
            "choices": None,
            "target": [second],
            "metadata": metadata,
        }
        return sample, {"loglikelihoods": [float(loglikelihood)], "is_greedy": [bool(greedy)]}
    if isinstance(second, str):  # log-likelihood requests: one per choice
        continuations = [a["arg_1"] for a in arguments]
        delimiter = " " if all(c.startswith(" ") for c in continuations) else ""
        choices = [c[len(delimiter) :] for c in continuations]
        target = _target_index(record.get("target"), choices)
        lls = [
            _literal(r)[0] if isinstance(_literal(r), (list, tuple)) else _literal(r) for r in record["filtered_resps"]
        ]
        sample = {
            **base,
            "kind": "multiple_choice",
            "prompt": context,
            "choices": choices,
            "target": target,
            "metadata": {**metadata, "target_delimiter": delimiter},
        }
        return sample, {"loglikelihoods": [float(x) for x in lls]}
    answer = record["filtered_resps"][0] if isinstance(record["filtered_resps"], list) else record["filtered_resps"]
    raw = record.get("resps")
    text = raw[0][0] if isinstance(raw, list) and raw and isinstance(raw[0], list) and raw[0] else answer
    gold = record.get("target")
    references = [str(t) for t in gold] if isinstance(gold, list) else [str(gold)]
    sample = {
        **base,
        "kind": "generation",
        "prompt": context,
        "choices": None,
        "target": references,
        "metadata": metadata,
    }
    return sample, {"text": str(text), "extracted": str(answer)}


def _literal(value: Any) -> Any:
    """lm-eval's stringified leaves back to Python values ("-3.2" -> -3.2, "['-1.0', 'False']" -> list)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    if isinstance(value, (list, tuple)):
        return [_literal(v) for v in value]
    return value


def _target_index(target: Any, choices: list[str]) -> int:
    value = _literal(target)
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isdigit():
        return int(text)
    if text in choices:
        return choices.index(text)
    raise ValueError(f"target {target!r} is neither an index nor one of the choices")
