"""The backend protocol: log-likelihoods of (context, continuation) pairs and of whole texts, and generations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: The sample kinds scored from the log-probabilities of given text.
SCORED_FROM_LOG_PROBABILITIES = ("multiple_choice", "continuation", "document")


@dataclass(frozen=True)
class GenerationRequest:
    """Generate from `context` until a stop string or `max_tokens`, greedily unless settings say otherwise."""

    context: str
    until: tuple[str, ...] = ("\n\n",)
    max_tokens: int = 64
    settings: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """What the runner needs from a model. A backend that cannot answer some kinds of sample (a chat endpoint,
    with no log-probabilities of given text) names them in `unanswerable`; a run leaves them out."""

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        """For each (context, continuation): the continuation's summed log-probability and whether it is
        the greedy continuation. Results come back in request order."""
        ...

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        """For each text: its summed log-probability from its first token on, in lm-eval's rolling windows
        (a text longer than the context window is scored window by window, each token once). In order."""
        ...

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        """Generated text per request, in request order."""
        ...

    def token_count(self, text: str) -> int:
        """Tokens of `text` (to flag prompts longer than the context window)."""
        ...

    @property
    def max_length(self) -> int:
        """The context window in tokens."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a run records of the backend (its config's `backend_info`; `revision` also in the `models`
        table): the weights' revision or hash, and where and how it runs (device, dtype)."""
        ...


@runtime_checkable
class ChatBackend(Backend, Protocol):
    """A backend whose models may have a chat template (`run --apply-chat-template`)."""

    #: True for a chat endpoint: every context it is sent is `apply_chat_template`'s rendering of messages
    #: (without `--apply-chat-template`, of the plain prompt as one user message)
    takes_messages: bool

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """`messages` (role, content) rendered by the model's chat template, ending with the opening of the
        assistant's turn, or inside it when the last message is the assistant's (`continues`: an answer's
        prefix, which the model continues). PoolError when the model has no chat template."""
        ...


def continues(messages: list[dict[str, str]]) -> bool:
    """Whether the chat ends inside the assistant's turn, which the model continues."""
    return bool(messages) and messages[-1]["role"] == "assistant"
