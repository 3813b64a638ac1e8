"""Model outputs made elsewhere (an API batch job, another harness) for the pool's generation samples ->
measurements and responses, scored as a run scores its own generations (`scoring.score_response`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from harness import scoring
from harness.schema import PoolError, is_null
from tasks.files import read_rows


def import_outputs(
    path: str | Path,
    samples: pd.DataFrame,
    model: str,
    source: str | None = None,
    id_field: str = "id",
    output_field: str = "output",
    answer_pattern: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Measurements and responses of `model` from a JSONL/CSV/Parquet file of outputs, one row per sample.

    A row names its sample by `sample_id`, or by its source id (`id_field`) within `source` (else the row's
    `source` field); `output_field` holds the generated text. `samples` are the pool's. The answer is
    extracted and scored as `run` does (an lm-eval task's filter and exact_match options; `answer_pattern`
    instead, when given). Raises PoolError naming file:line for a row without an output text or a sample, a
    sample the pool lacks or that is not a generation (multiple choice is scored from log-likelihoods), and a
    sample given twice.
    """
    path = Path(path)
    rows = read_rows(path)
    if output_field not in rows.columns:
        raise PoolError(f"{path}: no {output_field!r} field (the outputs; --output-field names another)")
    find = _sample_finder(path, rows, samples, source, id_field)
    run_id = f"import:{path.name}"
    measurements: list[dict[str, Any]] = []
    responses: list[dict[str, Any]] = []
    line_of: dict[str, int] = {}
    for record in rows.to_dict(orient="records"):
        where = f"{path}:{record['_line']}"
        sample = find(record, where)
        if sample["sample_id"] in line_of:
            raise PoolError(
                f"{where}: sample {sample['source_id']!r} of source {sample['source']!r} again (first at line "
                f"{line_of[sample['sample_id']]})"
            )
        line_of[sample["sample_id"]] = record["_line"]
        if sample["kind"] != "generation":
            raise PoolError(
                f"{where}: sample {sample['source_id']!r} of source {sample['source']!r} is {sample['kind']}, not a "
                "generation (multiple choice is scored from log-likelihoods, which an output does not give)"
            )
        output = record[output_field]
        if not isinstance(output, str):
            got = "nothing" if is_null(output) else type(output).__name__
            raise PoolError(f"{where}: {output_field!r} is no text (got {got})")
        values, response = scoring.score_response(sample, {"text": output}, answer_pattern)
        rows_measured, stored = scoring.result_rows(sample["sample_id"], model, run_id, values, response)
        measurements += rows_measured
        responses.append(stored)
    return {"measurements": pd.DataFrame(measurements), "responses": pd.DataFrame(responses)}


def _sample_finder(
    path: Path, rows: pd.DataFrame, samples: pd.DataFrame, source: str | None, id_field: str
) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """A function (record, where) -> the pool sample the record names; it raises PoolError naming `where` for
    none, or several (a task added twice with different prompts keeps its source ids)."""
    index: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    by_sample_id = "sample_id" in rows.columns
    if not by_sample_id and id_field not in rows.columns:
        raise PoolError(f"{path}: no `sample_id` and no {id_field!r} field to name each row's sample (--id-field)")
    if not by_sample_id and source is None and "source" not in rows.columns:
        raise PoolError(f"{path}: no `source` field: name the samples' source with --source")
    for sample in samples.to_dict(orient="records"):
        index[sample["sample_id"] if by_sample_id else (sample["source"], sample["source_id"])].append(sample)

    def find(record: dict[str, Any], where: str) -> dict[str, Any]:
        named = [record["sample_id"]] if by_sample_id else [source or record["source"], record[id_field]]
        if any(is_null(part) or not str(part).strip() for part in named):
            raise PoolError(f"{where}: no {'sample_id' if by_sample_id else 'source or ' + repr(id_field)}")
        key = str(named[0]).strip() if by_sample_id else tuple(str(part).strip() for part in named)
        found = index.get(key, [])
        what = f"sample_id {key!r}" if by_sample_id else f"sample {key[1]!r} of source {key[0]!r}"
        if len(found) != 1:
            raise PoolError(
                f"{where}: {what} is not in the pool"
                if not found
                else f"{where}: {what} names {len(found)} samples (different prompts): give each row's sample_id"
            )
        return found[0]

    return find
