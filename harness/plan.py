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

from harness.letters import INSTRUCTION, LETTERS, lettered_question
from harness.schema import stable_hash


def _uniform(key: tuple[Any, ...], sample_ids: pd.Series) -> np.ndarray:
    """A deterministic U(0, 1) draw per sample, for this key (a seed and a model; a shard's count)."""
    return np.array([int(stable_hash(*key, s, length=13), 16) / 16**13 for s in sample_ids])


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
    draw = _uniform((seed, model), samples["sample_id"])
    chosen = samples.assign(_draw=draw)
    if fraction is not None:
        chosen = chosen[chosen["_draw"] < fraction]
    chosen = chosen.sort_values(["source", "_draw"])
    if limit is not None:
        chosen = chosen.groupby("source", sort=True).head(limit)
    return chosen.drop(columns="_draw").reset_index(drop=True)


SHARD_FORM = "K/N with 1 <= K <= N, such as 2/4"


@dataclass(frozen=True)
class Shard:
    """Part `index` of `count` (1-based) of a run's selection, for processes that share one run's work."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"{self} is no shard: {SHARD_FORM}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N` as a Shard; ValueError when it is not one."""
        index, slash, count = text.strip().partition("/")
        if not (slash and index.strip().isdigit() and count.strip().isdigit()):
            raise ValueError(f"{text!r} is no shard: {SHARD_FORM}")
        return cls(int(index), int(count))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, sample_ids: pd.Series) -> np.ndarray:
        """Whether each sample is in this shard: a pure function of its id, so the shards of a count are
        disjoint and together hold every sample, whatever the pool holds and wherever they run."""
        return np.floor(_uniform(("shard", self.count), sample_ids) * self.count) == self.index - 1


def answer_text(sample: pd.Series, letters: bool = False) -> str:
    """The gold answer as text: the target choice (with `letters`, its letter), or the first reference."""
    target = json.loads(sample["target"])
    if sample["kind"] == "multiple_choice":
        return LETTERS[int(target)] if letters else str(sample["choices"][int(target)])
    return str(target[0] if isinstance(target, list) else target)


@dataclass(frozen=True)
class Prompt:
    """A sample's context in lm-eval's layout: the system part (a system instruction, then the task's
    description), the few-shot examples as (question, answer) pairs, the question, and the text the answer
    opens with (`prefix`: lm-eval's `gen_prefix`, which then opens the examples' answers too). As plain text,
    the system part, then the examples and the question joined by `separator`, each answer after `delimiter`
    (which goes between the plain text and an answer too)."""

    system: str
    examples: tuple[tuple[str, str], ...]
    question: str
    delimiter: str = " "
    separator: str = "\n\n"
    prefix: str = ""

    @property
    def shots(self) -> int:
        return len(self.examples)

    @property
    def body(self) -> str:
        """The examples and the question as one text (lm-eval's single user message)."""
        return self._after_examples(self.question)

    @property
    def text(self) -> str:
        return self.system + self._after_examples(_join(self.question, self.prefix, self.delimiter))

    def answer_delimiter(self, chat: bool) -> str:
        """What goes between the context and a multiple-choice answer: `delimiter`, and with a chat template
        (as lm-eval scores it) nothing, or `delimiter` after a prefix that does not end in whitespace."""
        if not chat:
            return self.delimiter
        return self.delimiter if self.prefix and not self.prefix[-1].isspace() else ""

    def messages(self, multiturn: bool = False) -> list[dict[str, str]]:
        """The chat messages of lm-eval's `--apply_chat_template` layout: the system part as a system message,
        then the examples and the question as one user message, or with `multiturn` (lm-eval's
        `--fewshot_as_multiturn`) each example a user turn answered by an assistant turn and the question
        the last user turn; with a prefix, a last assistant message that the answer continues."""
        system = [{"role": "system", "content": self.system}] if self.system else []
        if not multiturn:
            return [*system, {"role": "user", "content": self.body}, *self._opening()]
        turns = [
            turn
            for question, answer in self.examples
            for turn in ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
        ]
        return [*system, *turns, {"role": "user", "content": self.question}, *self._opening()]

    def _opening(self) -> list[dict[str, str]]:
        return [{"role": "assistant", "content": self.prefix}] if self.prefix else []

    def _after_examples(self, last: str) -> str:
        """The examples, then `last`; an example's answer after `delimiter`, which a prefix (that opens the
        answer) drops where whitespace meets, as lm-eval joins them."""
        join = _join if self.prefix else lambda question, answer, delimiter: question + delimiter + answer
        return self.separator.join([*(join(q, a, self.delimiter) for q, a in self.examples), last])


def fewshot_context(
    sample: pd.Series,
    source_samples: pd.DataFrame,
    k: int,
    system_instruction: str | None = None,
    letters: bool = False,
) -> Prompt:
    """The sample's question after k examples from the other samples of its source (drawn with a seed from
    the sample's own id), its lm-eval task's description (`metadata["task_description"]`, which lm-eval's
    prompts start with) once before them, and `system_instruction` before that, joined as lm-eval joins them.
    An lm-eval task's `gen_prefix` (recorded with the question it follows) opens the answers. With `letters`,
    a multiple-choice question lists its choices lettered and is answered with a letter (`letters.INSTRUCTION`
    after the description; the examples too)."""
    metadata = json.loads(sample["metadata"] or "{}")
    separator = metadata.get("fewshot_delimiter", "\n\n")
    letters = letters and sample["kind"] == "multiple_choice"
    system = _join(system_instruction or "", metadata.get("task_description", ""), separator)
    system = _join(system, INSTRUCTION + separator, separator) if letters else system
    question, prefix = _question(sample, metadata, letters)
    delimiter = metadata.get("target_delimiter", " ")
    if k <= 0:
        return Prompt(system, (), question, delimiter, separator, prefix)
    others = source_samples[source_samples["sample_id"] != sample["sample_id"]].sort_values("sample_id")
    rng = np.random.default_rng(int(str(sample["sample_id"])[:15], 16))
    picked = others.iloc[rng.choice(len(others), size=min(k, len(others)), replace=False)] if len(others) else others
    examples = tuple(_example(row, letters) for _, row in picked.iterrows())
    return Prompt(system, examples, question, delimiter, separator, prefix)


def _example(sample: pd.Series, letters: bool) -> tuple[str, str]:
    """A few-shot example: the sample's question, and its answer after the sample's prefix."""
    question, prefix = _question(sample, json.loads(sample["metadata"] or "{}"), letters)
    return question, _join(prefix, answer_text(sample, letters), " ")


def _question(sample: pd.Series, metadata: dict[str, Any], letters: bool) -> tuple[str, str]:
    """(the question, the prefix that opens its answer): the prompt without its lm-eval task's description,
    or the question recorded beside a `gen_prefix` (`metadata`, the sample's), with `letters` its choices
    lettered (`lettered_question`). A pool that added the task before poolbench recorded the question keeps
    the prefix inside the question."""
    if "question" in metadata:
        question, prefix = str(metadata["question"]), str(metadata.get("gen_prefix", ""))
    else:
        question, prefix = str(sample["prompt"]).removeprefix(metadata.get("task_description", "")), ""
    if letters:
        question = lettered_question(question, [str(choice) for choice in sample["choices"]])
    return question, prefix


def _join(first: str, second: str, delimiter: str) -> str:
    """`first` and `second` with `delimiter` between them unless one has whitespace where they meet (lm-eval's
    `maybe_delimit`: a system instruction and a description, a question and a gen_prefix, a prefix and an
    answer)."""
    if not first or not second:
        return first or second
    return first + ("" if first[-1].isspace() or second[0].isspace() else delimiter) + second
