"""Multiple-choice log-likelihoods with each question's context computed once (HF causal models).

lm-eval scores every (context, choice) pair as its own sequence, so a four-choice question runs its context
through the model four times. Here the requests that share a context (tokenized exactly as lm-eval's
`HFLM._encode_pair` does) form a group: the contexts of up to `batch_size` groups run once, left-padded,
keeping their key/value cache; the cache is repeated once per choice, and the choices' tokens run on top of
it in one batch. The first choice token is scored from the context's last logits, the rest from the second
pass. Requests this cannot serve (an empty context, or longer than the model's window, which lm-eval
truncates) go to lm-eval's own `loglikelihood`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Pair = tuple[list[int], list[int]]


class SharedPrefixScorer:
    """`loglikelihood` over an lm-eval `HFLM` (its model, tokenizer and device), context computed once.

    `batch_size`: contexts per batch; None, the most that fit, found as lm-eval's `batch_size=auto` finds it:
    from the model's `max_batch_size` (lm-eval's, 64 unless given), halved at each out-of-memory error, and
    the size that fit kept for the batches after."""

    def __init__(self, lm: Any, batch_size: int | None) -> None:
        self.lm = lm
        self.adaptive = batch_size is None
        self.batch_size = max(int((lm.max_batch_size or 64) if batch_size is None else batch_size), 1)
        self.cache_argument = _cache_argument(lm.model)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        fallback = []
        for index, (context, continuation) in enumerate(requests):
            if not context:
                fallback.append(index)
                continue
            context_enc, continuation_enc = self.lm._encode_pair(context, continuation)
            if not continuation_enc or len(context_enc) + len(continuation_enc) > self.lm.max_length:
                fallback.append(index)
                continue
            groups.setdefault(tuple(context_enc), []).append((index, continuation_enc))
        keys, start = list(groups), 0
        while start < len(keys):
            chunk = keys[start : start + self.batch_size]
            scores = self._fitting([list(k) for k in chunk], [[c for _, c in groups[k]] for k in chunk])
            if scores is None:
                continue  # halved: the same contexts again, fewer at once
            for key, group_scores in zip(chunk, scores, strict=True):
                for (index, _), score in zip(groups[key], group_scores, strict=True):
                    results[index] = score
            start += len(chunk)
        if fallback:
            from lm_eval.api.instance import Instance

            instances = [
                Instance("loglikelihood", {}, requests[i], n, ("poolbench", n, 1)) for n, i in enumerate(fallback)
            ]
            for i, (ll, greedy) in zip(fallback, self.lm.loglikelihood(instances, disable_tqdm=True), strict=True):
                results[i] = (float(ll), bool(greedy))
        return [r for r in results if r is not None]

    def _fitting(
        self, contexts: list[list[int]], choices: list[list[list[int]]]
    ) -> list[list[tuple[float, bool]]] | None:
        """`_score`, or None when it ran out of memory and the batch size was halved (`adaptive` only)."""
        import torch

        try:
            return self._score(contexts, choices)
        except torch.OutOfMemoryError:
            if not self.adaptive or len(contexts) == 1:
                raise
        self.batch_size = len(contexts) // 2  # past the handler: the failed batch's tensors are freed
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None

    def _score(self, contexts: list[list[int]], choices: list[list[list[int]]]) -> list[list[tuple[float, bool]]]:
        """Per context, per choice: (summed log-probability, every token greedy)."""
        import torch
        import torch.nn.functional as F

        model, device = self.lm.model, self.lm.device
        width = max(len(c) for c in contexts)
        ids = torch.zeros((len(contexts), width), dtype=torch.long)
        mask = torch.zeros((len(contexts), width), dtype=torch.long)
        for row, context in enumerate(contexts):  # left padding: every context ends at the last column
            ids[row, width - len(context) :] = torch.tensor(context)
            mask[row, width - len(context) :] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        owner = [row for row, group in enumerate(choices) for _ in group]  # context row of each choice
        flat = [choice for group in choices for choice in group]
        with torch.inference_mode():
            first = model(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=positions.to(device),
                use_cache=True,
            )
            first_logprobs = F.log_softmax(first.logits[:, -1, :].float(), dim=-1)[owner]
            rest = max(len(c) for c in flat) - 1
            if rest:
                cache = getattr(first, self.cache_argument)  # the output names it as forward does
                cache.reorder_cache(torch.tensor(owner, device=device))  # one copy of its context per choice
                tail = torch.zeros((len(flat), rest), dtype=torch.long)
                for row, choice in enumerate(flat):
                    tail[row, : len(choice) - 1] = torch.tensor(choice[:-1])
                tail_mask = torch.cat([mask[owner], torch.ones((len(flat), rest), dtype=torch.long)], dim=1)
                tail_positions = mask[owner].sum(1, keepdim=True) + torch.arange(rest)
                second = model(
                    input_ids=tail.to(device),
                    attention_mask=tail_mask.to(device),
                    position_ids=tail_positions.to(device),
                    use_cache=True,
                    **{self.cache_argument: cache},
                )
                rest_logprobs = F.log_softmax(second.logits.float(), dim=-1)
        scores = []
        for row, choice in enumerate(flat):
            steps = [first_logprobs[row]] + [rest_logprobs[row, j] for j in range(len(choice) - 1)]
            total = sum(float(step[token]) for step, token in zip(steps, choice, strict=True))
            greedy = all(int(step.argmax()) == token for step, token in zip(steps, choice, strict=True))
            scores.append((total, greedy))
        grouped, start = [], 0
        for group in choices:
            grouped.append(scores[start : start + len(group)])
            start += len(group)
        return grouped


def _cache_argument(model: Any) -> str:
    """The name of the key/value cache, in forward's arguments and in its output: `cache` in newer transformers,
    else `past_key_values`."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
