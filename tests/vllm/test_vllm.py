"""The vLLM lane (`make test-vllm`, its own venv with vllm-cpu): the native backend and an OpenAI-compatible
server (vLLM's own, on loopback) against the HF backend on the same requests, with the real SmolLM2-135M."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from harness import scoring
from harness.backends import make_backend
from harness.backends.base import Backend, GenerationRequest
from harness.backends.vllm_native import VLLMNativeBackend
from harness.models import smollm2_path
from harness.pool import Pool
from harness.runner import RunSpec, run
from harness.schema import PoolError
from tasks.starter import starter_samples

pytest.importorskip("vllm")
pytestmark = pytest.mark.slow
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

SOURCES = ["starter/capitals", "starter/opposites", "starter/calendar"]  # multi-token and one-token choices
ENGINE = {"dtype": "float32", "max_model_len": "512", "enforce_eager": "true"}
#: Continuation samples' requests (lm-eval's loglikelihood tasks), some the greedy continuation, one-token or not.
CONTINUATIONS = [
    ("Question: What is 1 + 1?\nAnswer:", " 2"),
    ("Question: What is the first letter of the alphabet?\nAnswer:", " The first letter of the alphabet is A."),
    ("Question: What color is the sky?\nAnswer:", " Blue"),
    ("Question: What is the capital of France?\nAnswer:", " Paris"),
]
#: Documents (lm-eval's loglikelihood_rolling requests): two in one window, one over several of ENGINE's.
DOCUMENTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Colorless green ideas sleep furiously.",
    " ".join(f"Mile {i}: the river runs past the old mill and on towards the sea." for i in range(60)),
]
PROMPTS = [GenerationRequest(f"Question: What is {a} plus {b}?\nAnswer:", max_tokens=12) for a, b in [(2, 2), (7, 5)]]


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="module")
def requests() -> list[tuple[str, str]]:
    samples = starter_samples(SOURCES).groupby("source").head(15)
    choices = [r for _, row in samples.iterrows() for r in scoring.choice_requests(row["prompt"], list(row["choices"]))]
    return choices + CONTINUATIONS


@pytest.fixture(scope="module")
def hf() -> Backend:
    return make_backend("hf", {"pretrained": "builtin:smollm2-135m", "dtype": "float32"}, device="cpu")


@pytest.fixture(scope="module")
def hf_scores(hf: Backend, requests: list[tuple[str, str]]) -> list[tuple[float, bool]]:
    return hf.loglikelihood(requests)


def assert_same_scores(ours: list[tuple[float, bool]], reference: list[tuple[float, bool]]) -> None:
    """The same log-likelihoods (float32 engines: within 1e-3) and the same greedy flags."""
    ll, ref = np.array([x for x, _ in ours]), np.array([x for x, _ in reference])
    assert np.abs(ll - ref).max() < 1e-3
    assert [g for _, g in ours] == [g for _, g in reference]


@pytest.fixture
def native() -> Iterator[VLLMNativeBackend]:
    """The native vLLM backend, its engine shut down after the test (left to the interpreter's exit, vLLM's
    threads abort the process: 'terminate called without an active exception', exit 134, after every test
    passed)."""
    backend = make_backend("vllm-native", {"pretrained": "builtin:smollm2-135m", **ENGINE})
    assert isinstance(backend, VLLMNativeBackend)
    try:
        yield backend
    finally:
        backend.close()


def test_native_vllm_matches_hf(native, requests, hf, hf_scores) -> None:
    from harness.backends.vllm_native import encode_pair, plan_prompts

    prompts = plan_prompts([encode_pair(native._encode, c, x) for c, x in requests], native.max_length)
    shared = [p for p in prompts if p.choices]
    assert shared and len(shared) < len(prompts) < len(requests)  # both paths, questions prefilled once
    assert any(greedy for _, greedy in hf_scores[-len(CONTINUATIONS) :])  # the greedy flags can differ
    assert_same_scores(native.loglikelihood(requests), hf_scores)
    assert native.generate(PROMPTS) == hf.generate(PROMPTS)
    example = [{"role": "user", "content": "Capital of Peru?"}, {"role": "assistant", "content": "Lima"}]
    chats = [  # the system message, a few-shot example as turns, the question
        [{"role": "system", "content": "Be brief."}, *example, {"role": "user", "content": c}] for c, _ in requests[:12]
    ]
    chat = [(hf.apply_chat_template(m), x.lstrip()) for m, (_, x) in zip(chats, requests, strict=False)]
    assert chat[0][0].startswith("<|im_start|>system\nBe brief.") and chat == [
        (native.apply_chat_template(m), x.lstrip()) for m, (_, x) in zip(chats, requests, strict=False)
    ]
    assert_same_scores(native.loglikelihood(chat), hf.loglikelihood(chat))  # a template's BOS is not doubled
    opened = [*chats[0], {"role": "assistant", "content": "Answer:"}]  # a gen_prefix, continued
    assert native.apply_chat_template(opened) == hf.apply_chat_template(opened)
    assert native.apply_chat_template(opened).endswith("<|im_start|>assistant\nAnswer:")
    engine_tokenizer, native.tokenizer = native.tokenizer, AutoTokenizer.from_pretrained(smollm2_path())
    native.tokenizer.chat_template = (  # one that refuses the system role, as Gemma's does
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "[{{ m.content }}]{% endfor %}"
    )
    assert native.apply_chat_template(chats[0]) == f"[Capital of Peru?][Lima][{chats[0][-1]['content']}]"
    native.tokenizer = engine_tokenizer
    # as lm-eval's vllm model, sequences of one token under the window (vLLM generates one after the prompt; it
    # refused a longer continuation's whole window), documents in windows of two under it (the context's and
    # the generated one's): what hf scores in a window two tokens under the engine's
    window = {"pretrained": "builtin:smollm2-135m", "dtype": "float32", "max_length": str(native.max_length - 2)}
    windowed = make_backend("hf", window, device="cpu")
    assert native.token_count(DOCUMENTS[-1]) > 2 * native.max_length
    overlong = [(DOCUMENTS[-1], " and on towards the sea."), (DOCUMENTS[-1], " sea")]  # several tokens, one
    assert_same_scores(native.loglikelihood(overlong), windowed.loglikelihood(overlong))
    documents, whole = native.loglikelihood_rolling(DOCUMENTS), hf.loglikelihood_rolling(DOCUMENTS)
    windowed_documents = windowed.loglikelihood_rolling(DOCUMENTS)
    assert documents == pytest.approx(windowed_documents, rel=1e-5, abs=1e-3)
    assert documents[:2] == pytest.approx(whole[:2], abs=1e-3) and documents[2] != pytest.approx(whole[2], rel=1e-3)
    described = native.describe()
    assert described["backend"] == "vllm-native" and described["revision"].startswith("sha256:")
    assert described["vllm"] and described["device"] == "cpu" and described["dtype"] == "torch.float32"


@pytest.mark.skipif(_installed("vllm"), reason="vLLM itself is installed here, not vllm-cpu")
def test_lm_evals_vllm_model_under_vllm_cpu_points_to_vllm_native() -> None:
    """lm-eval's vllm model looks up the `vllm` distribution, which vllm-cpu is not: a clear error, not a traceback."""
    with pytest.raises(PoolError, match="use the vllm-native backend"):
        make_backend("vllm", {"pretrained": "builtin:smollm2-135m", **ENGINE})


def test_cli_run_with_native_vllm_records_what_hf_scores(cli, tmp_path: Path, hf: Backend) -> None:
    """Through the command line, whose process leaves at once after a command that imported vLLM (`cli.main`):
    its output and exit codes as without."""
    cli("add", "starter", "capitals", check=True)
    engine = ",".join(f"{k}={v}" for k, v in ENGINE.items())
    done = cli(
        "run", "--model", "vllm-native", "--model-args", f"pretrained=builtin:smollm2-135m,{engine}",
        "--name", "smol-vllm", "--limit", "40", check=True,
    )  # fmt: skip
    assert done.stderr.splitlines()[-1].startswith("smol-vllm: 40 samples evaluated, 0 already measured (run ")
    refused = cli(
        "run", "--model", "vllm-native", "--model-args", "pretrained=builtin:smollm2-135m,speed=11", "--name", "x"
    )
    assert refused.returncode == 2 and "vllm-native: unknown model args ['speed']" in refused.stderr
    pool = Pool(tmp_path / "pool")
    samples = pool.samples().set_index("sample_id")
    responses = pool.read("responses", models=["smol-vllm"])
    assert len(responses) == 40
    for row in responses.itertuples():
        sample = samples.loc[row.sample_id]
        lls = [ll for ll, _ in hf.loglikelihood(scoring.choice_requests(sample["prompt"], list(sample["choices"])))]
        assert np.allclose(json.loads(row.response)["loglikelihoods"], lls, atol=1e-3)
    run = pool.read("runs").iloc[-1]
    assert run["status"] == "finished" and "vllm-cpu" in json.loads(run["versions"])
    ranked = json.loads(cli("rank", "--json", check=True).stdout)  # the runs list: where and how it ran
    assert [row["backend"] for row in ranked["runs"]] == ["vllm-native (cpu, float32)"]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """vLLM's OpenAI-compatible server on a free loopback port, serving the SmolLM2 folder."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(smollm2_path()),
        "--dtype", "float32", "--max-model-len", "512", "--enforce-eager", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"{base}/models", timeout=5)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the vLLM server did not come up (exit code {process.poll()})") from None
                time.sleep(2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_openai_compatible_server_matches_hf(server: str, requests, hf, hf_scores) -> None:
    args = {"base_url": f"{server}/completions", "model": str(smollm2_path()), "num_concurrent": "2"}
    remote = make_backend("openai-completions", args)
    chat = make_backend("openai-chat-completions", {**args, "base_url": f"{server}/chat/completions"})
    assert remote.unanswerable == () and chat.unanswerable == ("multiple_choice", "continuation", "document")
    assert_same_scores(remote.loglikelihood(requests), hf_scores)
    short = DOCUMENTS[:2]  # in one window of the server's and hf's
    assert remote.loglikelihood_rolling(short) == pytest.approx(hf.loglikelihood_rolling(short), abs=1e-3)
    assert remote.generate(PROMPTS) == hf.generate(PROMPTS)
    messages = [{"role": "user", "content": PROMPTS[0].context}]
    tokenized_here = make_backend("openai-completions", {**args, "tokenizer_backend": "huggingface"})
    assert tokenized_here.apply_chat_template(messages) == hf.apply_chat_template(messages)
    with pytest.raises(PoolError, match="leaves the chat template to the server"):
        make_backend("openai-completions", {**args, "tokenized_requests": "False"}).apply_chat_template(messages)


TURNS = {"chat_template": True, "fewshot_as_multiturn": True, "num_fewshot": 2, "system_instruction": "Be brief."}


CHAT = {"chat_template": True}


@pytest.mark.parametrize(
    ("served", "local", "prefix"), [({}, CHAT, ""), (TURNS, TURNS, ""), (CHAT, CHAT, "The sum is"), (TURNS, TURNS, "=")]
)
def test_openai_compatible_chat_generates_what_hf_does_on_the_chat_template(
    server: str, hf, tmp_path: Path, served: dict, local: dict, prefix: str
) -> None:
    """Runs through the chat endpoint answer as hf does on the model's chat template: the plain prompt as one
    user message, and with --apply-chat-template the system message and the few-shot turns sent as such; an
    answer that opens with lm-eval's gen_prefix (the assistant's turn, begun) is continued by the server."""
    sums = [(2, 2), (7, 5), (3, 4), (9, 1), (6, 6)]
    questions = [f"Question: What is {a} plus {b}?" + ("" if prefix else "\nAnswer:") for a, b in sums]
    pool = Pool(tmp_path / "pool", create=True)
    pool.add(
        "samples",
        pd.DataFrame(
            {
                "source": "sums",
                "kind": "generation",
                "prompt": [f"{question} {prefix}".rstrip() for question in questions],
                "target": [[str(a + b)] for a, b in sums],
                "metadata": [{"question": q, "gen_prefix": prefix} if prefix else {} for q in questions],
            }
        ),
    )
    chat = {"base_url": f"{server}/chat/completions", "model": str(smollm2_path())}
    texts = {}
    for backend, args, model, options in (
        ("openai-chat-completions", chat, "served", served),
        ("hf", {}, "local", local),
    ):
        spec = RunSpec(model, backend, args, max_gen_tokens=12, **options)
        built = hf if backend == "hf" else make_backend(backend, args)
        assert run(pool, spec, built, progress=False).evaluated == len(sums)
        responses = pool.read("responses", models=[model]).sort_values("sample_id")
        texts[model] = [json.loads(r)["text"] for r in responses["response"]]
    assert all(texts["served"]) and texts["served"] == texts["local"]


def test_openai_compatible_chat_answers_multiple_choice_by_letter_as_hf_does(server: str, hf, tmp_path: Path) -> None:
    """A chat endpoint, which gives no log-probabilities, answers multiple-choice questions with a letter
    (`--multiple-choice letter`) as hf does on the model's chat template: the same texts, letters and scores."""
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", starter_samples(["capitals"]).head(6))
    chat = {"base_url": f"{server}/chat/completions", "model": str(smollm2_path())}
    for backend, args, model in (("openai-chat-completions", chat, "served"), ("hf", {}, "local")):
        spec = RunSpec(model, backend, args, chat_template=True, num_fewshot=2, multiple_choice="letter")
        built = hf if backend == "hf" else make_backend(backend, args)
        assert run(pool, spec, built, progress=False).evaluated == 6
    answers = {
        model: pool.read("responses", models=[model]).sort_values("sample_id")["response"].map(json.loads).tolist()
        for model in ("served", "local")
    }
    assert [a["text"] for a in answers["served"]] == [a["text"] for a in answers["local"]]
    assert [a["extracted"] for a in answers["served"]] == [a["extracted"] for a in answers["local"]]
    assert any(a["extracted"] for a in answers["served"])
