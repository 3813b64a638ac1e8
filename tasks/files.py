"""Reading local tabular files (JSONL, CSV, Parquet) with errors that name the file and line."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from harness.schema import PoolError

FORMATS = ("jsonl", "csv", "parquet")
#: JSON's whitespace (between an array's values).
_JSON_SPACE = re.compile(r"[ \t\r\n]*")


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


def read_rows(path: str | Path, fmt: str | None = None, allow_empty: bool = False) -> pd.DataFrame:
    """The file's rows as a DataFrame with a `_line` column (1-based line or row number, header excluded).

    JSON comes as lines of objects or as one array of objects (lm-eval 0.4.2's samples files; a row's line is
    where its object starts). Raises PoolError naming `path:line` for malformed JSON, a value that is not an
    object or a line that is not UTF-8, naming `path` for a file with no rows (unless `allow_empty`), and as
    `read_table` says for a CSV or Parquet file.
    """
    path = Path(path)
    if not path.is_file():
        raise PoolError(f"{path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt == "jsonl":
        with path.open("rb") as handle:
            head = handle.read(4096).decode("utf-8-sig", errors="replace").lstrip()
        records, lines = _json_array(path) if head.startswith("[") else _json_lines(path)
        if not records and not allow_empty:
            raise PoolError(f"{path}: no rows")
        frame = pd.DataFrame.from_records(records)
        frame["_line"] = lines
        return frame
    frame, starts = read_table(path, fmt, allow_empty, dtype=str, keep_default_na=False)
    frame["_line"] = starts
    return frame


def _json_lines(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The objects of a JSON-lines file and the line of each (blank lines skipped)."""
    records, lines = [], []
    with path.open("rb") as handle:
        for number, line in enumerate(_utf8_lines(handle, path), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise PoolError(f"{path}:{number}: malformed JSON ({err.msg})") from None
            records.append(_json_object(record, f"{path}:{number}"))
            lines.append(number)
    return records, lines


def _json_array(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The objects of a file holding one JSON array, and the line each starts on."""
    with path.open("rb") as handle:
        text = "".join(_utf8_lines(handle, path))
    decoder, records, lines = json.JSONDecoder(), [], []
    position, line, counted = text.index("[") + 1, 1, 0

    def skip_space(at: int) -> int:
        space = _JSON_SPACE.match(text, at)  # matches the empty string too
        return space.end() if space else at

    try:
        position = skip_space(position)
        while position < len(text) and text[position] != "]":
            line, counted = line + text.count("\n", counted, position), position
            value, position = decoder.raw_decode(text, position)
            records.append(_json_object(value, f"{path}:{line}"))
            lines.append(line)
            position = skip_space(position)
            if position < len(text) and text[position] == ",":
                position = skip_space(position + 1)
            elif position < len(text) and text[position] != "]":
                raise json.JSONDecodeError("expected ',' or ']'", text, position)
        if position >= len(text):
            raise json.JSONDecodeError("the array is not closed", text, len(text) - 1)
        if skip_space(position + 1) < len(text):
            raise json.JSONDecodeError("more after the array", text, skip_space(position + 1))
    except json.JSONDecodeError as err:
        raise PoolError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
    return records, lines


def _json_object(value: Any, where: str) -> dict[str, Any]:
    """`value` if it is a JSON object, else PoolError at `where`."""
    if not isinstance(value, dict):
        raise PoolError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def read_table(path: Path, fmt: str, allow_empty: bool = False, **read_csv: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """A CSV file (`pandas.read_csv` with the options `read_csv`) or a Parquet file, and the line of each row
    (a Parquet file: its 1-based row number).

    Column names are stripped of surrounding spaces. Raises PoolError naming `path:line` for a CSV row with
    more or fewer fields than the header, and for a repeated column name or an empty one after the first
    (pandas would call them `a.1` and `Unnamed: 2`), or naming `path` for an unreadable file or one with no
    rows (unless `allow_empty`: then a header alone gives no rows).
    """
    lines = _csv_lines(path) if fmt == "csv" else None
    if lines is not None and not len(lines) and not allow_empty:
        raise PoolError(f"{path}: no rows")
    try:
        frame = pd.read_csv(path, **read_csv) if fmt == "csv" else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise PoolError(f"{path}: unreadable {fmt} ({str(err).splitlines()[0]})") from None
    if frame.empty and not allow_empty:
        raise PoolError(f"{path}: no rows")
    frame.columns = [str(name).strip() for name in frame.columns]
    if lines is None:
        _check_column_names([str(c) for c in frame.columns], str(path))
        return frame, np.arange(1, len(frame) + 1)
    if len(lines) != len(frame):
        raise PoolError(f"{path}: unreadable csv (pandas read {len(frame)} rows where there are {len(lines)})")
    return frame, lines


def _csv_lines(path: Path) -> np.ndarray:
    """The line each data row of a CSV file starts on (blank lines are skipped, as pandas skips them; a quoted
    field may span lines); PoolError as `read_table` says, or naming a line that is not UTF-8."""
    starts: list[int] = []
    try:
        with path.open("rb") as handle:
            reader = csv.reader(_utf8_lines(handle, path))
            header = next(reader, [])
            _check_column_names(header, f"{path}:1")
            previous = reader.line_num
            for record in reader:
                start, previous = previous + 1, reader.line_num
                if not record:
                    continue
                if len(record) != len(header):
                    raise PoolError(f"{path}:{start}: {len(record)} fields where the header has {len(header)}")
                starts.append(start)
    except csv.Error as err:
        raise PoolError(f"{path}: unreadable csv ({err})") from None
    return np.asarray(starts, dtype=np.int64)


def _utf8_lines(handle: BinaryIO, path: Path) -> Iterator[str]:
    """The lines of a file opened in binary mode, decoded as UTF-8 (a leading byte-order mark dropped);
    PoolError naming the first line that is not UTF-8."""
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as err:
            raise PoolError(f"{path}:{number}: not UTF-8 ({err.reason} at byte {err.start + 1})") from None


def _check_column_names(names: list[str], where: str) -> None:
    """PoolError at `where` for the first column name repeated (spaces around a name do not count), or an
    empty one after the first (pandas writes its index, a matrix's usual id column, without a name)."""
    seen: set[str] = set()
    for position, name in enumerate((name.strip() for name in names), start=1):
        if position > 1 and not name:
            raise PoolError(f"{where}: column {position} has no name")
        if name in seen:
            raise PoolError(f"{where}: column {name!r} appears twice")
        seen.add(name)


def require_columns(frame: pd.DataFrame, path: Path, columns: list[str]) -> None:
    """PoolError naming the first missing column."""
    for column in columns:
        if column not in frame.columns:
            raise PoolError(
                f"{path}: missing required field {column!r} (fields: {', '.join(map(str, frame.columns[:-1]))})"
            )
