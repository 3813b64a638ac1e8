"""Requests from samples, and per-sample metrics from model outputs.

Multiple choice: one (context, delimiter + choice) request per choice; `acc` and `acc_norm` exactly as
lm-eval defines them (argmax of the log-likelihoods, and of log-likelihood / len(choice) in characters).
Generation: `exact_match`, `f1` (SQuAD-style token overlap) and `contains`, after answer extraction.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np

#: The metrics the runner measures per sample, by kind (`multiple_choice_metrics`, `generation_metrics`).
METRICS = {"multiple_choice": ("acc", "acc_norm"), "generation": ("exact_match", "f1", "contains")}


def choice_requests(context: str, choices: list[str], delimiter: str = " ") -> list[tuple[str, str]]:
    """lm-eval's multiple-choice requests: the continuation is the target delimiter plus the choice."""
    return [(context, delimiter + choice) for choice in choices]


def multiple_choice_metrics(loglikelihoods: list[float], choices: list[str], target: int) -> dict[str, float]:
    """acc and acc_norm for one sample (ties go to the first choice, as numpy's argmax does)."""
    lls = np.asarray(loglikelihoods, dtype=float)
    lengths = np.array([float(len(c)) for c in choices])
    return {"acc": float(np.argmax(lls) == target), "acc_norm": float(np.argmax(lls / lengths) == target)}


def extract_answer(text: str, pattern: str | None = None) -> str:
    """The answer in a generation: the first group (or match) of `pattern` when given, else the first
    non-empty line, stripped."""
    if pattern:
        match = re.search(pattern, text, flags=re.MULTILINE)
        if not match:
            return ""
        return (match.group(1) if match.groups() else match.group(0)).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def normalize(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall after normalisation (1.0 when both are empty)."""
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    overlap = sum((Counter(pred) & Counter(ref)).values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


def generation_metrics(answer: str, references: list[str]) -> dict[str, float]:
    """exact_match, f1 and contains of an extracted answer, each the best over the references."""
    if not references:
        raise ValueError("a generation sample needs at least one reference answer")
    normalized = normalize(answer)
    return {
        "exact_match": float(any(normalized == normalize(r) for r in references)),
        "f1": max(token_f1(answer, r) for r in references),
        "contains": float(any(normalize(r) and normalize(r) in normalized for r in references)),
    }
