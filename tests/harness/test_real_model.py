"""End to end with the real SmolLM2-135M and real lm-eval: parity per sample, and the CLI on a starter task."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from harness import plan, scoring
from harness.backends import make_backend
from harness.backends.base import GenerationRequest
from harness.letters import chosen_letter
from harness.models import smollm2_path
from harness.pool import Pool
from harness.runner import RunSpec, run
from tasks.lm_eval_tasks import load_lm_eval_tasks, write_lm_eval_task
from tasks.starter import starter_samples
from tests.lm_eval_task import write_task

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return smollm2_path()


DESCRIPTION = "The following are questions about the capitals of the world.\n\n"


@pytest.fixture
def local_task(tmp_path: Path) -> Path:
    """A local lm-eval task of 40 starter questions, with a description (as MMLU's subtasks have)."""
    folder = write_lm_eval_task(starter_samples(["capitals"]).head(40), tmp_path / "tasks", "capitals_local")
    yaml = folder / "capitals_local.yaml"
    yaml.write_text(yaml.read_text() + f"description: {json.dumps(DESCRIPTION)}\n")
    return folder


def test_adapter_requests_are_lm_evals_instances(local_task: Path) -> None:
    from lm_eval.tasks import TaskManager

    task = TaskManager(include_path=str(local_task), include_defaults=False).load(["capitals_local"])["tasks"][
        "capitals_local"
    ]
    task.build_all_requests(rank=0, world_size=1)
    theirs = sorted((inst.doc_id, inst.idx, tuple(inst.arguments)) for inst in task.instances)
    samples = load_lm_eval_tasks(["capitals_local"], include_path=str(local_task))
    ours = sorted(
        (int(meta["doc_id"]), i, (row.prompt, meta["target_delimiter"] + choice))
        for row in samples.itertuples()
        for meta in [row.metadata]
        for i, choice in enumerate(row.choices)
    )
    assert ours == theirs and len(ours) == 160
    assert all(p.startswith(DESCRIPTION) for p in samples["prompt"])
    assert {meta["task_description"] for meta in samples["metadata"]} == {DESCRIPTION}


def test_adapter_takes_the_metrics_direction_from_lm_eval(local_task: Path) -> None:
    yaml = local_task / "capitals_local.yaml"
    declared = yaml.read_text()
    lower = declared.replace(
        "{metric: acc, aggregation: mean, higher_is_better: true}", "{metric: acc, higher_is_better: false}"
    )
    assert lower != declared
    for text, higher in ((declared, True), (lower, False)):
        yaml.write_text(text)
        samples = load_lm_eval_tasks(["capitals_local"], include_path=str(local_task))
        assert set(samples["metric"]) == {"acc"} and set(samples["higher_is_better"]) == {higher}


@pytest.mark.parametrize(
    ("share_prefix", "chat", "system"),
    [("true", False, None), ("false", False, "Answer with the city."), ("true", True, "Answer with the city.")],
)
def test_per_sample_parity_with_lm_eval_simple_evaluate(
    local_task: Path, model_dir: Path, tmp_path: Path, share_prefix: str, chat: bool, system: str | None
) -> None:
    """Both scoring paths (each question's context once, and lm-eval's own per pair) against lm-eval, and
    `--apply-chat-template` and `--system-instruction` against lm-eval's `apply_chat_template=True` and
    `system_instruction`: the task's description goes to the system message."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", load_lm_eval_tasks(["capitals_local"], include_path=str(local_task)))
    model_args = {"pretrained": str(model_dir), "share_prefix": share_prefix}
    spec = RunSpec(
        model="smollm2",
        backend="hf",
        model_args=model_args,
        batch_size=8,
        chat_template=chat,
        system_instruction=system,
    )
    run(pool, spec, make_backend("hf", spec.model_args, batch_size=8, device="cpu"), progress=False)

    manager = TaskManager(include_path=str(local_task), include_defaults=False)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir}",
        tasks=["capitals_local"],
        task_manager=manager,
        batch_size=8,
        device="cpu",
        log_samples=True,
        apply_chat_template=chat,
        system_instruction=system,
    )
    theirs = {s["doc_id"]: s for s in results["samples"]["capitals_local"]}
    context, continuation = theirs[0]["arguments"][0]
    assert context.startswith("<|im_start|>") == chat and continuation.startswith(" ") != chat
    system_part = f"{system}\n\n{DESCRIPTION}" if system else DESCRIPTION
    assert (f"<|im_start|>system\n{system_part}<|im_end|>" in context) == chat
    assert context.startswith(system_part) != chat
    samples = pool.samples().set_index("sample_id")
    doc_of = {sid: json.loads(meta)["doc_id"] for sid, meta in samples["metadata"].items()}
    measured = pool.measurements()
    assert len(measured) == 80
    for row in measured.itertuples():
        assert row.value == theirs[doc_of[row.sample_id]][row.metric], (row.sample_id, row.metric)
    ours, reference = [], []
    for row in pool.read("responses").itertuples():
        ours += json.loads(row.response)["loglikelihoods"]
        reference += [float(ll) for ll, _ in theirs[doc_of[row.sample_id]]["filtered_resps"]]
    # lm-eval's own per-pair path gives its very numbers; a shared prefix's cache sums the same float32 terms in
    # another order (transformers 5.24: up to 1.1e-5 of the value apart); a misaligned token is 1e-2 or more
    relative = np.abs(np.subtract(ours, reference)) / np.abs(reference)
    assert len(ours) == 160 and relative.max() <= (5e-5 if share_prefix == "true" else 0), relative.max()


SUMS_BODY = """doc_to_target: "{{solution}}"
generation_kwargs: {until: ["\\n", "Question:"], max_gen_toks: 12, do_sample: false}
filter_list:
  - name: last-number
    filter: [{function: regex, regex_pattern: "(-?[0-9]+)", group_select: -1}, {function: take_first}]
  - name: first-number
    filter: [{function: regex, regex_pattern: "(-?[0-9]+)"}, {function: take_first}]
metric_list: [{metric: exact_match, ignore_case: true, regexes_to_ignore: ["(?s).*#### "]}]"""


def run_both(
    model_dir: Path, folder: Path, name: str, **model_args: str
) -> tuple[Pool, list[dict[str, Any]], dict[str, int]]:
    """The local lm-eval task `name` (in `folder`) run by poolbench (HF backend, SmolLM2, with `model_args`) into
    a new pool and by lm-eval's `simple_evaluate`: the pool, lm-eval's logged samples, each pool sample's doc id."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    pool = Pool(folder / "pool", create=True)
    pool.add("samples", load_lm_eval_tasks([name], include_path=str(folder)))
    args = {"pretrained": str(model_dir), **model_args}
    spec = RunSpec(model="smollm2", backend="hf", model_args=args, batch_size=4)
    run(pool, spec, make_backend("hf", spec.model_args, batch_size=4, device="cpu"), progress=False)
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args=",".join(f"{key}={value}" for key, value in args.items()),
        tasks=[name],
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
        batch_size=4,
        device="cpu",
        log_samples=True,
    )
    doc_of = {sid: json.loads(meta)["doc_id"] for sid, meta in pool.samples()[["sample_id", "metadata"]].values}
    return pool, results["samples"][name], doc_of


def test_generation_parity_with_lm_eval_simple_evaluate(model_dir: Path, tmp_path: Path) -> None:
    """A generate_until task scored as lm-eval scores it, per sample: its stop strings and length, its first
    filter (lm-eval's regex, with its options) and exact_match with its options (here one that strips a
    gsm8k-style "... #### 5" reference); the generations, extracted answers and values equal lm-eval's.
    (Runs took the first line of at most 64 tokens and compared it with the whole reference: all 0.)"""

    pairs = [(2, 3), (4, 4), (10, 5), (7, 6), (1, 1), (3, 9), (20, 22), (8, 8)]
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"What is {a} plus {b}?", "solution": f"{a} + {b} = {a + b}. #### {a + b}"}) + "\n"
            for a, b in pairs
        )
    )
    write_task(tmp_path, "sums", data, "generate_until", SUMS_BODY)
    pool, logged, doc_of = run_both(model_dir, tmp_path, "sums")
    theirs = {s["doc_id"]: s for s in logged if s["filter"] == "last-number"}
    measured = pool.measurements(metric="exact_match").set_index("sample_id")["value"]
    ours = {doc_of[row.sample_id]: json.loads(row.response) for row in pool.read("responses").itertuples()}
    assert len(ours) == len(theirs) == len(pairs)
    for sample_id, doc_id in doc_of.items():
        assert ours[doc_id]["text"] == theirs[doc_id]["resps"][0][0]
        assert ours[doc_id]["extracted"] == theirs[doc_id]["filtered_resps"][0]
        assert measured[sample_id] == theirs[doc_id]["exact_match"], doc_id
    assert 0 < measured.sum() < len(pairs)  # some right, some wrong: the comparison can tell


#: LAMBADA-style passages (written for the test): the last word is the target; SmolLM2 guesses some greedily.
PASSAGES = [
    "She poured the milk into a glass and handed it to her little brother, who drank the whole glass",
    "The old man sat by the fire every evening, reading the same book he had read a hundred times before his wife "
    "called him to dinner",
    "After the long winter, the first flowers appeared in the garden, and the children ran outside to play in the sun",
    "He locked the door, put the key in his pocket, and walked down the street toward the station to catch the train",
    "The teacher wrote the answer on the board, and every student copied it carefully into their notebook",
    "When the phone rang in the middle of the night, she knew something was wrong before she even picked up the phone",
    "They had been friends since childhood, and even after moving to different cities they still called each other "
    "every week",
    "The dog barked at the mailman every morning, but the mailman always brought him a small treat from his bag",
]


def include_lm_eval_task(folder: Path, included: str, name: str, rows: list[dict[str, str]], extra: str = "") -> None:
    """`folder/name.yaml`: lm-eval's own task `lm_eval/tasks/<included>` (its prompt, target and metrics) over
    `rows`, a local test split (`extra`: YAML that overrides more of it)."""
    from lm_eval import tasks

    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / f"{name}.yaml").write_text(
        f"include: {Path(tasks.__file__).parent / included}\ntask: {name}\ndataset_path: json\n"
        f"dataset_name: null\ndataset_kwargs: {{data_files: {{test: {data}}}}}\n{extra}"
    )


def write_lambada_task(folder: Path) -> None:
    """`lambada_local`: lm-eval's own `lambada_openai` task over PASSAGES."""
    include_lm_eval_task(
        folder, "lambada/lambada_openai.yaml", "lambada_local", [{"text": t} for t in PASSAGES], "tag: []\n"
    )


def test_continuation_parity_with_lm_eval_simple_evaluate(cli, model_dir: Path, tmp_path: Path) -> None:
    """lm-eval's LAMBADA (a loglikelihood task): per document, the target's log-likelihood after the prompt (lm-eval
    logs it under "perplexity", which it aggregates) and acc, whether the target is the greedy continuation,
    equal lm-eval's; the report's sample browser says both."""
    write_lambada_task(tmp_path)
    pool, logged, doc_of = run_both(model_dir, tmp_path, "lambada_local")
    assert set(pool.samples()["kind"]) == {"continuation"} and set(pool.samples()["metric"]) == {"acc"}
    theirs = {s["doc_id"]: s for s in logged}
    acc = pool.measurements(metric="acc").set_index("sample_id")["value"]
    loglikelihood = pool.measurements(metric="loglikelihood").set_index("sample_id")["value"]
    assert len(acc) == len(loglikelihood) == len(theirs) == len(PASSAGES)
    for sample_id, doc_id in doc_of.items():
        assert acc[sample_id] == theirs[doc_id]["acc"], doc_id
        assert loglikelihood[sample_id] == pytest.approx(theirs[doc_id]["perplexity"], rel=5e-5), doc_id
    assert 0 < acc.sum() < len(PASSAGES)  # some greedy, some not: the comparison can tell
    cli("run", "--model", "baseline-random", "--name", "random", "--no-progress", check=True)
    cli("report", "--out", str(tmp_path / "report.html"), "--bootstrap", "0", check=True)
    html = (tmp_path / "report.html").read_text()
    assert "; the greedy continuation" in html and "; not the greedy continuation" in html


#: Pages in wikitext's raw layout (written for the test): headings, " @-@ " and " , " that lm-eval's wikitext
#: detokenizes; 26, 115 and 114 tokens.
PAGES = [
    " = Heron Lake = \n Heron Lake is a small lake in the north of the county , fed by two streams . \n",
    " = The Mill Road = \n The Mill Road runs 12 @.@ 5 km from the village to the coast , past the old mill , "
    "the church and the two farms that gave the road its name in the 18th century . \n = = History = = \n The "
    "road was built in 1792 by the miller , who needed a way to bring grain from the farms to the mill and flour "
    "to the harbour . It was paved in 1921 and widened in 1964 , when the first buses ran to the coast . \n",
    " = Ada Brown = \n Ada Brown ( 1850 @-@ 1921 ) was an English painter of landscapes and harbours . She "
    "studied in London and Paris , and showed her first paintings at the Royal Academy in 1874 . Her pictures of "
    "the fishing fleet at dawn made her name ; she painted the harbour more than a hundred times , in every "
    "season and every light . \n = = Later life = = \n In 1900 she moved to the coast , where she taught "
    "painting to the children of the village until her death . \n",
]


def write_wikitext_task(folder: Path) -> None:
    """`wikitext_local`: lm-eval's own `wikitext` task (its detokenizer, request and metrics) over PAGES."""
    rows, splits = [{"page": page} for page in PAGES], "training_split: null\nvalidation_split: null\n"
    include_lm_eval_task(folder, "wikitext/wikitext.yaml", "wikitext_local", rows, splits)


def test_document_parity_with_lm_eval_simple_evaluate(cli, model_dir: Path, tmp_path: Path) -> None:
    """lm-eval's wikitext (a loglikelihood_rolling task): per page, the log-likelihood of the detokenized page in
    rolling windows (here of 32 tokens: one page fits one, two span four) equals the one lm-eval logs for its
    perplexities; the report's sample browser shows it, and its leaderboard the metric of the source's means."""
    write_wikitext_task(tmp_path)
    pool, logged, doc_of = run_both(model_dir, tmp_path, "wikitext_local", max_length="32")
    samples = pool.samples()
    assert set(samples["kind"]) == {"document"} and set(samples["metric"]) == {"loglikelihood"}
    assert "Heron Lake is a small lake in the north of the county, fed" in samples["prompt"].sum()
    tokens = AutoTokenizer.from_pretrained(model_dir)(list(samples["prompt"]))["input_ids"]
    assert min(map(len, tokens)) < 32 < 3 * 32 < max(map(len, tokens))
    theirs = {s["doc_id"]: s for s in logged}
    ours = pool.measurements(metric="loglikelihood").set_index("sample_id")["value"]
    assert len(ours) == len(theirs) == len(PAGES)
    for sample_id, doc_id in doc_of.items():
        assert ours[sample_id] == pytest.approx(theirs[doc_id]["word_perplexity"][0], rel=5e-5), doc_id
    cli("report", "--out", str(tmp_path / "report.html"), "--bootstrap", "0", check=True)
    html = (tmp_path / "report.html").read_text()
    assert f"log-likelihood of the text {ours.iloc[0]:.3f}" in html
    # the source's column of means says what they are: summed log-likelihoods, not accuracies
    assert 'wikitext_local<br><span class="muted metric">loglikelihood</span></th>' in html


@pytest.fixture(scope="module")
def smollm2(model_dir: Path) -> Any:
    return make_backend("hf", {"pretrained": str(model_dir)}, batch_size=1, device="cpu")


def both_fewshot_contexts(
    task: Any, samples: pd.DataFrame, sample: pd.Series, smollm2: Any, chat: bool, multiturn: bool
) -> tuple[plan.Prompt, str, dict[str, Any], str]:
    """A sample's 3-shot context as a run sends it (with a system instruction; plain text, or in SmolLM2's chat
    template, the examples as turns or not) and lm-eval's `fewshot_context` given the same examples:
    (the run's prompt, its context, the lm-eval document, lm-eval's context)."""
    prompt = plan.fewshot_context(sample, samples, 3, system_instruction="Answer briefly.")
    ours = smollm2.apply_chat_template(prompt.messages(multiturn)) if chat else prompt.text
    doc_of_question = {task.doc_to_text(doc): doc for doc in task.eval_docs}
    shots = [doc_of_question[question] for question, _ in prompt.examples]
    task.sampler = SimpleNamespace(sample=lambda n, eval_doc=None: shots[:n])
    doc = doc_of_question[prompt.question]
    theirs = task.fewshot_context(
        doc,
        3,
        system_instruction="Answer briefly.",
        apply_chat_template=chat,
        fewshot_as_multiturn=multiturn,
        chat_template=smollm2.lm.apply_chat_template if chat else None,
        gen_prefix=task.doc_to_prefix(doc),
    )
    return prompt, ours, doc, theirs


@pytest.mark.parametrize("prefix", [None, "Answer:"])
@pytest.mark.parametrize(("chat", "multiturn"), [(False, False), (True, False), (True, True)])
def test_fewshot_contexts_are_lm_evals(
    local_task: Path, smollm2: Any, tmp_path: Path, chat: bool, multiturn: bool, prefix: str | None
) -> None:
    """Given the same examples, lm-eval's own `fewshot_context` builds the context a run sends, and its
    `construct_requests` the choices it scores: as plain text, and with the chat template as one user message
    or with the examples as turns (`fewshot_as_multiturn`); with a `gen_prefix`, which opens each answer
    (in the assistant's turn, continued, with a template)."""
    from lm_eval.tasks import TaskManager

    if prefix is not None:
        yaml = local_task / "capitals_local.yaml"
        yaml.write_text(yaml.read_text() + f"gen_prefix: {json.dumps(prefix)}\n")
    task = TaskManager(include_path=str(local_task), include_defaults=False).load(["capitals_local"])["tasks"][
        "capitals_local"
    ]
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", load_lm_eval_tasks(["capitals_local"], include_path=str(local_task)))
    samples = pool.samples()
    for _, sample in samples.head(6).iterrows():
        assert plan.fewshot_context(sample, samples, 0).text == sample["prompt"]  # lm-eval's zero-shot context
        prompt, ours, doc, theirs = both_fewshot_contexts(task, samples, sample, smollm2, chat, multiturn)
        assert prompt.shots == 3 and ours == theirs
        assert ours.count("<|im_start|>assistant") == (1 + 3 * multiturn if chat else 0)
        assert ours.endswith(f"assistant\n{prefix or ''}" if chat else prefix or "")
        requests = scoring.choice_requests(ours, list(sample["choices"]), prompt.answer_delimiter(chat))
        instances = task.construct_requests(doc, theirs, apply_chat_template=chat, metadata=("t", 0, 1))
        assert requests == [tuple(instance.arguments) for instance in instances]


@pytest.mark.parametrize(("chat", "multiturn"), [(False, False), (True, False), (True, True)])
def test_continuation_fewshot_contexts_are_lm_evals(smollm2: Any, tmp_path: Path, chat: bool, multiturn: bool) -> None:
    """A loglikelihood task's few-shot context a run sends is lm-eval's `fewshot_context` (examples answered with
    their targets), and its one request lm-eval's: plain, and with the chat template."""
    from lm_eval.tasks import TaskManager

    write_lambada_task(tmp_path)
    name = "lambada_local"
    task = TaskManager(include_path=str(tmp_path), include_defaults=False).load([name])["tasks"][name]
    samples = load_lm_eval_tasks([name], include_path=str(tmp_path))
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", samples)
    samples = pool.samples()
    for _, sample in samples.head(4).iterrows():
        prompt, ours, doc, theirs = both_fewshot_contexts(task, samples, sample, smollm2, chat, multiturn)
        assert prompt.shots == 3 and ours == theirs
        requests = scoring.loglikelihood_requests(sample, ours, prompt.answer_delimiter(chat))
        instances = task.construct_requests(doc, theirs, apply_chat_template=chat, metadata=("t", 0, 1))
        assert requests == [tuple(instances.arguments)]


def choice_requests_of(samples: pd.DataFrame) -> list[tuple[str, str]]:
    """Every (prompt, choice) request of the multiple-choice `samples`, in order."""
    return [r for _, row in samples.iterrows() for r in scoring.choice_requests(row["prompt"], list(row["choices"]))]


def test_scores_do_not_depend_on_the_batch_size(model_dir: Path) -> None:
    """lm-eval #1645: results that move with the batch size. Left padding and shared contexts must not."""
    requests = choice_requests_of(starter_samples(["capitals", "opposites"]).groupby("source").head(12))
    scores = {}
    for batch_size in (1, 5, 16, "auto"):  # auto, on the CPU: lm-eval's max_batch_size, 64
        backend = make_backend("hf", {"pretrained": str(model_dir)}, batch_size=batch_size, device="cpu")
        scores[batch_size] = backend.loglikelihood(requests)
    assert backend.shared_prefix.batch_size == 64
    for batch_size in (5, 16, "auto"):
        ll = np.array([x for x, _ in scores[batch_size]])
        assert np.abs(ll - np.array([x for x, _ in scores[1]])).max() < 1e-4
        assert [g for _, g in scores[batch_size]] == [g for _, g in scores[1]]


def test_auto_batch_size_halves_at_each_out_of_memory_error(model_dir: Path, monkeypatch) -> None:
    """`--batch-size auto` on a GPU: the shared prefix starts at lm-eval's max_batch_size (64) and halves at each
    out-of-memory error, keeping the size that fit. The memory error is simulated (torch.OutOfMemoryError, as
    CUDA raises it, from a forward pass of more than 12 rows); a fixed batch size lets it through."""
    import torch

    from harness.backends.shared_prefix import SharedPrefixScorer

    requests = choice_requests_of(starter_samples(["capitals"]).head(20))  # four choices each
    backend = make_backend("hf", {"pretrained": str(model_dir)}, batch_size=1, device="cpu")
    expected = backend.loglikelihood(requests)
    adaptive, fixed = SharedPrefixScorer(backend.lm, None), SharedPrefixScorer(backend.lm, 8)
    forward, rows = backend.lm.model.forward, []

    def small_memory(**inputs: Any) -> Any:
        rows.append(len(inputs["input_ids"]))
        if rows[-1] > 12:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return forward(**inputs)

    monkeypatch.setattr(backend.lm.model, "forward", small_memory)
    got = adaptive.loglikelihood(requests)
    # all 20 contexts (the most, under 64) fail; 10 fit but not their 40 choices, nor 5's 20; 2 and their 8 fit
    assert rows[:7] == [20, 10, 40, 5, 20, 2, 8] and adaptive.batch_size == 2 and max(rows[7:]) == 8
    assert np.abs(np.array([x for x, _ in got]) - np.array([x for x, _ in expected])).max() < 1e-4
    assert [g for _, g in got] == [g for _, g in expected]
    with pytest.raises(torch.OutOfMemoryError):
        fixed.loglikelihood(requests)


def test_cli_runs_the_real_model_on_a_starter_task(cli, model_dir: Path, tmp_path: Path) -> None:
    cli("add", "starter", "capitals", check=True)
    cli(
        "run",
        "--model",
        "hf",
        "--model-args",
        "pretrained=builtin:smollm2-135m",
        "--name",
        "smollm2",
        "--limit",
        "40",
        "--batch-size",
        "auto",
        "--no-progress",
        check=True,
    )
    board = json.loads(cli("rank", "--method", "mean", "--json", check=True).stdout)
    (entry,) = board["models"]
    assert entry["model"] == "smollm2" and entry["n_samples"] == 40
    assert 0.25 < entry["score"] < 1.0  # above chance (4 choices), far from perfect on obscure capitals
    (config,) = Pool(tmp_path / "pool").read("runs")["config"].map(json.loads)
    described = config["backend_info"]
    assert config["batch_size"] == "auto" and described["share_prefix"]
    assert described["device"] == "cpu" and described["dtype"] == "torch.float32"
    assert [run["backend"] for run in board["runs"]] == ["hf (cpu, float32)"]


def test_a_run_by_letter_stores_what_the_model_generates_from_the_lettered_question(
    smollm2: Any, tmp_path: Path
) -> None:
    """The real model answering multiple-choice questions with a letter: each stored text is what it generates
    from the lettered question (written out here), the letter is read from that text, acc is whether it is the
    target's, and no log-likelihood is asked for."""
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", starter_samples(["capitals"]).head(6))
    assert run(pool, RunSpec("smollm2", "hf", multiple_choice="letter"), smollm2, progress=False).evaluated == 6
    responses = pool.read("responses").set_index("sample_id")["response"].map(json.loads)
    acc = pool.read("measurements").set_index("sample_id")
    assert set(acc["metric"]) == {"acc"}
    france = "Question: What is the capital city of France?\nA. Harare\nB. Brasilia\nC. Paris\nD. Caracas\nAnswer:"
    for sample in pool.samples().itertuples():
        listed = "".join(f"\n{letter}. {choice}" for letter, choice in zip("ABCD", sample.choices, strict=True))
        question = sample.prompt.removesuffix("\nAnswer:") + listed + "\nAnswer:"
        assert question == france or "France" not in question
        [text] = smollm2.generate([GenerationRequest(f"Answer with the letter of the correct choice.\n\n{question}")])
        response = responses[sample.sample_id]
        assert "loglikelihoods" not in response and response["text"] == text
        assert response["extracted"] == chosen_letter(text, 4)
        assert acc.loc[sample.sample_id, "value"] == float(response["extracted"] == "ABCD"[json.loads(sample.target)])
    assert any(response["extracted"] for response in responses)  # the model does answer with letters


def test_max_gen_tokens_caps_a_generation(cli, model_dir: Path, tmp_path: Path) -> None:
    """`run --max-gen-tokens N`: a generation of at most N tokens (here the model would go on counting)."""
    questions = tmp_path / "count.jsonl"
    questions.write_text(json.dumps({"prompt": "Count: 1, 2, 3, 4,", "answer": "5"}) + "\n")
    cli("add", "jsonl", str(questions), "--source", "count", "--kind", "generation", check=True)
    model = ["--model", "hf", "--model-args", "pretrained=builtin:smollm2-135m", "--no-progress"]
    cli("run", *model, "--name", "smol", "--max-gen-tokens", "3", check=True)
    pool = Pool(tmp_path / "pool")
    text = json.loads(pool.read("responses")["response"][0])["text"]
    assert len(AutoTokenizer.from_pretrained(model_dir)(text, add_special_tokens=False)["input_ids"]) == 3, text
    assert json.loads(pool.read("runs")["config"].iloc[-1])["max_gen_tokens"] == 3


def test_a_letters_reply_in_a_chat_runs_until_the_turn_ends(smollm2: Any, tmp_path: Path, monkeypatch) -> None:
    """Answering by letter, a plain prompt's reply stops at a blank line (a base model goes on to the next
    question), a chat's (SmolLM2's template) when the model's turn ends, so a reply that reasons first reaches
    its letter."""
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", starter_samples(["capitals"]).head(2))
    sent: list[GenerationRequest] = []
    generate = smollm2.generate
    monkeypatch.setattr(smollm2, "generate", lambda requests: sent.extend(requests) or generate(requests))
    for chat in (False, True):
        spec = RunSpec(f"smol-{chat}", "hf", chat_template=chat, multiple_choice="letter", max_gen_tokens=8)
        assert run(pool, spec, smollm2, progress=False).evaluated == 2
    assert [request.until for request in sent] == [("\n\n",)] * 2 + [()] * 2
