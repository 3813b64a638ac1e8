"""A wide result matrix: one row per sample (first column its id), one column per model, empty = missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.schema import OTHER_SCALE, PROPORTIONS, PoolError, complete_samples
from tasks.files import detect_format, read_table, text_column


def import_matrix(
    path: str | Path, source: str, metric: str = "acc", higher_is_better: bool | None = None
) -> dict[str, pd.DataFrame]:
    """Samples (kind `scored`, identified by their row id) and one measurement per non-empty cell;
    `higher_is_better` None: from the metric's name (`complete_samples`).

    Raises PoolError naming the line (the row of a Parquet file) of a row with too few or too many cells, a
    non-numeric or infinite cell (and its column), a cell outside [0, 1] under a metric that is a proportion
    (`PROPORTIONS`: the default acc included), a missing or repeated row id, and a repeated column name or
    an empty one after the first (the id column's name does not matter).
    """
    path = Path(path)
    frame, lines = _read_matrix(path)
    if frame.shape[1] < 2:
        raise PoolError(f"{path}: a matrix needs an id column and at least one model column")
    id_column, models = frame.columns[0], [str(m) for m in frame.columns[1:]]
    ids = text_column(frame, id_column)
    if (ids == "").any():
        raise PoolError(f"{path}:{lines[np.flatnonzero(ids == '')[0]]}: no sample id")
    if (at := _first_repeat(ids)) is not None:
        raise PoolError(f"{path}:{lines[at]}: sample id {ids[at]!r} appears twice")
    values = np.column_stack(
        [_numbers(frame.iloc[:, j + 1], path, lines, ids, model) for j, model in enumerate(models)]
    )
    outside = (values < 0) | (values > 1) if metric in PROPORTIONS else np.zeros(values.shape, dtype=bool)
    if outside.any():
        i, j = (int(at[0]) for at in np.nonzero(outside))
        raise PoolError(
            f"{path}:{lines[i]}: cell of sample {ids[i]!r}, model {models[j]!r} is {values[i, j]:g}, "
            f"outside [0, 1], the range of {metric} (a proportion); {OTHER_SCALE} (--metric)"
        )
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


def _numbers(column: pd.Series, path: Path, lines: np.ndarray, ids: np.ndarray, model: str) -> np.ndarray:
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
            f"{path}:{lines[row]}: cell of sample {ids[row]!r}, model {model!r} "
            f"is not a number: {str(column.iloc[row])!r}"
        )
    return number


def _read_matrix(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The matrix with numeric columns parsed by pandas' C reader (empty cells are NaN), and each row's line."""
    if not path.is_file():
        raise PoolError(f"{path}: no such file")
    fmt = detect_format(path)
    if fmt == "jsonl":
        raise PoolError(f"{path}: a matrix is a CSV or Parquet file (a row per sample, a column per model)")
    return read_table(path, fmt, low_memory=False)


def _first_repeat(values: list[str] | np.ndarray) -> int | None:
    """The position of the first value seen before, or None."""
    repeated = np.flatnonzero(pd.Series(values).duplicated().to_numpy())
    return int(repeated[0]) if len(repeated) else None
