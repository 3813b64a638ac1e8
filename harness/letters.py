"""Multiple-choice samples answered with a letter (`run --multiple-choice letter`), for models that give no
log-probabilities of given text (chat endpoints): the question with its choices lettered A, B, C, ... as
HELM's joint adapter lists them, and the letter read back from what the model generated."""

from __future__ import annotations

import re
import string

from harness.schema import PoolError

LETTERS = string.ascii_uppercase
#: Before the questions: what the model is asked to answer.
INSTRUCTION = "Answer with the letter of the correct choice."
#: The cue the lettered question ends in, and the answer follows.
CUE = "Answer:"
#: Cues that end lm-eval's prompts on a line of their own ("Question: ...\nAnswer:", TruthfulQA's "Q: ...\nA:").
PROMPT_CUES = (CUE, "A:")

#: "the answer is B", "Answer: (B)", "ANSWER: B", "**Answer:** B": the letter after the word answer (brackets and
#: markdown's emphasis may wrap it).
_STATED = re.compile(r"\b(?i:answer)(?:\s+is)?[\s:(\[*_]*([A-Z])\b")
#: A reply that opens with the letter: "B", "B.", "(B)", "B) Paris", "B: Paris", "**B**" (not "A good ...").
_OPENING = re.compile(r"^[(\[*_]*([A-Z])(?:[.):\]*_]|$)")


def check_count(choices: int) -> None:
    """PoolError when a sample has more choices than there are letters."""
    if choices > len(LETTERS):
        raise PoolError(f"--multiple-choice letter: a sample has {choices} choices, more than the 26 letters")


def lettered_question(question: str, choices: list[str]) -> str:
    """The question, then each choice after its letter ("A. Paris"), then the cue "Answer:". A question whose
    choices are its letters (lm-eval's MMLU lists them in the prompt) stays as it is, with the cue added if it
    lacks it; a question whose last line is a cue (`PROMPT_CUES`, as lm-eval's prompts have) has it replaced
    by the cue after the choices."""
    check_count(len(choices))
    stem, _, last = question.rstrip().rpartition("\n")
    if last.strip() not in PROMPT_CUES:
        stem = question.rstrip()
    listed_already = [choice.strip() for choice in choices] == list(LETTERS[: len(choices)])
    listed = [] if listed_already else [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices, strict=False)]
    return "\n".join([stem, *listed, CUE] if stem else [*listed, CUE])


def chosen_letter(text: str, choices: int) -> str:
    """The letter a generation chose: the one its first line opens with ("B", "B.", "(B) Paris": a base model
    that goes on past its answer may write the next question's), else the one after the last word "answer"
    ("The answer is B", "ANSWER: B": a reply that reasons first concludes last); "" when there is none, or it
    names no choice."""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    opening = _OPENING.match(first_line)
    stated = _STATED.findall(text)
    letter = opening.group(1) if opening else stated[-1] if stated else ""
    return letter if letter and LETTERS.index(letter) < choices else ""
