"""Model outputs made elsewhere (an API batch job, another harness) for the pool's generation samples and
multiple-choice questions (answered with a letter): a file of them read and each matched to its sample
(`harness.scoring.score_outputs` scores them as a run would)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from harness.schema import PoolError, is_null
from tasks.files import read_rows

#: The sample kinds an output answers: a generation, and a multiple-choice question answered with a letter.
ANSWERED_BY_TEXT = ("generation", "multiple_choice")


def read_outputs(
    path: str | Path,
    samples: pd.DataFrame,
    source: str | None = None,
    id_field: str = "id",
    output_field: str = "output",
) -> pd.DataFrame:
    """The outputs in a JSONL/CSV/Parquet file, one row per sample, as `sample_id, output` (the CLI scores
    them with `harness.scoring.score_outputs`).

    A row names its sample by `sample_id`, or by its source id (`id_field`) within `source` (else the row's
    `source` field); `output_field` holds the generated text. `samples` are the pool's. Raises PoolError naming
    file:line for a row without an output text or a sample, a sample the pool lacks or that is neither a
    generation nor multiple choice (continuations and documents are scored from log-likelihoods, which an
    output does not give), and a sample given twice.
    """
    path = Path(path)
    rows = read_rows(path)
    if output_field not in rows.columns:
        raise PoolError(f"{path}: no {output_field!r} field (the outputs; --output-field names another)")
    find = _sample_finder(path, rows, samples, source, id_field)
    line_of: dict[str, int] = {}
    outputs = []
    for record in rows.to_dict(orient="records"):
        where = f"{path}:{record['_line']}"
        sample = find(record, where)
        named = f"sample {sample['source_id']!r} of source {sample['source']!r}"
        if sample["sample_id"] in line_of:
            raise PoolError(f"{where}: {named} again (first at line {line_of[sample['sample_id']]})")
        line_of[sample["sample_id"]] = record["_line"]
        if sample["kind"] not in ANSWERED_BY_TEXT:
            raise PoolError(
                f"{where}: {named} is a {sample['kind']} sample, scored from log-likelihoods, which an output does "
                "not give (outputs answer generation and multiple-choice samples)"
            )
        output = record[output_field]
        if not isinstance(output, str):
            got = "nothing" if is_null(output) else type(output).__name__
            raise PoolError(f"{where}: {output_field!r} is no text (got {got})")
        outputs.append((sample["sample_id"], output))
    return pd.DataFrame(outputs, columns=["sample_id", "output"])


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
    for sample in samples[["sample_id", "source", "source_id", "kind"]].to_dict(orient="records"):  # what rows need
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
