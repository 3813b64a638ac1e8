"""What a run leaves out or refuses before it starts, given its backend: samples of kinds the backend cannot
answer, and prompts its options cannot render (a chat template, answers by letter)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING

import pandas as pd

from harness import letters
from harness.backends.base import Backend, ChatBackend
from harness.schema import PoolError

if TYPE_CHECKING:
    from harness.runner import RunPlan, RunSpec


def answerable(work: RunPlan, spec: RunSpec, backend: Backend) -> tuple[RunPlan, str | None]:
    """The plan without the samples of the kinds `backend` cannot answer (its `unanswerable`: those scored
    from log-probabilities it does not give), and a note saying how many were left out, if any. PoolError
    when every selected sample is of such a kind."""
    kinds = unanswerable_kinds(spec, backend)
    left_out = work.todo["kind"].isin(kinds)
    if not left_out.any():
        return work, None
    count, present = int(left_out.sum()), set(work.todo.loc[left_out, "kind"])
    named = " and ".join(kind.replace("_", "-") for kind in kinds if kind in present)
    why = f"{spec.backend} gives no log-probabilities of given text, which they are scored from"
    if count == work.selected:
        ways_out = "; select other sources (--source)"
        if "multiple_choice" in kinds:
            ways_out += (
                ", have it answer multiple-choice questions with a letter (--multiple-choice letter), or serve "
                "the model's completions endpoint (openai-completions with base_url=.../v1/completions)"
            )
        raise PoolError(
            f"nothing to evaluate: the {work.selected} samples selected are {named} samples, and {why}{ways_out}"
        )
    todo = work.todo[~left_out].reset_index(drop=True)
    return replace(work, todo=todo, selected=work.selected - count), f"{count} {named} samples left out: {why}"


def unanswerable_kinds(spec: RunSpec, backend: Backend) -> tuple[str, ...]:
    """The sample kinds `backend` cannot answer with `spec`'s options (its `unanswerable`, less multiple
    choice when answered by letter)."""
    return tuple(
        kind for kind in getattr(backend, "unanswerable", ()) if not (spec.letters and kind == "multiple_choice")
    )


def check_prompts(spec: RunSpec, backend: Backend, samples: pd.DataFrame) -> None:
    """PoolError when `spec`'s options cannot render the prompts of `samples` on `backend`: with
    `--apply-chat-template`, `_check_chat`; answering by letter, `_check_letters`."""
    if spec.chat_template:
        _check_chat(spec, backend, samples)
    if spec.letters:
        _check_letters(samples)


def _check_chat(spec: RunSpec, backend: Backend, samples: pd.DataFrame) -> None:
    """PoolError unless the backend's model has a chat template; a sample whose answer opens with a prefix
    (lm-eval's `gen_prefix`, the start of the assistant's turn) has its question recorded and goes to a
    backend that renders templates itself or to a chat server that continues a turn (not OpenAI's API); and,
    for separate turns, no sample has few-shot examples inside its prompt (`add lm-eval --num-fewshot`)."""
    if not isinstance(backend, ChatBackend):
        raise PoolError(f"--apply-chat-template: {spec.backend} has no chat template")
    backend.apply_chat_template([{"role": "user", "content": ""}])
    metadata = _parsed_metadata(samples)

    def refuse(which: pd.Series, problem: str) -> None:
        _refuse(samples, which, "--apply-chat-template", problem)

    prefixed = metadata.map(lambda m: "gen_prefix" in m)
    refuse(
        prefixed & ~metadata.map(lambda m: "question" in m),
        "open the answer with a gen_prefix but were added by an older poolbench: add them again",
    )
    if backend.takes_messages and not spec.model_args.get("base_url"):
        refuse(
            prefixed,
            "open the answer with a gen_prefix, which OpenAI's own API cannot continue (a server given by "
            "base_url, such as vLLM's, continues it)",
        )
    if spec.fewshot_as_multiturn:
        refuse(
            _examples_inside(metadata),
            "were added with their few-shot examples inside the prompt, which cannot be split into turns "
            "(--fewshot-as-multiturn): add them without --num-fewshot and run with --num-fewshot, or run "
            "with --no-fewshot-as-multiturn",
        )


def _check_letters(samples: pd.DataFrame) -> None:
    """PoolError when a multiple-choice sample cannot be answered by letter: more choices than letters, or
    few-shot examples inside its prompt (`add lm-eval --num-fewshot`), answered with the choices' text."""
    questions = samples[samples["kind"] == "multiple_choice"]
    letters.check_count(max(map(len, questions["choices"]), default=0))
    _refuse(
        questions,
        _examples_inside(_parsed_metadata(questions)),
        "--multiple-choice letter",
        "were added with their few-shot examples inside the prompt, answered with the choices' text, not with "
        "letters: add them without --num-fewshot and run with --num-fewshot",
    )


def _parsed_metadata(samples: pd.DataFrame) -> pd.Series:
    """Each sample's metadata as a dict."""
    return samples["metadata"].map(lambda m: json.loads(m or "{}"))


def _examples_inside(metadata: pd.Series) -> pd.Series:
    """Which samples (by their parsed metadata) are lm-eval tasks' added with their few-shot examples inside
    the prompt."""
    return metadata.map(lambda m: m.get("num_fewshot", 0) > 0)


def _refuse(samples: pd.DataFrame, which: pd.Series, option: str, problem: str) -> None:
    """PoolError naming the lm-eval tasks of the samples `which` marks, if any, and why `option` refuses them."""
    if which.any():
        tasks = ", ".join(sorted(set(samples.loc[which, "source"])))
        raise PoolError(f"{option}: the lm-eval task(s) {tasks} {problem}")
