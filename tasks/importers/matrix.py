"""A wide result matrix: one row per sample (first column its id), one column per model, empty = missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.schema import PoolError, complete_samples
from tasks.files import read_rows


def import_matrix(
    path: str | Path, source: str, metric: str = "acc", higher_is_better: bool = True
) -> dict[str, pd.DataFrame]:
    """Samples (kind `scored`, identified by their row id) and one measurement per non-empty cell.

    Raises PoolError naming the row and column of a non-numeric or non-finite cell, or a repeated row id.
    """
    path = Path(path)
    frame = read_rows(path)
    if frame.shape[1] < 3:
        raise PoolError(f"{path}: a matrix needs an id column and at least one model column")
    id_column, models = frame.columns[0], [c for c in frame.columns[1:] if c != "_line"]
    ids = frame[id_column].astype(str).to_numpy()
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        at = int(np.flatnonzero(repeated)[0])
        raise PoolError(f"{path}:{frame['_line'].iloc[at]}: sample id {ids[at]!r} appears twice")
    cells = frame[models]
    text = cells.astype(str).apply(lambda c: c.str.strip())
    empty = cells.isna().to_numpy() | (text == "").to_numpy()
    values = text.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    bad = ~empty & ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise PoolError(
            f"{path}:{frame['_line'].iloc[row]}: cell of sample {ids[row]!r}, model {models[col]!r} "
            f"is not a number: {cells.iat[row, col]!r}"
        )
    samples = pd.DataFrame(
        {
            "source": source,
            "source_id": ids,
            "kind": "scored",
            "metric": metric,
            "higher_is_better": higher_is_better,
            "metadata": "{}",
        }
    )
    samples = complete_samples(samples)
    sample_id = samples["sample_id"].to_numpy()
    row, col = np.nonzero(~empty)
    measurements = pd.DataFrame(
        {
            "sample_id": sample_id[row],
            "model": np.asarray(models, dtype=object)[col],
            "metric": metric,
            "run_id": f"import:{path.name}",
            "value": values[row, col],
        }
    )
    return {"samples": samples, "measurements": measurements}
