"""Local files (JSONL, CSV, Parquet) -> multiple-choice or generation samples.

Default fields: `id` (the source id, optional); multiple choice: `question`, `choices` (a list, a JSON list
in CSV, or Hugging Face's `{"text": [...], "label": [...]}` as in ARC), `answer` (one of the labels, an index,
a letter A-Z, or the text of a choice, in that order); generation: `prompt`, `answer` (a string or a list of
references). Other fields are kept as metadata. An optional jinja2 `template` renders the prompt from the
row's fields (the default is lm-eval's "Question: ...\\nAnswer:" for multiple choice, the prompt as is for
generation). Any bad row raises PoolError naming `file:line`, and nothing of the file is returned.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from harness.schema import METRICS, PoolError, complete_samples, is_null
from tasks.files import read_rows

#: The kinds a run evaluates. A continuation sample's answer is the text that continues its prompt, as it is
#: (" Paris" after "The capital of France is"): a run measures its log-likelihood and whether it is greedy. A
#: document sample is its prompt alone, a text whose log-likelihood a run measures (a perplexity corpus).
KINDS = tuple(METRICS)


@dataclass(frozen=True)
class FieldMap:
    """Which row fields hold the id, question/prompt, choices and answer."""

    id: str = "id"
    question: str | None = None  # default: "question" (multiple choice) or "prompt" (generation)
    choices: str = "choices"
    answer: str = "answer"


DEFAULT_FIELDS = FieldMap()


def load_local(
    path: str | Path,
    source: str,
    kind: str = "multiple_choice",
    fields: FieldMap = DEFAULT_FIELDS,
    template: str | None = None,
    fmt: str | None = None,
) -> pd.DataFrame:
    """Samples from a local file, ready for `Pool.write({"samples": ...})`."""
    path = Path(path)
    return samples_from_rows(read_rows(path, fmt), str(path), source, kind, fields, template)


def samples_from_rows(
    rows: pd.DataFrame,
    origin: str,
    source: str,
    kind: str = "multiple_choice",
    fields: FieldMap = DEFAULT_FIELDS,
    template: str | None = None,
) -> pd.DataFrame:
    """Samples from rows with a `_line` column; errors name `origin:line`."""
    if kind not in KINDS:
        raise PoolError(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}")
    question = fields.question or ("question" if kind == "multiple_choice" else "prompt")
    needed = (
        [question]
        + ([fields.answer] if kind != "document" else [])
        + ([fields.choices] if kind == "multiple_choice" else [])
    )
    if rows.empty:
        raise PoolError(f"{origin}: no rows")
    for field in needed:
        if field not in rows.columns:
            raise PoolError(f"{origin}: missing required field {field!r} (fields: {', '.join(rows.columns[:-1])})")
    render = _template(template) if template else None
    records = []
    for row in rows.to_dict(orient="records"):
        where = f"{origin}:{row.pop('_line')}"
        records.append(_sample(row, where, source, kind, question, fields, render))
    samples = complete_samples(pd.DataFrame(records))
    _refuse_conflicting_ids(samples, rows["_line"].tolist(), origin)
    return samples


def _template(text: str) -> jinja2.Template:
    """The jinja2 prompt template (an undefined name fails at render); PoolError for a malformed one."""
    try:
        return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False).from_string(text)
    except jinja2.TemplateSyntaxError as err:
        raise PoolError(f"--template: {err.message} (template line {err.lineno})") from None


def _sample(
    row: dict[str, Any],
    where: str,
    source: str,
    kind: str,
    question: str,
    fields: FieldMap,
    render: jinja2.Template | None,
) -> dict[str, Any]:
    text = row.get(question)
    if _missing(text):
        raise PoolError(f"{where}: missing required field {question!r}")
    if kind != "document" and _missing(row.get(fields.answer)):
        raise PoolError(f"{where}: missing required field {fields.answer!r}")
    choices, labels = _choices(row[fields.choices], where) if kind == "multiple_choice" else (None, None)
    target = (
        None
        if kind == "document"
        else _continuation(row[fields.answer], where)
        if kind == "continuation"
        else _target(row[fields.answer], choices, labels, where)
    )
    try:
        prompt = (
            render.render(**row)
            if render
            else (f"Question: {text}\nAnswer:" if kind == "multiple_choice" else str(text))
        )
    except jinja2.TemplateError as err:
        raise PoolError(f"{where}: template error ({err})") from None
    used = {question, fields.id} | ({fields.answer} if target is not None else set())
    used |= {fields.choices} if choices is not None else set()
    metadata = {k: v for k, v in row.items() if k not in used and not _missing(v)}
    source_id = "" if _missing(row.get(fields.id)) else str(row[fields.id])
    return {
        "source": source,
        "source_id": source_id,
        "kind": kind,
        "prompt": prompt,
        "choices": choices,
        "target": target,
        "metric": METRICS[kind][0],
        "metadata": metadata,
        "text": f"{text} " + (" / ".join(choices) if choices else ""),
    }


def _choices(value: Any, where: str) -> tuple[list[str], list[str] | None]:
    """The choices' texts, and their labels when they come as `{"text": [...], "label": [...]}`."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise PoolError(f"{where}: choices must be a list (or a JSON list in CSV), got {value!r}") from None
    labels = None
    if isinstance(value, dict) and "text" in value:
        labels = _list(value.get("label"))
        value = value["text"]
    value = _list(value)
    if not isinstance(value, list) or len(value) < 2:
        raise PoolError(f"{where}: choices must be a list of at least two options, got {value!r}")
    if labels is not None and (not isinstance(labels, list) or len(labels) != len(value)):
        raise PoolError(f"{where}: choices' labels must be a list of one label per text, got {labels!r}")
    return [str(v) for v in value], None if labels is None else [str(v) for v in labels]


def _list(value: Any) -> Any:
    """A numpy array (how pandas holds a Parquet or HF list) as a list; anything else as it is."""
    return value.tolist() if hasattr(value, "tolist") else value


def _continuation(value: Any, where: str) -> list[str]:
    """A continuation sample's target: its answer, one text, kept as it is (spaces included)."""
    if not isinstance(value, str) or not value.strip():
        raise PoolError(f"{where}: answer must be the text that continues the prompt, got {value!r}")
    return [value]


def _target(value: Any, choices: list[str] | None, labels: list[str] | None, where: str) -> int | list[str]:
    if choices is None:  # generation: one or more reference answers
        references = _list(value)
        references = references if isinstance(references, list) else [references]
        if not references or any(_missing(r) for r in references):
            raise PoolError(f"{where}: answer must be a reference or a list of non-empty references, got {value!r}")
        return [str(r) for r in references]
    text = str(value).strip()
    if labels is not None and text in labels:
        return labels.index(text)
    index = _index(text)
    named = [i for i, choice in enumerate(choices) if choice == text]  # the choices whose text it is
    if isinstance(value, str) and len(named) > 1:
        raise PoolError(
            f"{where}: answer {value!r} is the text of several choices ({', '.join(map(str, named))}); give its index"
        )
    if index is None or not 0 <= index < len(choices):  # no choice's letter or number: a choice's text, or wrong
        if named:
            return named[0]
        if index is None:
            raise PoolError(
                f"{where}: answer must be "
                + ("one of the labels " + ", ".join(labels) + ", " if labels else "")
                + f"an index, a letter or the text of a choice, got {value!r}"
            )
        raise PoolError(
            f"{where}: answer {value!r} is no choice's text, and as a letter or an index it is out of range for"
            f" {len(choices)} choices"
        )
    if isinstance(value, str) and named and named[0] != index:
        raise PoolError(
            f"{where}: answer {value!r} is ambiguous: choice {index}, or the choice whose text it is "
            f"(choice {named[0]}); give it as a number in JSONL or Parquet"
        )
    return index


def _index(text: str) -> int | None:
    """The index an answer names as a letter (A = 0) or a whole number, else None."""
    if len(text) == 1 and text.upper() in string.ascii_uppercase:
        return string.ascii_uppercase.index(text.upper())
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() else None


def _missing(value: Any) -> bool:
    return is_null(value) or (isinstance(value, str) and value == "")


def _refuse_conflicting_ids(samples: pd.DataFrame, lines: list[int], origin: str) -> None:
    """A source id used twice in one file for different content is an error naming both lines (identical
    repeats are fine). `lines`: each sample's line in the file."""
    named = samples.assign(line=lines)[samples["source_id"] != ""]
    first = named.drop_duplicates("source_id").set_index("source_id")
    clash = named[named["sample_id"] != named["source_id"].map(first["sample_id"])]
    if len(clash):
        row = clash.iloc[0]
        raise PoolError(
            f"{origin}:{row.line}: id {row.source_id!r} was used at line {first.at[row.source_id, 'line']} "
            "for other content"
        )
