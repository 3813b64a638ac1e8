"""The backends' plumbing that runs without vLLM or a server: lm-eval's pair encoding, the vLLM prompt plan,
the errors a missing vLLM or an unreachable server give. The real engines run in tests/vllm (make test-vllm)."""

from __future__ import annotations

import importlib.util
import itertools
import json
from types import SimpleNamespace

import pytest

from harness.backends import available_backends, make_backend
from harness.backends.base import ChatBackend
from harness.backends.vllm_native import MAX_CHOICE_TOKENS, encode_pair, plan_prompts
from harness.models import smollm2_path
from harness.schema import PoolError


@pytest.fixture(scope="module")
def encode():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    return lambda text: tokenizer(text)["input_ids"]


@pytest.mark.parametrize(
    ("context", "continuation"),
    [("Question: 2+2?\nAnswer:", " 4"), ("The capital is ", "Paris"), ("x  ", " y z"), ("Answer:", "\n\nyes")],
)
def test_encode_pair_is_lm_evals(encode, context: str, continuation: str) -> None:
    from lm_eval.api.model import TemplateLM

    lm = SimpleNamespace(backend="causal", tok_encode=encode)
    assert encode_pair(encode, context, continuation) == TemplateLM._encode_pair(lm, context, continuation)


def test_plan_scores_one_token_continuations_from_one_prompt_and_the_rest_alone() -> None:
    letters = [([1, 2, 3], [t]) for t in (10, 11, 12, 13)]
    words = [([4, 5], [20, 21]), ([4, 5], [22])]
    prompts = plan_prompts(letters + words, max_length=100)
    assert [(p.ids, p.requests, p.choices, p.scored) for p in prompts] == [
        ((1, 2, 3), (0, 1, 2, 3), (10, 11, 12, 13), 0),
        ((4, 5), (5,), (22,), 0),
        ((4, 5, 20, 21), (4,), (), 2),
    ]


def test_plan_cuts_on_the_left_and_keeps_every_request_once() -> None:
    long_context = list(range(100, 150))
    pairs = [(long_context, [7]), (long_context, [8]), (long_context, [1, 2, 3]), ([5], [6])]
    prompts = plan_prompts(pairs, max_length=10)
    assert sorted(i for p in prompts for i in p.requests) == [0, 1, 2, 3]
    assert all(len(p.ids) + 1 <= 10 for p in prompts)  # vLLM generates a token after every prompt
    one_token = next(p for p in prompts if p.requests == (0, 1))  # 9 tokens with the choice's, as every sequence
    assert one_token.ids == tuple(long_context[-8:])
    whole = next(p for p in prompts if p.requests == (2,))
    assert whole.ids == (*long_context[-6:], 1, 2, 3) and whole.scored == 3


def test_plan_falls_back_past_vllms_limit_on_choice_tokens() -> None:
    pairs = [([1], [t]) for t in range(MAX_CHOICE_TOKENS + 1)]
    prompts = plan_prompts(pairs, max_length=100)
    assert len(prompts) == len(pairs) and not any(p.choices for p in prompts)
    assert list(itertools.chain.from_iterable(p.requests for p in prompts)) == list(range(len(pairs)))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_native_vllm_without_vllm_says_how_to_install_it() -> None:
    assert "vllm-native" in available_backends()
    with pytest.raises(PoolError, match=r"pip install 'poolbench\[vllm\]'"):
        make_backend("vllm-native", {"pretrained": "builtin:smollm2-135m"})


def test_native_vllm_refuses_a_device_it_would_not_use() -> None:
    with pytest.raises(PoolError, match="--device cuda:1: vllm-native places the model itself"):
        make_backend("vllm-native", {"pretrained": "builtin:smollm2-135m"}, device="cuda:1")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        pytest.param(
            "vllm",
            "lm-eval's vllm model cannot be imported (No module named 'vllm'): pip install 'poolbench[vllm]'",
            marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here"),
        ),
        ("sglang", "attempted to use 'sglang' LM type, but package `sglang` is not installed"),
    ],
)
def test_an_lm_eval_model_whose_package_is_missing_says_so(cli, model: str, message: str) -> None:
    """lm-eval imports a model's module when it is asked for (vllm), or its package when it is built (sglang):
    without the package, `run --model` was a traceback."""
    cli("add", "starter", "capitals", check=True)
    done = cli("run", "--model", model, "--model-args", "pretrained=builtin:smollm2-135m", "--name", "m")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (",batch_size=4", "--model-args batch_size: the run's options say it, give --batch-size instead"),
        (",dtype=float99", "cannot load hf with pretrained="),
    ],
)
def test_bad_model_args_of_an_lm_eval_model_are_said(cli, args: str, message: str) -> None:
    """A run option given as a model arg (lm-eval said "got multiple values for keyword argument
    'batch_size'"), an argument lm-eval cannot use (was a traceback: "module 'torch' has no attribute")."""
    cli("add", "starter", "capitals", check=True)
    done = cli("run", "--model", "hf", "--model-args", "pretrained=builtin:smollm2-135m" + args, "--name", "m")
    assert done.returncode == 2 and "Traceback" not in done.stderr and message in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("cuda:99", "--device cuda:99: torch {version}{build} sees {count} CUDA devices here"),
        ("gpu", "--device gpu: torch {version} knows no such device (cpu, cuda, cuda:N, ...)"),
        ("meta", "--device meta: lm-eval's hf model runs on cpu, cuda, mps, npu, xpu, hpu only"),
    ],
)
def test_a_device_the_hf_model_cannot_use_is_refused_before_loading(cli, device: str, message: str) -> None:
    """lm-eval's hf model runs on cuda or the CPU, without a word, when it does not know a device ("gpu",
    "cuda:7" on a machine with fewer); torch failed with a traceback mid-load for cuda without CUDA."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    build = " (a build without CUDA)" if torch.version.cuda is None else ""
    cli("add", "starter", "capitals", check=True)
    args = ["--model-args", "pretrained=builtin:smollm2-135m", "--name", "m", "--device", device]
    done = cli("run", "--model", "hf", *args)
    expected = message.format(version=torch.__version__, build=build, count=count)
    assert done.returncode == 2 and "Traceback" not in done.stderr and expected in done.stderr, done.stderr
    assert json.loads(cli("pool", "stats", "--json", check=True).stdout)["models"] == 0


def test_unreachable_openai_server_fails_the_run_and_keeps_the_pool(cli) -> None:
    cli("add", "starter", "capitals", check=True)
    path = smollm2_path()
    args = f"base_url=http://127.0.0.1:9/v1/completions,model={path},tokenizer={path},tokenizer_backend=huggingface"
    done = cli("run", "--model", "openai-completions", "--model-args", args + ",max_retries=1", "--name", "remote")
    assert done.returncode == 2 and "failed after 0 of" in done.stderr
    runs = cli("pool", "stats", "--json", check=True)
    assert '"measurements": 0' in runs.stdout


def test_a_chat_endpoint_is_sent_messages_as_lm_eval_sends_them() -> None:
    """lm-eval's chat-completions model takes a prompt as its messages in JSON (which its `--apply_chat_template`
    makes and the server's template renders): poolbench's rendering for it is lm-eval's."""
    endpoint = {"base_url": "http://127.0.0.1:9/v1/chat/completions", "model": "m"}
    backend = make_backend("openai-chat-completions", endpoint)
    messages = [{"role": "system", "content": "Sé breve."}, {"role": "user", "content": "2+2?"}]
    assert isinstance(backend, ChatBackend) and backend.takes_messages
    assert backend.apply_chat_template(messages) == backend.lm.apply_chat_template(messages).prompt
