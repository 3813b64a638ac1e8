"""Starter tasks: five small multiple-choice sources written for poolbench, for offline use and the demo.

Every sample is generated deterministically (a fixed seed per source), rendered in lm-eval's zero-shot
multiple-choice style ("Question: ...\\nAnswer:" with each choice scored as " choice"), and carries its
subject and difficulty in metadata. The sources are easy enough that a 135M model is above chance and hard
enough that it is far from perfect.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pandas as pd

from tasks.starter.facts import CAPITALS, OPPOSITES

Item = tuple[str, list[str], int, str]  # question, choices, target index, difficulty


def _with_distractors(rng: random.Random, answer: str, pool: list[str], k: int = 3) -> tuple[list[str], int]:
    """The answer among k distinct distractors from `pool`, in a seeded random order."""
    distractors = rng.sample([p for p in dict.fromkeys(pool) if p != answer], k)
    choices = [answer, *distractors]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def _distinct(draw: Callable[[int], Item], n: int = 100) -> list[Item]:
    """`n` items of distinct questions: `draw(i)` makes a candidate for the i-th, drawn again while its question
    is one already kept."""
    items: list[Item] = []
    seen: set[str] = set()
    for _ in range(100 * n):
        item = draw(len(items))
        if item[0] not in seen:
            seen.add(item[0])
            items.append(item)
            if len(items) == n:
                return items
    raise RuntimeError(f"fewer than {n} distinct questions")  # a generator with too few: a bug here


def arithmetic(rng: random.Random) -> list[Item]:
    def draw(i: int) -> Item:
        difficulty = ("easy", "medium", "hard")[i % 3]
        top = {"easy": 10, "medium": 50, "hard": 200}[difficulty]
        a, b = rng.randint(1, top), rng.randint(1, top)
        op = rng.choice("+-*" if difficulty != "easy" else "+-")
        if op == "*":
            b = rng.randint(2, 12)
        answer = {"+": a + b, "-": a - b, "*": a * b}[op]
        near = sorted({answer + d for d in (-10, -2, -1, 1, 2, 10)} - {answer})
        choices, target = _with_distractors(rng, str(answer), [str(v) for v in near])
        return f"What is {a} {op} {b}?", choices, target, difficulty

    return _distinct(draw)


def capitals(rng: random.Random) -> list[Item]:
    all_capitals = [capital for _, capital, _ in CAPITALS]
    items = []
    for country, capital, difficulty in CAPITALS:
        choices, target = _with_distractors(rng, capital, all_capitals)
        items.append((f"What is the capital city of {country}?", choices, target, difficulty))
    return items


def opposites(rng: random.Random) -> list[Item]:
    words = [w for pair in OPPOSITES for w in pair[:2]]
    items = []
    for word, opposite, difficulty in OPPOSITES:
        choices, target = _with_distractors(rng, opposite, [w for w in words if w != word])
        items.append((f'What is the opposite of the word "{word}"?', choices, target, difficulty))
    return items


UNITS = [  # (large unit, small unit, factor, difficulty)
    ("meters", "centimeters", 100, "easy"),
    ("kilometers", "meters", 1000, "easy"),
    ("hours", "minutes", 60, "easy"),
    ("minutes", "seconds", 60, "easy"),
    ("kilograms", "grams", 1000, "easy"),
    ("liters", "milliliters", 1000, "medium"),
    ("days", "hours", 24, "medium"),
    ("feet", "inches", 12, "medium"),
    ("yards", "feet", 3, "medium"),
    ("weeks", "days", 7, "medium"),
    ("pounds", "ounces", 16, "hard"),
    ("gallons", "quarts", 4, "hard"),
    ("centimeters", "millimeters", 10, "hard"),
    ("miles", "yards", 1760, "hard"),
]


def units(rng: random.Random) -> list[Item]:
    def draw(i: int) -> Item:
        large, small, factor, difficulty = UNITS[i % len(UNITS)]
        amount = rng.randint(2, 9)
        answer = amount * factor
        pool = [
            str(v)
            for v in {
                amount * factor * 10,
                amount * factor // 10 or 1,
                (amount + 1) * factor,
                (amount - 1) * factor,
                amount + factor,
                amount * factor * 2,
            }
            if v != answer
        ]
        choices, target = _with_distractors(rng, str(answer), pool)
        return f"How many {small} are in {amount} {large}?", choices, target, difficulty

    return _distinct(draw)


DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def calendar(rng: random.Random) -> list[Item]:
    def draw(i: int) -> Item:
        kind = i % 4
        if kind in (0, 1):
            names, unit = (DAYS, "day") if kind == 0 else (MONTHS, "month")
            start, step = rng.randrange(len(names)), rng.choice([1, 1, 2, 3])
            direction = rng.choice([1, -1])
            answer = names[(start + direction * step) % len(names)]
            word = "after" if direction > 0 else "before"
            where = word if step == 1 else f"{step} {unit}s {word}"
            question = f"Which {unit} comes {where} {names[start]}?"
            difficulty = "easy" if step == 1 else "medium" if step == 2 else "hard"
            choices, target = _with_distractors(rng, answer, names)
        elif kind == 2:
            month, year = rng.randrange(12), rng.randint(2019, 2026)
            leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
            answer = str(MONTH_DAYS[month] + (month == 1 and leap))
            question = f"How many days are in {MONTHS[month]} {year}?"
            choices, target = _with_distractors(rng, answer, ["28", "29", "30", "31", "32"])
            difficulty = "hard" if month == 1 else "medium"
        else:
            weeks = rng.randint(2, 30)
            question = f"How many days are in {weeks} weeks?"
            answer = str(7 * weeks)
            choices, target = _with_distractors(rng, answer, [str(7 * weeks + d) for d in (-7, -1, 1, 7, 14)])
            difficulty = "medium"
        return question, choices, target, difficulty

    return _distinct(draw)


SOURCES: dict[str, tuple[str, Callable[[random.Random], list[Item]]]] = {
    "starter/arithmetic": ("arithmetic", arithmetic),
    "starter/capitals": ("geography", capitals),
    "starter/opposites": ("vocabulary", opposites),
    "starter/units": ("unit conversion", units),
    "starter/calendar": ("calendar", calendar),
}


def starter_samples(names: list[str] | None = None) -> pd.DataFrame:
    """The starter samples of the named sources (all by default), as rows for the samples table.

    Names may be given with or without the `starter/` prefix; an unknown name raises ValueError.
    """
    wanted = [n if n.startswith("starter/") else f"starter/{n}" for n in (names or SOURCES)]
    unknown = [n for n in wanted if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown starter task(s) {unknown}; tasks: {', '.join(SOURCES)}")
    rows = []
    for source in wanted:
        subject, generate = SOURCES[source]
        for number, (question, choices, target, difficulty) in enumerate(generate(random.Random(source))):
            rows.append(
                {
                    "source": source,
                    "source_id": f"{source.split('/')[1]}-{number:03d}",
                    "kind": "multiple_choice",
                    "prompt": f"Question: {question}\nAnswer:",
                    "choices": choices,
                    "target": target,
                    "metric": "acc",
                    "higher_is_better": True,
                    "metadata": {
                        "subject": subject,
                        "difficulty": difficulty,
                        "license": "MIT (poolbench)",
                        "target_delimiter": " ",
                    },
                    "text": f"{question} " + " / ".join(choices),
                }
            )
    return pd.DataFrame(rows)
