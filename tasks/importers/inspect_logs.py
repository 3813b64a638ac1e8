"""inspect_ai eval logs (`.eval` or `.json`) -> samples, measurements, responses and the model.

Logs are read with inspect_ai's own `read_eval_log` (its log format is versioned, not a frozen spec). One sample
per dataset sample: source the task's name, source_id the sample's id, prompt its input (chat messages: their
texts, one paragraph each). A sample with choices and one target letter is multiple choice (the letter's
index); the others are generation samples with their targets as references. Each scorer gives a measurement
named after it (a scorer with dict values, one per key: `scorer/key`): the value inspect's epoch reducer made of
the sample's scores (the log's reductions, the numbers inspect's metrics are computed from), or where the log
has none (an eval that stopped early), the mean over epochs of `value_to_float`. Samples that errored are left
out, and a note says so; so are values inspect's metrics cannot read as numbers (lists, other text).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

from harness.schema import PoolError, complete_samples, error_text


def import_inspect_log(path: str | Path, model: str | None = None) -> dict[str, pd.DataFrame]:
    """Tables for one inspect_ai log (a local path or a URL inspect reads, such as s3://...), its model named
    `model` (default: the log's); raises PoolError naming the file when it is no log or scores nothing. Notes
    (left-out samples, an unfinished eval) are in the measurements' `attrs["notes"]`."""
    read_eval_log = _log_api().read_eval_log
    fs, where = _filesystem(path)
    if not fs.isfile(where):
        raise PoolError(f"{path}: no such file")
    try:
        log = read_eval_log(str(path))
    except Exception as err:  # inspect raises ValueError, KeyError, zipfile and pydantic errors alike
        raise PoolError(f"{path}: not an inspect_ai log ({error_text(err)})") from None
    task, model = log.eval.task, model or log.eval.model
    logged = log.samples or []
    first: dict[Any, Any] = {}  # each sample's first epoch that did not error
    for sample in logged:
        if sample.error is None:
            first.setdefault(sample.id, sample)
    values, odd = _means(_reduced(log.reductions, set(first)) if log.reductions else _epochs(logged, set(first)))
    if not values:
        raise PoolError(f"{path}: no scored samples (status {log.status!r}, {len(logged)} samples logged)")
    metrics: dict[Any, list[str]] = defaultdict(list)  # per sample id, its measurement names
    for sample_id, name in values:
        metrics[sample_id].append(name)
    primary = log.results.scores[0].name if log.results and log.results.scores else None
    ids = list(metrics)
    samples = complete_samples(
        pd.DataFrame([_sample(first[i], task) for i in ids]).assign(
            metric=[primary if primary in metrics[i] else metrics[i][0] for i in ids]
        )
    )
    sample_id = dict(zip(ids, samples["sample_id"], strict=True))
    twins = len(ids) - samples["sample_id"].nunique()  # samples of one content: the pool keeps one
    no_letter = {i for i, kind in zip(ids, samples["kind"], strict=True) if kind == "generation" and first[i].choices}
    run_id = f"inspect:{log.eval.eval_id}"
    measurements = (
        pd.DataFrame(
            [{"sample_id": sample_id[i], "metric": name, "value": value} for (i, name), value in values.items()]
        )
        .drop_duplicates(["sample_id", "metric"])
        .assign(model=model, run_id=run_id)
    )
    responses = (
        pd.DataFrame([{"sample_id": sample_id[i], "response": json.dumps(_response(first[i]))} for i in ids])
        .drop_duplicates("sample_id")
        .assign(model=model, run_id=run_id)
    )
    left_out = {sample.id for sample in logged} - set(first)
    notes = [f"left out {len(left_out)} samples: every epoch errored ({_ids(left_out)})"] if left_out else []
    if log.status != "success":
        notes.append(f"the eval's status is {log.status!r}: imported the {len(ids)} samples it scored")
    if no_letter:
        notes.append(
            f"{len(no_letter)} samples with choices have not one target letter among them ({_ids(no_letter)}; several "
            "right answers, say): imported as generation samples, their targets the references"
        )
    if twins:
        notes.append(f"{twins} samples repeat another's input, choices and target: kept once, as the first")
    if not log.reductions:
        notes.append("no reduced scores in the log: each sample's epochs are averaged")
    notes += odd
    measurements.attrs["notes"] = notes
    args = {"model": log.eval.model, "model_args": log.eval.model_args}  # the model's, not the task's
    return {
        "samples": samples.drop_duplicates("sample_id"),
        "measurements": measurements,
        "responses": responses,
        "models": pd.DataFrame([{"model": model, "backend": "inspect", "args": json.dumps(args, default=str)}]),
    }


def log_files(paths: list[str]) -> list[str]:
    """The logs named (local paths or URLs): files as given, and for a directory (an eval set's log dir) the
    logs inspect lists in it and below, oldest first (so that a retried task's newest log is written last, and
    wins); local ones as paths."""
    list_eval_logs = _log_api().list_eval_logs
    files = []
    for path in paths:
        fs, where = _filesystem(path)
        if not fs.isdir(where):
            files.append(path)
            continue
        found = [_local(info.name) for info in list_eval_logs(path, descending=False)]
        if not found:
            raise PoolError(f"{path}: no inspect_ai logs in this directory")
        files += found
    return files


def _log_api() -> Any:
    """inspect_ai's log module; PoolError saying how to install it where it is not."""
    try:
        import inspect_ai.log
    except ImportError:
        raise PoolError("reading inspect_ai logs needs inspect-ai: pip install 'poolbench[inspect]'") from None
    return inspect_ai.log


def _filesystem(path: str | Path) -> tuple[Any, str]:
    """The fsspec filesystem that holds `path` (local, or by the URL's scheme, as inspect reads it) and the
    path on it; PoolError for a scheme fsspec does not know, or whose package is not installed (gs://: gcsfs)."""
    from fsspec.core import url_to_fs

    try:
        return url_to_fs(str(path))
    except (ImportError, ValueError) as err:
        raise PoolError(f"{path}: {err}") from None


def _local(uri: str) -> str:
    """A file:// URI as the local path it names; other URIs as they are."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _named(scorer: str, value: Any) -> dict[str, Any]:
    """A score's value by measurement name: the scorer's, or one per key of a dict value."""
    if isinstance(value, dict):
        return {f"{scorer}/{key}": item for key, item in value.items()}
    return {scorer: value}


def _reduced(reductions: list[Any], kept: set[Any]) -> dict[tuple[Any, str], list[Any]]:
    """Per (sample id, measurement name) of the samples kept: the value inspect's epoch reducer gave."""
    return {
        (score.sample_id, name): [value]
        for reduction in reductions
        for score in reduction.samples
        if score.sample_id in kept
        for name, value in _named(reduction.scorer, score.value).items()
    }


def _epochs(samples: list[Any], kept: set[Any]) -> dict[tuple[Any, str], list[Any]]:
    """Per (sample id, measurement name) of the samples kept: its epochs' values."""
    epochs: dict[tuple[Any, str], list[Any]] = defaultdict(list)
    for sample in samples:
        if sample.id in kept:
            for scorer, score in (sample.scores or {}).items():
                for name, value in _named(scorer, score.value).items():
                    epochs[(sample.id, name)].append(value)
    return epochs


def _means(scored: dict[tuple[Any, str], list[Any]]) -> tuple[dict[tuple[Any, str], float], list[str]]:
    """The mean of each key's values as inspect's metrics read them (`value_to_float`), and one note per
    measurement with values it cannot read (it would warn and count 0): those are left out."""
    from inspect_ai.scorer import value_to_float

    to_float = value_to_float()
    means: dict[tuple[Any, str], float] = {}
    odd: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for (sample_id, name), values in scored.items():
        numbers = []
        for value in values:
            if _readable(value):
                numbers.append(to_float(value))
            else:
                odd[name][repr(value)] += 1
        if numbers:
            means[(sample_id, name)] = sum(numbers) / len(numbers)
    notes = [
        f"left out {seen.total()} values of {name} that are no numbers ({', '.join(list(seen)[:3])})"
        for name, seen in odd.items()
    ]
    return means, notes


#: The strings inspect's `value_to_float` reads without a warning, beside numbers: its default letters (as
#: given) and yes/no words (any case).
LETTERS, WORDS = {"C", "I", "P", "N"}, {"yes", "no", "true", "false"}


def _readable(value: Any) -> bool:
    """Whether inspect's `value_to_float` reads the value as a finite number (else it warns and counts 0, or
    passes NaN on): a number, a string of one, a letter or a yes/no word; not a list, a dict or other text."""
    if isinstance(value, str):
        if value in LETTERS or value.lower() in WORDS:
            return True
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    return isinstance(value, (bool, int, float)) and math.isfinite(value)


def _sample(sample: Any, task: str) -> dict[str, Any]:
    """A pool sample from an inspect sample (its first epoch)."""
    prompt = sample.input if isinstance(sample.input, str) else "\n\n".join(m.text for m in sample.input)
    targets = [sample.target] if isinstance(sample.target, str) else list(sample.target)
    common = {
        "source": task,
        "source_id": str(sample.id),
        "prompt": prompt,
        "metadata": {"task": task, "inspect_id": sample.id},
    }
    choices = list(sample.choices or [])
    letter = targets[0].strip().upper() if len(targets) == 1 else ""
    if choices and len(letter) == 1 and 0 <= ord(letter) - ord("A") < len(choices):
        return {**common, "kind": "multiple_choice", "choices": choices, "target": ord(letter) - ord("A")}
    return {**common, "kind": "generation", "choices": None, "target": targets}


def _response(sample: Any) -> dict[str, Any]:
    """What the model answered (its first epoch's completion) and, where a scorer extracted one, the answer."""
    answers = [score.answer for score in (sample.scores or {}).values() if score.answer is not None]
    return {"text": sample.output.completion if sample.output else "", "extracted": answers[0] if answers else None}


def _ids(ids: set[Any]) -> str:
    shown = sorted(map(str, ids))
    return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")
