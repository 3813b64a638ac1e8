"""Records of the pool: table schemas, content-hash ids and validation on write.

Every table is a set of Parquet segments with the Arrow schema below. `KEYS` names each table's logical key:
when a key is written more than once, the row with the latest `created_at` wins on read.
Validation raises `PoolError` naming the first offending row; nothing is written when it does.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


class PoolError(ValueError):
    """A user-facing error: bad input, a missing pool, an unreadable segment. Its message is one line."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line errors."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def error_text(err: BaseException) -> str:
    """The exception as its type's name, a colon and the first line of its message (the name alone when it
    has no message), for one-line errors that pass on another library's."""
    line, name = first_line(err), type(err).__name__
    return name if line == name else f"{name}: {line}"


def name_list(names: Iterable[str], limit: int = 20) -> str:
    """Sorted names for an error message: the first `limit`, then how many there are; 'none' for none."""
    names = sorted(names)
    listed = ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
    return listed or "none"


FORMAT_VERSION = 1
#: A `continuation` sample is scored by the log-likelihood of its target after the prompt (lm-eval's
#: `loglikelihood` tasks, such as LAMBADA); a `document` sample, its prompt, by the prompt's own log-likelihood
#: in rolling windows (lm-eval's `loglikelihood_rolling` tasks, such as wikitext: what perplexities are made of).
SAMPLE_KINDS = ("multiple_choice", "generation", "continuation", "document", "scored", "preference")
OUTCOMES = ("a", "b", "tie")
#: Metric names whose smaller values are better (used when a sample does not say otherwise).
LOWER_IS_BETTER = frozenset({"rank", "loss", "perplexity", "word_perplexity", "byte_perplexity", "ter"})
#: Metric names whose per-sample values are proportions, in [0, 1] (a 0-100 scale under one is refused).
PROPORTIONS = frozenset({"acc", "acc_norm", "acc_mutual_info", "exact_match", "em", "f1", "contains"})
OTHER_SCALE = "scores on another scale need another metric name"
#: The metrics a run measures per sample, by sample kind (`harness.scoring` computes them); its kinds are the
#: ones a run evaluates, and the first metric is a sample's own by default.
METRICS = {
    "multiple_choice": ("acc", "acc_norm"),
    "generation": ("exact_match", "f1", "contains"),
    "continuation": ("acc", "loglikelihood"),  # acc: the target is the greedy continuation
    "document": ("loglikelihood",),
}

_TS = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "samples": pa.schema(
        [
            ("sample_id", pa.string()),
            ("content_id", pa.string()),
            ("source", pa.string()),
            ("source_id", pa.string()),
            ("kind", pa.string()),
            ("prompt", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("target", pa.string()),  # JSON: an index, a list of reference strings, or null
            ("metric", pa.string()),
            ("higher_is_better", pa.bool_()),
            ("metadata", pa.string()),  # JSON object
            ("text", pa.string()),
            ("created_at", _TS),
        ]
    ),
    "measurements": pa.schema(
        [
            ("sample_id", pa.string()),
            ("model", pa.string()),
            ("metric", pa.string()),
            ("run_id", pa.string()),
            ("value", pa.float64()),
            ("created_at", _TS),
        ]
    ),
    "comparisons": pa.schema(
        [
            ("sample_id", pa.string()),
            ("model_a", pa.string()),
            ("model_b", pa.string()),
            ("judge", pa.string()),
            ("run_id", pa.string()),
            ("outcome", pa.string()),
            ("created_at", _TS),
        ]
    ),
    "responses": pa.schema(
        [
            ("sample_id", pa.string()),
            ("model", pa.string()),
            ("run_id", pa.string()),
            ("response", pa.string()),  # JSON: {"text": ...} or {"loglikelihoods": [...], ...}
            ("created_at", _TS),
        ]
    ),
    "models": pa.schema(
        [
            ("model", pa.string()),
            ("backend", pa.string()),
            ("args", pa.string()),  # JSON object
            ("revision", pa.string()),
            ("display_name", pa.string()),
            ("created_at", _TS),
        ]
    ),
    "runs": pa.schema(
        [
            ("run_id", pa.string()),
            ("model", pa.string()),
            ("config", pa.string()),  # JSON object
            ("versions", pa.string()),  # JSON object: package -> version
            ("started_at", _TS),
            ("finished_at", _TS),
            ("status", pa.string()),  # running | finished | failed | partial (a shard done, others not)
            ("created_at", _TS),
        ]
    ),
    "embeddings": pa.schema(
        [
            ("sample_id", pa.string()),
            ("embedder", pa.string()),
            ("vector", pa.binary()),  # float32 little-endian bytes: reads ~10x faster than list<float32>
            ("created_at", _TS),
        ]
    ),
}

KEYS: dict[str, tuple[str, ...]] = {
    "samples": ("sample_id",),
    "measurements": ("sample_id", "model", "metric", "run_id"),
    "comparisons": ("sample_id", "model_a", "model_b", "judge", "run_id"),
    "responses": ("sample_id", "model", "run_id"),
    "models": ("model",),
    "runs": ("run_id",),
    "embeddings": ("sample_id", "embedder"),
}
TABLES = tuple(SCHEMAS)

#: Columns a caller must give; the others default (empty string, null, now).
REQUIRED: dict[str, tuple[str, ...]] = {
    "samples": ("source", "kind"),
    "measurements": ("sample_id", "model", "value"),
    "comparisons": ("sample_id", "model_a", "model_b", "outcome"),
    "responses": ("sample_id", "model", "response"),
    "models": ("model",),
    "runs": ("run_id", "model"),
    "embeddings": ("sample_id", "embedder", "vector"),
}


def stable_hash(*parts: Any, length: int = 20) -> str:
    """Hex digest of the canonical JSON of `parts`: equal content gives an equal id in every process."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def content_id(prompt: str, choices: list[str] | None, target: Any) -> str:
    """Id of a question's content, whatever its source: the same question in two sources shares it.

    A sample without prompt text (an imported result matrix) is identified by its source id instead.
    """
    return stable_hash(prompt, choices, target)


def sample_id(source: str, prompt: str, choices: list[str] | None, target: Any) -> str:
    """The pool's key of a sample: a content hash of its source and content (DESIGN.md)."""
    return stable_hash(source, content_id(prompt, choices, target))


def to_json(value: Any) -> str:
    """Canonical JSON text of a value (keys sorted) for the pool's JSON columns."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def normalize(table: str, frame: pd.DataFrame, now: pd.Timestamp) -> pa.Table:
    """Validate `frame` as rows of `table` and return it as an Arrow table of the table's schema.

    Fills optional columns, derives `sample_id`/`content_id` for samples that lack them, stamps
    `created_at` with `now` where missing, and keeps the last row of a key repeated within `frame`.
    Raises PoolError naming the first bad row. Checks run in Arrow, so a million rows cost milliseconds.
    """
    if table not in SCHEMAS:
        raise PoolError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    schema = SCHEMAS[table]
    missing = [c for c in REQUIRED[table] if c not in frame.columns]
    if missing:
        raise PoolError(f"{table}: missing required column(s) {', '.join(missing)}")
    unknown = [c for c in frame.columns if c not in schema.names]
    if unknown:
        raise PoolError(f"{table}: unknown column(s) {', '.join(map(str, unknown))}")
    if table == "samples":
        frame = complete_samples(frame.reset_index(drop=True))
    columns = {}
    for field in schema:
        if field.name in frame.columns:
            columns[field.name] = _to_arrow(table, field, frame[field.name])
        else:
            columns[field.name] = _default(field, len(frame), now)
    for key in KEYS[table]:
        if pa.types.is_string(schema.field(key).type) and key not in REQUIRED[table]:
            columns[key] = pc.fill_null(columns[key], "")
    if len(frame):
        columns["created_at"] = pc.fill_null(columns["created_at"], pa.scalar(now, type=_TS))
    arrow = _encode_keys(table, pa.table(columns, schema=schema))
    _check_rows(table, arrow)
    return _keep_last_per_key(table, arrow)


def _to_arrow(table: str, field: pa.Field, column: pd.Series) -> pa.Array:
    if column.empty:  # whatever dtype pandas gave it
        return pa.array([], type=field.type)
    if pa.types.is_timestamp(field.type):
        column = pd.to_datetime(column, utc=True)
    elif field.name == "value":
        column = pd.to_numeric(column, errors="coerce")
    try:
        return pa.array(column, type=field.type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise PoolError(f"{table}: column {field.name}: {err}") from None


def _default(field: pa.Field, n: int, now: pd.Timestamp) -> pa.Array:
    """A column of `n` default values: now for created_at, "" for text, else null."""
    if field.name == "created_at":
        return pa.repeat(pa.scalar(now, type=field.type), n)
    if pa.types.is_string(field.type) and field.name != "target":
        return pa.repeat(pa.scalar("", type=field.type), n)
    return pa.nulls(n, type=field.type)


def complete_samples(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill derived sample columns: ids, metric, higher_is_better (where not given: False for the metrics in
    LOWER_IS_BETTER), text, and metadata and target as JSON text."""
    frame = frame.copy()
    for column, default in (
        ("prompt", ""),
        ("source_id", ""),
        ("metric", "acc"),
        ("higher_is_better", None),
        ("metadata", "{}"),
    ):
        if column not in frame.columns:
            frame[column] = default
    frame["higher_is_better"] = [
        metric not in LOWER_IS_BETTER if pd.isna(given) else bool(given)
        for metric, given in zip(frame["metric"], frame["higher_is_better"], strict=True)
    ]
    for column in ("choices", "target"):
        if column not in frame.columns:
            frame[column] = None
    frame["choices"] = [None if is_null(c) else [str(x) for x in c] for c in frame["choices"]]
    frame["target"] = [t if isinstance(t, str) and _is_json(t) else to_json(t) for t in frame["target"]]
    frame["metadata"] = [m if isinstance(m, str) else to_json(m) for m in frame["metadata"]]
    if "text" not in frame.columns:
        frame["text"] = [_sample_text(p, c) for p, c in zip(frame["prompt"], frame["choices"], strict=True)]
    frame["content_id"] = [
        content_id(p, c, json.loads(t)) if p else stable_hash("source_id", i)
        for p, c, t, i in zip(frame["prompt"], frame["choices"], frame["target"], frame["source_id"], strict=True)
    ]
    derived = [stable_hash(s, cid) for s, cid in zip(frame["source"], frame["content_id"], strict=True)]
    given = frame["sample_id"] if "sample_id" in frame.columns else [None] * len(frame)
    frame["sample_id"] = [d if is_null(s) or s == "" else s for s, d in zip(given, derived, strict=True)]
    return frame


def _sample_text(prompt: str, choices: list[str] | None) -> str:
    return prompt if not choices else prompt + "\n" + "\n".join(choices)


def is_null(value: Any) -> bool:
    """None or NaN (what pandas puts where a JSONL or Parquet row lacks a field)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def distinct(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The distinct values of a column (for a dictionary-encoded column: its dictionary)."""
    if pa.types.is_dictionary(column.type):
        chunk = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        return chunk.dictionary
    return pc.unique(column)


def _encode_keys(table: str, arrow: pa.Table) -> pa.Table:
    """Dictionary-encode the key's string columns: fast duplicate checks, and smaller, faster segments.

    Columns are encoded on two threads (Arrow releases the GIL).
    """
    keys = [k for k in KEYS[table] if pa.types.is_string(arrow.schema.field(k).type)]
    with ThreadPoolExecutor(2) as pool:
        encoded = list(pool.map(lambda key: _dictionary_encode(arrow[key]), keys))
    for key, column in zip(keys, encoded, strict=True):
        arrow = arrow.set_column(arrow.schema.get_field_index(key), key, column)
    return arrow


def _dictionary_encode(column: pa.ChunkedArray) -> pa.DictionaryArray:
    """`pc.dictionary_encode`, with a shortcut for a constant column (a run's metric and run_id): comparing
    with the first value costs a seventh of hashing every value."""
    constant = len(column) and not column.null_count and column[0].equals(column[-1])  # else: surely not
    if constant and pc.all(pc.equal(column, column[0])).as_py():
        indices = pa.array(np.zeros(len(column), dtype=np.int32))
        return pa.DictionaryArray.from_arrays(indices, pa.array([column[0].as_py()], type=column.type))
    return pc.dictionary_encode(column).combine_chunks()


def _fail(table: str, arrow: pa.Table, bad: pa.Array | pa.ChunkedArray, why: str) -> None:
    """Raise PoolError for the first row where `bad` is true, if any."""
    bad_np = np.asarray(pc.fill_null(bad, True))
    if not bad_np.any():
        return
    position = int(np.flatnonzero(bad_np)[0])
    row = arrow.slice(position, 1).to_pylist()[0]
    keys = {k: row[k] for k in KEYS[table] if row.get(k) not in (None, "")}
    raise PoolError(f"{table} row {position} {keys}: {why}")


def _blank(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True where a text value is null or only whitespace."""
    return pc.fill_null(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), True)


def _padded(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """True where a text value has whitespace around it."""
    text = column.cast(pa.string())
    return pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(text), text), False)


def _check_rows(table: str, arrow: pa.Table) -> None:
    """Row-level rules of every writer: names non-empty and without spaces around them, finite values, known
    kinds and outcomes."""
    for column in ("sample_id", "model", "model_a", "model_b", "source", "embedder"):
        checked = column in REQUIRED[table] or (table == "samples" and column == "sample_id")
        if checked and (pc.any(_blank(distinct(arrow[column]))).as_py() or arrow[column].null_count):
            _fail(table, arrow, _blank(arrow[column].cast(pa.string())), f"empty {column}")
        if checked and pc.any(_padded(distinct(arrow[column]))).as_py():
            _fail(table, arrow, _padded(arrow[column]), f"{column} with spaces around it (the CLI strips them)")
    if table == "measurements":
        _fail(table, arrow, pc.invert(pc.is_finite(arrow["value"])), "value must be a finite number")
        value, proportion = arrow["value"], pc.is_in(arrow["metric"], pa.array(sorted(PROPORTIONS)))
        outside = pc.and_(proportion, pc.or_(pc.less(value, 0), pc.greater(value, 1)))
        _fail(table, arrow, outside, "value outside [0, 1], the range of this metric (a proportion); " + OTHER_SCALE)
    if table == "samples":
        kinds = pa.array(SAMPLE_KINDS)
        _fail(table, arrow, pc.invert(pc.is_in(arrow["kind"], kinds)), f"kind must be one of {SAMPLE_KINDS}")
    if table == "comparisons":
        outcomes = pa.array(OUTCOMES)
        _fail(table, arrow, pc.invert(pc.is_in(arrow["outcome"], outcomes)), f"outcome must be in {OUTCOMES}")
        same = pc.equal(arrow["model_a"].cast(pa.string()), arrow["model_b"].cast(pa.string()))
        _fail(table, arrow, same, "a model compared with itself")


def _key_codes(arrow: pa.Table, keys: tuple[str, ...]) -> tuple[np.ndarray, int] | None:
    """One int64 per row, equal exactly when the rows' `keys` are equal, and the number of possible codes.

    Key columns hold no nulls (normalize fills them). None if the codes would overflow int64.
    """
    code = np.zeros(arrow.num_rows, dtype=np.int64)
    radix = 1
    for key in keys:
        column = arrow[key]
        encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
        encoded = encoded.combine_chunks() if isinstance(encoded, pa.ChunkedArray) else encoded
        size = len(encoded.dictionary)
        if size == 1:
            continue  # a constant column tells no rows apart
        if radix * size >= 2**62:
            return None
        code *= size
        code += encoded.indices.to_numpy(zero_copy_only=False)
        radix *= size
    return code, radix


def _keep_last_per_key(table: str, arrow: pa.Table) -> pa.Table:
    """Drop all but the last row of each key repeated within one write (the last write wins, as across writes)."""
    if arrow.num_rows < 2:
        return arrow
    coded = _key_codes(arrow, KEYS[table])
    if coded is None:
        frame = arrow.select(list(KEYS[table])).to_pandas()
        duplicated = frame.duplicated(keep="last").to_numpy()
    else:
        codes, radix = coded
        if radix <= 8 * len(codes) and np.bincount(codes, minlength=radix).max() <= 1:
            return arrow
        duplicated = pd.Series(codes).duplicated(keep="last").to_numpy()
    if not duplicated.any():
        return arrow
    return arrow.filter(pa.array(~duplicated))
