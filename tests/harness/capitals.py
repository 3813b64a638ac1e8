"""Two multiple-choice questions of an lm-eval-shaped task with a description, for the prompt tests."""

from __future__ import annotations

import json

import pandas as pd


def described_questions(cue: str = "") -> pd.DataFrame:
    """France (Paris, choice 0) and Peru (Lima, choice 1), as a pool holds them: each prompt the description
    "About capitals." and the question, ending in `cue`, the description also in the metadata as `add lm-eval`
    records it."""
    described = json.dumps({"task_description": "About capitals.\n\n", "target_delimiter": " "})
    return pd.DataFrame(
        {
            "sample_id": ["a" * 20, "b" * 20],
            "prompt": [f"About capitals.\n\nQ: France?{cue}", f"About capitals.\n\nQ: Peru?{cue}"],
            "metadata": [described, described],
            "kind": ["multiple_choice"] * 2,
            "choices": [["Paris", "Lima"], ["Paris", "Lima"]],
            "target": ["0", "1"],
        }
    )
