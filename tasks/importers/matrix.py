"""A wide result matrix: one row per sample (first column its id), one column per model, empty = missing."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from harness.schema import PoolError, complete_samples
from tasks.files import detect_format, text_column


def import_matrix(
    path: str | Path, source: str, metric: str = "acc", higher_is_better: bool | None = None
) -> dict[str, pd.DataFrame]:
    """Samples (kind `scored`, identified by their row id) and one measurement per non-empty cell;
    `higher_is_better` None: from the metric's name (`complete_samples`).

    Raises PoolError naming the line and column of a non-numeric or infinite cell, a missing or repeated row id
    or a repeated model column.
    """
    path = Path(path)
    frame = _read_matrix(path)
    if frame.shape[1] < 2:
        raise PoolError(f"{path}: a matrix needs an id column and at least one model column")
    id_column, models = frame.columns[0], [str(m) for m in frame.columns[1:]]
    names = _csv_header(path)[1:] if _is_csv(path) else models
    if (at := _first_repeat(names)) is not None:
        raise PoolError(f"{path}:1: model column {names[at]!r} appears twice")
    ids = text_column(frame, id_column)
    if (ids == "").any():
        raise PoolError(f"{path}:{_line(path, int(np.flatnonzero(ids == '')[0]))}: no sample id")
    if (at := _first_repeat(ids)) is not None:
        raise PoolError(f"{path}:{_line(path, at)}: sample id {ids[at]!r} appears twice")
    values = np.column_stack([_numbers(frame.iloc[:, j + 1], path, ids, model) for j, model in enumerate(models)])
    samples = complete_samples(
        pd.DataFrame(
            {
                "source": source,
                "source_id": ids,
                "kind": "scored",
                "metric": metric,
                "higher_is_better": higher_is_better,
                "metadata": "{}",
            }
        )
    )
    row, col = np.nonzero(~np.isnan(values))
    measurements = pd.DataFrame(
        {  # object columns: pandas would otherwise copy a million strings into its own string type
            "sample_id": pd.Series(samples["sample_id"].to_numpy(dtype=object)[row], dtype=object),
            "model": pd.Series(np.asarray(models, dtype=object)[col], dtype=object),
            "metric": metric,
            "run_id": f"import:{path.name}",
            "value": values[row, col],
        }
    )
    return {"samples": samples, "measurements": measurements}


def _numbers(column: pd.Series, path: Path, ids: np.ndarray, model: str) -> np.ndarray:
    """A model's column as floats (NaN = not measured); PoolError at the first cell that is no finite number."""
    if pd.api.types.is_numeric_dtype(column):
        number = column.to_numpy(dtype=float)
        bad = np.isinf(number)
    else:
        text = column.astype("string").str.strip()
        number = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        given = text.notna().to_numpy() & (text.fillna("") != "").to_numpy()
        bad = given & ~np.isfinite(number)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise PoolError(
            f"{path}:{_line(path, row)}: cell of sample {ids[row]!r}, model {model!r} "
            f"is not a number: {column.iloc[row]!r}"
        )
    return number


def _read_matrix(path: Path) -> pd.DataFrame:
    """The matrix with numeric columns parsed by pandas' C reader (empty cells are NaN)."""
    if not path.is_file():
        raise PoolError(f"{path}: no such file")
    if detect_format(path) == "jsonl":
        raise PoolError(f"{path}: a matrix is a CSV or Parquet file (a row per sample, a column per model)")
    try:
        frame = pd.read_csv(path, low_memory=False) if _is_csv(path) else pd.read_parquet(path)
    except (ValueError, OSError, pd.errors.ParserError) as err:
        raise PoolError(f"{path}: unreadable matrix ({str(err).splitlines()[0]})") from None
    if frame.empty:
        raise PoolError(f"{path}: no rows")
    return frame


def _first_repeat(values: list[str] | np.ndarray) -> int | None:
    """The position of the first value seen before, or None."""
    repeated = np.flatnonzero(pd.Series(values).duplicated().to_numpy())
    return int(repeated[0]) if len(repeated) else None


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() not in (".parquet", ".pq")


def _csv_header(path: Path) -> list[str]:
    """The CSV's column names as written (pandas renames a repeated `a` to `a.1`)."""
    with path.open(newline="", encoding="utf-8-sig") as file:
        return next(csv.reader(file), [])


def _line(path: Path, row: int) -> int:
    """The file line of data row `row` (CSV: after the header), or its 1-based row number (Parquet)."""
    return row + (2 if _is_csv(path) else 1)
