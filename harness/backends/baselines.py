"""Classic baselines as backends: they score continuations without a model, so they run through the same
runner, scorer and pool as real models. `random`: a seeded uniform score per (context, continuation);
`longest` / `shortest`: the continuation's length in characters (ties: the first choice, by argmax)."""

from __future__ import annotations

from typing import Any

from harness.backends.base import GenerationRequest
from harness.schema import PoolError, stable_hash

POLICIES = ("random", "longest", "shortest")


class ChoiceBaseline:
    """A model-free multiple-choice policy; generation returns an empty string."""

    #: Its scores rank a sample's choices but are no log-probabilities: of a continuation sample a run keeps
    #: `acc` (never greedy) and no `loglikelihood`, which would rank a policy's score against models' values.
    log_probabilities = False
    #: Nor can it score a document by them: a run leaves those out (`run_checks.answerable`).
    unanswerable = ("document",)

    def __init__(self, policy: str, seed: int = 0) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown baseline {policy!r}; baselines: {', '.join(POLICIES)}")
        self.policy = policy
        self.seed = seed

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        return [(self._score(context, continuation), False) for context, continuation in requests]

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        """None to give: a run leaves document samples out of a baseline's selection (`unanswerable`)."""
        raise PoolError("baselines have no log-probabilities: they do not score document samples")

    def _score(self, context: str, continuation: str) -> float:
        if self.policy == "random":
            return int(stable_hash(self.seed, context, continuation, length=12), 16) / 16**12
        return float(len(continuation)) * (1.0 if self.policy == "longest" else -1.0)

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        return ["" for _ in requests]

    def token_count(self, text: str) -> int:
        return len(text.split())

    @property
    def max_length(self) -> int:
        return 1 << 30

    def describe(self) -> dict[str, Any]:
        return {"backend": f"baseline-{self.policy}", "revision": f"seed={self.seed}"}
