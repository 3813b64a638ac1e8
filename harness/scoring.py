"""Requests from samples, and per-sample metrics from model outputs.

Multiple choice: one (context, delimiter + choice) request per choice; `acc` and `acc_norm` exactly as
lm-eval defines them (argmax of the log-likelihoods, and of log-likelihood / len(choice) in characters); or,
answered with a letter (`run --multiple-choice letter`), `acc` of the letter chosen.
Generation: `exact_match`, `f1` (SQuAD-style token overlap) and `contains`, after answer extraction (the
first non-empty line, or `--answer-pattern`); for an lm-eval task's samples, the answer is its filter's and
`exact_match` lm-eval's with the task's options (`lm_eval_generation_metrics`).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from harness.letters import LETTERS, chosen_letter
from harness.schema import to_json


def choice_requests(context: str, choices: list[str], delimiter: str = " ") -> list[tuple[str, str]]:
    """lm-eval's multiple-choice requests: the continuation is the target delimiter plus the choice."""
    return [(context, delimiter + choice) for choice in choices]


def loglikelihood_requests(sample: Mapping[str, Any], context: str, delimiter: str = " ") -> list[tuple[str, str]]:
    """The (context, continuation) pairs whose log-likelihoods score a sample, as lm-eval requests them: a
    multiple-choice sample's `choice_requests`, a continuation sample's target as it is (lm-eval's
    `loglikelihood` requests add no delimiter); none for a generation."""
    if sample["kind"] == "multiple_choice":
        return choice_requests(context, [str(choice) for choice in sample["choices"]], delimiter)
    if sample["kind"] == "continuation":
        return [(context, str(json.loads(sample["target"])[0]))]
    return []


def multiple_choice_metrics(loglikelihoods: list[float], choices: list[str], target: int) -> dict[str, float]:
    """acc and acc_norm for one sample (ties go to the first choice, as numpy's argmax does)."""
    lls = np.asarray(loglikelihoods, dtype=float)
    lengths = np.array([float(len(c)) for c in choices])
    return {"acc": float(np.argmax(lls) == target), "acc_norm": float(np.argmax(lls / lengths) == target)}


def extract_answer(text: str, pattern: str | None = None) -> str:
    """The answer in a generation: the first group (or match) of `pattern` when given, else the first
    non-empty line, stripped."""
    if pattern:
        match = re.search(pattern, text, flags=re.MULTILINE)
        if not match:
            return ""
        return (match.group(1) if match.groups() else match.group(0)).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (1.0 when both are empty)."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def generation_metrics(answer: str, references: list[str]) -> dict[str, float]:
    """exact_match, f1 and contains of an extracted answer, each the best over the references."""
    if not references:
        raise ValueError("a generation sample needs at least one reference answer")
    normalized = normalize(answer)
    return {
        "exact_match": float(any(normalized == normalize(r) for r in references)),
        "f1": max(token_f1(answer, r) for r in references),
        "contains": float(any(normalize(r) and normalize(r) in normalized for r in references)),
    }


def lm_eval_generation_metrics(
    text: str, references: list[str], recipe: dict[str, Any], pattern: str | None = None
) -> tuple[str, dict[str, float]]:
    """(the answer, the metrics) of a generation for an lm-eval task, as lm-eval scores it: the task's filter
    pipeline (`recipe`, from `add lm-eval`; lm-eval's own filter classes) extracts the answer, unless
    `pattern` is given; exact_match is lm-eval's function with the task's options, true when any reference
    matches (as lm-eval takes several); f1 and contains are `generation_metrics`' on that answer."""
    import lm_eval.filters  # noqa: F401  (registers lm-eval's filters)
    from lm_eval.api.registry import get_filter, get_metric

    if pattern is not None:
        answer = extract_answer(text, pattern)
    else:
        responses: Any = [[text]]
        for function, options in recipe["steps"]:
            responses = list(get_filter(function)(**options).apply(responses, [{}]))
        answer = responses[0]
        while isinstance(answer, list):  # a pipeline without take_first keeps the list of responses
            answer = answer[0] if answer else ""
    values = generation_metrics(answer, references)
    exact_match = get_metric("exact_match")
    options = recipe["metric_options"].get("exact_match", {})
    values["exact_match"] = float(
        any(exact_match(references=[r], predictions=[answer], **options)["exact_match"] for r in references)
    )
    return answer, values


def score_response(
    sample: Mapping[str, Any], output: dict[str, Any], answer_pattern: str | None = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """(the metrics, the response to store) of a model's output for a pool sample (`kind`, `choices`, `target`
    and `metadata` as the pool holds them). `output`: `{"loglikelihoods": [...], "is_greedy": [...]}` of a
    multiple-choice or continuation sample (per choice, or of the target), `{"text": ...}` of a generation
    or of a multiple-choice sample answered with a letter (`letters.chosen_letter`; its acc only), whose
    response gains the `extracted` answer that was scored, `{"loglikelihood": ...}` of a document."""
    if sample["kind"] == "document":  # lm-eval's loglikelihood_rolling tasks: the number their perplexities take
        return {"loglikelihood": float(output["loglikelihood"])}, output
    target = json.loads(sample["target"])
    if sample["kind"] == "multiple_choice" and "text" in output:  # answered with a letter: acc only
        text = extract_answer(output["text"], answer_pattern) if answer_pattern else output["text"]
        answer = chosen_letter(text, len(sample["choices"]))
        return {"acc": float(answer == LETTERS[int(target)])}, {**output, "extracted": answer}
    if sample["kind"] == "multiple_choice":
        return multiple_choice_metrics(output["loglikelihoods"], list(sample["choices"]), int(target)), output
    if sample["kind"] == "continuation":  # lm-eval's loglikelihood tasks: acc is "the target is greedy"
        [loglikelihood], [greedy] = output["loglikelihoods"], output["is_greedy"]
        return {"acc": float(greedy), "loglikelihood": float(loglikelihood)}, output
    references = target if isinstance(target, list) else [str(target)]
    recipe = json.loads(sample["metadata"] or "{}").get("lm_eval_scoring")
    if recipe:
        answer, values = lm_eval_generation_metrics(output["text"], references, recipe, answer_pattern)
    else:
        answer = extract_answer(output["text"], answer_pattern)
        values = generation_metrics(answer, references)
    return values, {**output, "extracted": answer}


def plain_scoring_notes(samples: pd.DataFrame) -> list[str]:
    """Notes on the generation samples of lm-eval tasks whose scoring recipe the pool lacks, which a run or
    `import outputs` scores the plain way: tasks added by an older poolbench, and tasks imported from lm-eval's
    logs (`import lm-eval-samples`; `add lm-eval` of the task gives the same samples their recipe)."""
    generation = samples[samples["kind"] == "generation"]
    older: set[str] = set()
    logged: set[str] = set()
    for source, text in zip(generation["source"], generation["metadata"], strict=True):
        metadata = json.loads(text or "{}")
        if "lm_eval_scoring" in metadata:
            continue
        if "until" in metadata:
            older.add(source)
        elif "doc" in metadata and "task" in metadata:
            logged.add(source)
    why = "their generations are scored the plain way, not with the task's filter and options"
    notes = []
    if older:
        notes.append(
            f"the lm-eval task(s) {', '.join(sorted(older))} were added by an older poolbench: {why}; add them again first"
        )
    if logged:
        tasks = sorted(logged)
        notes.append(
            f"the lm-eval task(s) {', '.join(tasks)} came from lm-eval's logs (import lm-eval-samples): {why} "
            f"as lm-eval scored the logged models; `poolbench add lm-eval {' '.join(tasks)}` first (the same "
            "samples)"
        )
    return notes


def result_rows(
    sample_id: str, model: str, run_id: str, values: Mapping[str, float], response: Mapping[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The pool rows of one scored output: a measurement per metric in `values`, and the response (as JSON)."""
    key = {"sample_id": sample_id, "model": model, "run_id": run_id}
    return (
        [{**key, "metric": metric, "value": value} for metric, value in values.items()],
        {**key, "response": to_json(response)},
    )


def score_outputs(
    samples: pd.DataFrame, outputs: pd.DataFrame, model: str, run_id: str, answer_pattern: str | None = None
) -> dict[str, pd.DataFrame]:
    """Measurements and responses of `model` from its generations made elsewhere: `outputs` (`sample_id`,
    `output`), each of a generation or multiple-choice sample among `samples`, scored as a run scores its own
    (`score_response`; a multiple-choice sample's output by the letter it chose)."""
    wanted = samples[samples["sample_id"].isin(outputs["sample_id"])]
    by_id = {sample["sample_id"]: sample for sample in wanted.to_dict(orient="records")}  # .loc: 0.3 ms a row
    measurements: list[dict[str, Any]] = []
    responses: list[dict[str, Any]] = []
    for sample_id, output in zip(outputs["sample_id"], outputs["output"], strict=True):
        values, response = score_response(by_id[sample_id], {"text": output}, answer_pattern)
        measured, stored = result_rows(sample_id, model, run_id, values, response)
        measurements += measured
        responses.append(stored)
    return {"measurements": pd.DataFrame(measurements), "responses": pd.DataFrame(responses)}
