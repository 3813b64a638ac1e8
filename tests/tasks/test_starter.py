"""The starter tasks: each answer checked against an oracle of its own (Python's arithmetic and calendar, a
table of unit factors written here, the facts' pairs), every question asked once."""

from __future__ import annotations

import calendar
import re

import pandas as pd
import pytest

from tasks.starter import starter_samples
from tasks.starter.facts import CAPITALS, OPPOSITES

FACTORS = {  # (small unit, large unit) -> how many of the small make one of the large
    ("centimeters", "meters"): 100,
    ("meters", "kilometers"): 1000,
    ("minutes", "hours"): 60,
    ("seconds", "minutes"): 60,
    ("grams", "kilograms"): 1000,
    ("milliliters", "liters"): 1000,
    ("hours", "days"): 24,
    ("inches", "feet"): 12,
    ("feet", "yards"): 3,
    ("days", "weeks"): 7,
    ("ounces", "pounds"): 16,
    ("quarts", "gallons"): 4,
    ("millimeters", "centimeters"): 10,
    ("yards", "miles"): 1760,
}
DAY_NAMES = list(calendar.day_name)
MONTH_NAMES = list(calendar.month_name)[1:]


def answer(source: str, question: str) -> str:
    """The right answer to a starter question, worked out from its text."""
    if source == "starter/arithmetic":
        a, op, b = re.fullmatch(r"What is (-?\d+) ([-+*]) (\d+)\?", question).groups()
        return str({"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op])
    if source == "starter/capitals":
        return dict((f"What is the capital city of {c}?", capital) for c, capital, _ in CAPITALS)[question]
    if source == "starter/opposites":
        return dict((f'What is the opposite of the word "{w}"?', o) for w, o, _ in OPPOSITES)[question]
    if source == "starter/units":
        small, amount, large = re.fullmatch(r"How many (\w+) are in (\d+) (\w+)\?", question).groups()
        return str(int(amount) * FACTORS[(small, large)])
    if found := re.fullmatch(r"How many days are in (\w+) (\d{4})\?", question):
        month, year = found.groups()
        return str(calendar.monthrange(int(year), MONTH_NAMES.index(month) + 1)[1])
    if found := re.fullmatch(r"How many days are in (\d+) weeks\?", question):
        return str(7 * int(found.group(1)))
    found = re.fullmatch(r"Which (day|month) comes (?:(\d) \w+ )?(after|before) (\w+)\?", question)
    assert found, question
    unit, step, direction, start = found.groups()
    names = DAY_NAMES if unit == "day" else MONTH_NAMES
    offset = int(step or 1) * (1 if direction == "after" else -1)
    return names[(names.index(start) + offset) % len(names)]


def test_every_starter_answer_is_right_and_every_question_asked_once() -> None:
    samples = starter_samples()
    assert samples.groupby("source").size().to_dict() == {
        f"starter/{name}": 100 for name in ("arithmetic", "calendar", "capitals", "opposites", "units")
    }
    assert not samples.duplicated(["source", "prompt"]).any()  # was: calendar 51 questions, units 68
    for row in samples.itertuples():
        question = row.prompt.removeprefix("Question: ").removesuffix("\nAnswer:")
        assert len(set(row.choices)) == len(row.choices) == 4, question
        assert row.choices[row.target] == answer(row.source, question), question
    pd.testing.assert_frame_equal(
        starter_samples(["units"]), samples[samples.source == "starter/units"].reset_index(drop=True)
    )


def test_an_unknown_starter_task_lists_them() -> None:
    with pytest.raises(ValueError, match="unknown starter task.*tasks: starter/arithmetic"):
        starter_samples(["algebra"])
