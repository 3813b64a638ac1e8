"""Which (model, sample) pairs a run evaluates, and each sample's few-shot context.

Selection is a pure function of (seed, model, sample_id), so a sample's membership never depends on what
else is in the pool or in the subset; few-shot examples are drawn with a seed from the sample's own id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.schema import stable_hash


def _uniform(seed: int, model: str, sample_ids: pd.Series) -> np.ndarray:
    """A deterministic U(0, 1) draw per sample, for this seed and model."""
    return np.array([int(stable_hash(seed, model, s, length=13), 16) / 16**13 for s in sample_ids])


def check_selection(fraction: float | None, limit: int | None) -> None:
    """ValueError on a fraction outside (0, 1] or a limit below 1."""
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"--fraction must be in (0, 1], got {fraction}")
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")


def select(
    samples: pd.DataFrame, model: str, seed: int = 0, fraction: float | None = None, limit: int | None = None
) -> pd.DataFrame:
    """All samples, a seeded random `fraction` of them, or the first `limit` of each source in a seeded
    random order (a stratified subset). Raises ValueError on a fraction outside (0, 1]."""
    check_selection(fraction, limit)
    draw = _uniform(seed, model, samples["sample_id"])
    chosen = samples.assign(_draw=draw)
    if fraction is not None:
        chosen = chosen[chosen["_draw"] < fraction]
    chosen = chosen.sort_values(["source", "_draw"])
    if limit is not None:
        chosen = chosen.groupby("source", sort=True).head(limit)
    return chosen.drop(columns="_draw").reset_index(drop=True)


def answer_text(sample: pd.Series) -> str:
    """The gold answer as text: the target choice, or the first reference."""
    target = json.loads(sample["target"])
    if sample["kind"] == "multiple_choice":
        return str(sample["choices"][int(target)])
    return str(target[0] if isinstance(target, list) else target)


@dataclass(frozen=True)
class Prompt:
    """A sample's context in lm-eval's layout: the system part (a system instruction, then the task's
    description), the few-shot examples as (question, answer) pairs, and the question. As plain text, the
    system part, then the examples and the question joined by `separator`, each answer after `delimiter`
    (which goes between the plain text and an answer too)."""

    system: str
    examples: tuple[tuple[str, str], ...]
    question: str
    delimiter: str = " "
    separator: str = "\n\n"

    @property
    def shots(self) -> int:
        return len(self.examples)

    @property
    def body(self) -> str:
        """The examples and the question as one text (lm-eval's single user message)."""
        return self.separator.join(
            [*(question + self.delimiter + answer for question, answer in self.examples), self.question]
        )

    @property
    def text(self) -> str:
        return self.system + self.body

    def messages(self, multiturn: bool = False) -> list[dict[str, str]]:
        """The chat messages of lm-eval's `--apply_chat_template` layout: the system part as a system message,
        then the examples and the question as one user message, or with `multiturn` (lm-eval's
        `--fewshot_as_multiturn`) each example a user turn answered by an assistant turn and the question
        the last user turn."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        if not multiturn:
            return [*system, {"role": "user", "content": self.body}]
        turns = [
            turn
            for question, answer in self.examples
            for turn in ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
        ]
        return [*system, *turns, {"role": "user", "content": self.question}]


def fewshot_context(
    sample: pd.Series, source_samples: pd.DataFrame, k: int, system_instruction: str | None = None
) -> Prompt:
    """The sample's question after k examples from the other samples of its source (drawn with a seed from
    the sample's own id), its lm-eval task's description (`metadata["task_description"]`, which lm-eval's
    prompts start with) once before them, and `system_instruction` before that, joined as lm-eval joins them."""
    metadata = json.loads(sample["metadata"] or "{}")
    separator = metadata.get("fewshot_delimiter", "\n\n")
    system = _join(system_instruction or "", metadata.get("task_description", ""), separator)
    question = _question(str(sample["prompt"]), metadata)
    delimiter = metadata.get("target_delimiter", " ")
    if k <= 0:
        return Prompt(system, (), question, delimiter, separator)
    others = source_samples[source_samples["sample_id"] != sample["sample_id"]].sort_values("sample_id")
    rng = np.random.default_rng(int(str(sample["sample_id"])[:15], 16))
    picked = others.iloc[rng.choice(len(others), size=min(k, len(others)), replace=False)] if len(others) else others
    examples = tuple(
        (_question(str(row["prompt"]), json.loads(row["metadata"] or "{}")), answer_text(row))
        for _, row in picked.iterrows()
    )
    return Prompt(system, examples, question, delimiter, separator)


def _question(prompt: str, metadata: dict[str, Any]) -> str:
    """The prompt without its lm-eval task's description."""
    return prompt.removeprefix(metadata.get("task_description", ""))


def _join(first: str, second: str, delimiter: str) -> str:
    """`first` and `second` with `delimiter` between them unless one has whitespace where they meet (lm-eval's
    rule for a system instruction and a description)."""
    if not first or not second:
        return first or second
    return first + ("" if first[-1].isspace() or second[0].isspace() else delimiter) + second
