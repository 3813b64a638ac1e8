"""Reading local tabular files (JSONL, CSV, Parquet) with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from harness.schema import PoolError

FORMATS = ("jsonl", "csv", "parquet")


def text_column(frame: pd.DataFrame, column: str, strip: bool = False) -> np.ndarray:
    """`frame[column]` as strings (stripped if asked), "" where a value is missing (JSONL and Parquet rows give
    NaN or None where CSV gives "")."""
    text = frame[column].astype("string").fillna("")
    return (text.str.strip() if strip else text).to_numpy(dtype=object)


def detect_format(path: Path) -> str:
    """jsonl, csv or parquet from the file name (.json and .ndjson count as JSONL)."""
    suffix = path.suffix.lower().lstrip(".")
    fmt = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise PoolError(f"{path}: unknown file type {path.suffix!r}; expected one of .jsonl, .csv, .parquet")
    return fmt


def read_rows(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """The file's rows as a DataFrame with a `_line` column (1-based line or row number, header excluded).

    Raises PoolError naming `path:line` for a malformed JSON line, or `path` for an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise PoolError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        records, lines = [], []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise PoolError(f"{path}:{number}: malformed JSON ({err.msg})") from None
                if not isinstance(record, dict):
                    raise PoolError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
                records.append(record)
                lines.append(number)
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
        frame["_line"] = lines
        return frame
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if fmt == "csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise PoolError(f"{path}: unreadable {fmt} ({str(err).splitlines()[0]})") from None
    frame["_line"] = range(2 if fmt == "csv" else 1, len(frame) + (2 if fmt == "csv" else 1))
    return frame


def require_columns(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    """PoolError naming the first missing column."""
    for column in columns:
        if column not in frame.columns:
            raise PoolError(
                f"{path}: missing required field {column!r} (fields: {', '.join(map(str, frame.columns[:-1]))})"
            )
