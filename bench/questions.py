"""Samples the benchmarks put in their pools."""

from __future__ import annotations

import pandas as pd


def two_choice_questions(n: int) -> pd.DataFrame:
    """`n` distinct multiple-choice samples of source "bench", choices a/b, target a."""
    return pd.DataFrame(
        {
            "source": "bench",
            "kind": "multiple_choice",
            "prompt": [f"question {i}" for i in range(n)],
            "choices": [["a", "b"]] * n,
            "target": 0,
        }
    )
