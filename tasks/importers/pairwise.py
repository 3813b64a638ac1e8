"""Pairwise preferences: rows of model_a, model_b, winner [, prompt, judge]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.schema import PoolError, complete_samples
from tasks.files import read_rows, text_column

WINNER_SYNONYMS = {
    "a": "a",
    "left": "a",
    "model_a": "a",
    "b": "b",
    "right": "b",
    "model_b": "b",
    "tie": "tie",
    "draw": "tie",
    "tie (bothbad)": "tie",
}


def import_pairwise(
    path: str | Path,
    source: str,
    model_a: str = "model_a",
    model_b: str = "model_b",
    winner: str = "winner",
    prompt: str | None = None,
    judge: str | None = None,
) -> dict[str, pd.DataFrame]:
    """Samples (kind `preference`, one per distinct prompt, or per row of the file without a prompt column)
    and one comparison per row. Winner values: a|b|tie, left|right|tie, or the winning model's name. `prompt`
    and `judge` default to the columns of those names when the file has them.

    Raises PoolError naming the line of an unknown winner, an empty model name or an empty prompt.
    """
    path = Path(path)
    frame = read_rows(path)
    prompt = prompt or ("prompt" if "prompt" in frame.columns else None)
    judge = judge or ("judge" if "judge" in frame.columns else None)
    for column in [model_a, model_b, winner] + [c for c in (prompt, judge) if c]:
        if column not in frame.columns:
            raise PoolError(f"{path}: missing column {column!r} (columns: {', '.join(frame.columns[:-1])})")
    a, b, raw = (text_column(frame, column, strip=True) for column in (model_a, model_b, winner))
    prompts = text_column(frame, prompt) if prompt else None
    no_prompt = prompts == "" if prompts is not None else np.zeros(len(frame), dtype=bool)
    outcome = np.array(
        [
            WINNER_SYNONYMS.get(w.lower(), "a" if w == x else "b" if w == y else "")
            for w, x, y in zip(raw, a, b, strict=True)
        ],
        dtype=object,
    )
    for bad, why in (
        ((a == "") | (b == ""), "empty model name"),
        (outcome == "", "unknown winner"),
        (a == b, "a model compared with itself"),
        (no_prompt, "empty prompt"),
    ):
        if bad.any():
            at = int(np.flatnonzero(bad)[0])
            raise PoolError(
                f"{path}:{frame['_line'].iloc[at]}: {why} ({model_a}={a[at]!r}, {model_b}={b[at]!r}, "
                f"{winner}={raw[at]!r})"
            )
    if prompts is not None:
        source_ids = prompts
    else:  # each row its own sample, apart from the rows of other files
        source_ids = np.array([f"{path.name}:{n}" for n in frame["_line"]], dtype=object)
        prompts = np.array([f"comparison at line {n} of {path.name}" for n in frame["_line"]], dtype=object)
    samples = complete_samples(
        pd.DataFrame(
            {
                "source": source,
                "source_id": source_ids,
                "kind": "preference",
                "prompt": prompts,
                "metric": "preference",
            }
        )
    )
    comparisons = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].to_numpy(),
            "model_a": a,
            "model_b": b,
            "judge": text_column(frame, judge) if judge else "",
            "outcome": outcome,
        }
    )
    # The same pair judged twice on one sample by one judge is two comparisons, not an update.
    repeat = comparisons.groupby(["sample_id", "model_a", "model_b", "judge"]).cumcount().to_numpy()
    comparisons["run_id"] = [f"import:{path.name}" + (f"#{k}" if k else "") for k in repeat]
    return {"samples": samples.drop_duplicates("sample_id"), "comparisons": comparisons}
