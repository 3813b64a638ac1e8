"""HF datasets -> samples, through `datasets.load_dataset` (a hub id, a builder such as `json` with local
files, or a folder written by `save_to_disk`), with the same field mapping as local files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.schema import PoolError
from tasks.local import DEFAULT_FIELDS, FieldMap, samples_from_rows


def load_hf(
    dataset: str,
    source: str,
    config: str | None = None,
    split: str = "test",
    kind: str = "multiple_choice",
    fields: FieldMap = DEFAULT_FIELDS,
    template: str | None = None,
    data_files: list[str] | None = None,
) -> pd.DataFrame:
    """Samples of one split. A folder saved with `save_to_disk` loads with `load_from_disk`; anything else
    goes to `load_dataset(dataset, config, split=split, data_files=...)`. Errors name the dataset."""
    import datasets

    try:
        folder = Path(dataset)
        saved = folder.is_dir() and any((folder / n).exists() for n in ("dataset_dict.json", "state.json"))
        if saved:
            table = datasets.load_from_disk(dataset)
        else:
            table = datasets.load_dataset(dataset, config, split=split, data_files=data_files)
    except (FileNotFoundError, ValueError, KeyError, ConnectionError) as err:
        raise PoolError(f"cannot load HF dataset {dataset!r} (split {split!r}): {str(err).splitlines()[0]}") from None
    if isinstance(table, datasets.DatasetDict):  # a saved folder of splits (a saved single split is that one)
        if split not in table:
            raise PoolError(f"HF dataset {dataset!r} has no split {split!r}; its splits: {', '.join(table)}")
        table = table[split]
    rows = table.to_pandas()
    rows["_line"] = range(1, len(rows) + 1)
    return samples_from_rows(rows, f"{dataset}[{split}] row", source, kind, fields, template)
