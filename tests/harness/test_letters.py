"""Multiple-choice samples answered with a letter (`run --multiple-choice letter`): the lettered prompt, the
letter read back, the scores, the run's configuration, and a chat endpoint's run."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from harness import plan, scoring
from harness.letters import chosen_letter, lettered_question
from harness.pool import Pool
from harness.reporting import run_settings
from harness.runner import RunSpec, pending, run
from harness.schema import PoolError, stable_hash
from tasks.starter import starter_samples
from tests.harness.capitals import described_questions


def test_the_choices_are_lettered_after_the_question_and_the_cue_moves_after_them() -> None:
    arc = "Question: Which gas do plants take in?\nAnswer:"  # lm-eval's prompts end in the cue
    assert lettered_question(arc, ["oxygen", "carbon dioxide"]) == (
        "Question: Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nAnswer:"
    )
    assert lettered_question("2 + 2 =", ["3", "4", "5"]) == "2 + 2 =\nA. 3\nB. 4\nC. 5\nAnswer:"
    truthfulqa = "Q: What is 2 + 2?\nA:"
    assert lettered_question(truthfulqa, ["3", "4"]) == "Q: What is 2 + 2?\nA. 3\nB. 4\nAnswer:"
    assert lettered_question("Pick one of X or A:", ["X", "A"]) == "Pick one of X or A:\nA. X\nB. A\nAnswer:"
    mmlu = "What is 2 + 2?\nA. 3\nB. 4\nAnswer:"  # its choices are the letters it lists: as it is
    assert lettered_question(mmlu, ["A", "B"]) == mmlu
    assert lettered_question("What is 2 + 2?\nA. 3\nB. 4", [" A", " B"]) == mmlu
    with pytest.raises(PoolError, match="27 choices, more than the 26 letters"):
        lettered_question("Which?", [str(n) for n in range(27)])


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        (" C", "C"),
        ("B.", "B"),
        ("(D) Lima", "D"),
        ("A: Paris\n\nQuestion: ...", "A"),
        (" B\nQuestion: 1 + 1?\nA. 2\nB. 3\nAnswer: A", "B"),  # a base model going on: its first answer
        ("The answer is B.", "B"),
        ("I think so.\nANSWER: (C)", "C"),
        ("**Answer:** B", "B"),
        ("Answer A is tempting, but the answer is C.", "C"),  # the conclusion
        ("**C. Lima**", "C"),
        ("[D]", "D"),
        ("answer: d", ""),  # a lower-case letter names no choice
        ("A good question; Paris", ""),  # an article is no answer
        ("The answer is Bogota", ""),
        ("E", ""),  # four choices: no E
        ("", ""),
    ],
)
def test_the_letter_chosen_is_the_one_stated_or_the_one_the_reply_opens_with(text: str, letter: str) -> None:
    assert chosen_letter(text, 4) == letter


def test_examples_are_answered_with_letters_after_the_instruction() -> None:
    """By hand: the system instruction, the task's description, the instruction, then the lettered examples
    answered with their letters and the lettered question."""
    samples = described_questions("\nAnswer:")
    prompt = plan.fewshot_context(samples.iloc[0], samples, 1, system_instruction="Be brief.", letters=True)
    assert prompt.text == (
        "Be brief.\n\nAbout capitals.\n\nAnswer with the letter of the correct choice.\n\n"
        "Q: Peru?\nA. Paris\nB. Lima\nAnswer: B\n\nQ: France?\nA. Paris\nB. Lima\nAnswer:"
    )
    assert prompt.messages(multiturn=True)[1:] == [
        {"role": "user", "content": "Q: Peru?\nA. Paris\nB. Lima\nAnswer:"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "Q: France?\nA. Paris\nB. Lima\nAnswer:"},
    ]
    generation = samples.iloc[0].copy()
    generation["kind"], generation["target"] = "generation", '["Paris"]'
    assert plan.fewshot_context(generation, samples, 0, letters=True).text == generation["prompt"]  # as it is


def test_a_letter_scores_acc_and_is_kept_with_the_text() -> None:
    sample = described_questions("\nAnswer:").iloc[1]  # Lima, B
    assert scoring.score_response(sample, {"text": "B. Lima"}) == ({"acc": 1.0}, {"text": "B. Lima", "extracted": "B"})
    assert scoring.score_response(sample, {"text": " A"})[0] == {"acc": 0.0}
    assert scoring.score_response(sample, {"text": "Paris"})[1]["extracted"] == ""
    picked = scoring.score_response(sample, {"text": "A is wrong. [B]"}, answer_pattern=r"\[(\w)\]")
    assert picked == ({"acc": 1.0}, {"text": "A is wrong. [B]", "extracted": "B"})


def test_answers_by_letter_are_a_runs_configuration() -> None:
    plain = RunSpec(model="m", backend="hf")
    assert plain.run_id == "run-" + stable_hash("m", "hf", {}, 0, None, 64, length=16)  # the ids runs had
    assert RunSpec(model="m", backend="hf", multiple_choice="letter").run_id != plain.run_id
    assert run_settings(asdict(RunSpec(model="m", backend="hf", multiple_choice="letter"))) == (
        "0-shot, multiple choice by letter"
    )
    with pytest.raises(PoolError, match="'letters' is not one of log-likelihood, letter"):
        RunSpec(model="m", backend="hf", multiple_choice="letters")
    with pytest.raises(PoolError, match="a baseline picks a choice by its text"):
        RunSpec(model="m", backend="baseline-random", multiple_choice="letter")


def test_a_run_by_letter_says_which_samples_rank_on_another_metric(tmp_path: Path) -> None:
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", starter_samples(["capitals"]).head(5).assign(metric=["acc_norm"] * 3 + ["acc"] * 2))
    note = "3 multiple-choice samples are ranked on acc_norm, which an answer by letter does not give"
    assert any(note in text for text in pending(pool, RunSpec("m", "hf", multiple_choice="letter")).notes)
    assert not pending(pool, RunSpec("m", "hf")).notes


def test_a_chat_endpoint_answers_multiple_choice_by_letter(cli, tmp_path: Path) -> None:
    """With --multiple-choice letter, a chat endpoint's run sends the multiple-choice samples it would refuse
    otherwise (here to an address where nothing listens: the run fails connecting, not before), and the
    refusal names the option."""
    cli("add", "starter", "capitals", check=True)
    server = "base_url=http://127.0.0.1:9/v1/chat/completions,model=m,max_retries=1"
    endpoint = ["run", "--model", "openai-chat-completions", "--model-args", server, "--name", "chat", "--no-progress"]
    assert "(--multiple-choice letter)" in cli(*endpoint).stderr
    by_letter = cli(*endpoint, "--multiple-choice", "letter")
    assert by_letter.returncode == 2 and "failed after 0 of 100 samples (ConnectionError" in by_letter.stderr
    assert "left out" not in by_letter.stderr
    (config,) = Pool(tmp_path / "pool").read("runs")["config"].map(json.loads)
    assert config["multiple_choice"] == "letter"


def test_the_report_shows_the_letter_with_its_choice(cli, tmp_path: Path) -> None:
    cli("add", "starter", "capitals", check=True)
    path = tmp_path / "outputs.jsonl"
    path.write_text(json.dumps({"source": "starter/capitals", "id": "capitals-000", "output": "The answer is C."}))
    cli("import", "outputs", str(path), "--model", "m", check=True)
    page = tmp_path / "report.html"
    cli("report", "--out", str(page), "--method", "mean", check=True)
    assert r"The answer is C.\nanswer: C (Paris)" in page.read_text()


def test_questions_that_cannot_be_answered_by_letter_are_refused_before_the_run(tmp_path: Path) -> None:
    """Refused before a run is recorded: an lm-eval task added with its examples inside the prompt (answered
    with the choices' text), and a question with more choices than letters."""
    from harness.backends import make_backend

    endpoint = make_backend("openai-chat-completions", {"base_url": "http://127.0.0.1:9/v1/chat/completions"})
    spec = RunSpec("chat", "openai-chat-completions", multiple_choice="letter")
    pool = Pool(tmp_path / "pool", create=True)
    shots = starter_samples(["capitals"]).head(2)
    pool.add("samples", shots.assign(source="capitals_2shot", metadata=[{"num_fewshot": 2}] * 2))
    with pytest.raises(PoolError, match="letter: the lm-eval task.s. capitals_2shot were added with their few-shot"):
        run(pool, spec, endpoint, progress=False)
    many = Pool(tmp_path / "many", create=True)
    many.add("samples", shots.assign(choices=[[str(n) for n in range(27)]] * 2))
    with pytest.raises(PoolError, match="27 choices, more than the 26 letters"):
        run(many, spec, endpoint, progress=False)
    assert pool.read("runs").empty and many.read("runs").empty
