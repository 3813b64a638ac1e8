"""`poolbench import inspect`: logs written by inspect_ai itself (its mockllm provider answering as told), with
inspect's own metrics as the oracle for the values the pool keeps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from inspect_ai import Epochs, Task, eval
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.log import EvalLog, read_eval_log, write_eval_log
from inspect_ai.model import ChatMessageSystem, ChatMessageUser, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import choice, includes, match
from inspect_ai.solver import Generate, Solver, TaskState, generate, multiple_choice, solver

from harness.pool import Pool

pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning")

ARITHMETIC = [
    Sample(id="q1", input="2+2?", target="4"),
    Sample(id="q2", input="3+3?", target="6"),
    Sample(id=3, input="1+1?", target=["2", "two"]),
]
QUIZ = [
    Sample(id="m1", input="Capital of France?", choices=["Rome", "Paris"], target="B"),
    Sample(id="m2", input="Colour of blood?", choices=["red", "blue", "green"], target="A"),
]


def answer(text: str) -> ModelOutput:
    output = ModelOutput.from_content(model="mockllm", content=text)
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # else inspect fetches a tokenizer
    return output


@solver
def fail_on(sample_id: Any) -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        if state.sample_id == sample_id:
            raise RuntimeError("the sandbox broke")
        return await generate(state)

    return solve


def inspect_log(folder: Path, model: str, task: Task, answers: list[str], epochs: int | Epochs = 1) -> EvalLog:
    """Run `task` with inspect_ai on mockllm/<model>, which gives `answers` in turn; the log inspect wrote."""
    mock = get_model(f"mockllm/{model}", custom_outputs=[answer(text) for text in answers])
    [log] = eval(task, model=mock, log_dir=str(folder), display="none", epochs=epochs, max_connections=1)
    return read_eval_log(log.location)


def arithmetic(solve: Solver | None = None) -> Task:
    return Task(
        name="arith", dataset=MemoryDataset(ARITHMETIC), solver=solve or generate(), scorer=[match(), includes()]
    )


def accuracy(log: EvalLog, scorer: str) -> float:
    """inspect's own accuracy for `scorer` in the log."""
    return next(score.metrics["accuracy"].value for score in log.results.scores if score.name == scorer)


def test_logs_of_two_models_share_samples_and_keep_inspects_scores(cli, tmp_path: Path) -> None:
    alpha = inspect_log(tmp_path / "logs", "alpha", arithmetic(), ["4", "5", "two"])
    beta = inspect_log(tmp_path / "logs", "beta", arithmetic(), ["4 apples", "6", "2"])
    done = cli("import", "inspect", str(tmp_path / "logs"), check=True)  # the log dir: its logs, oldest first
    assert [line.split(": ", 1)[1] for line in done.stderr.splitlines()] == [
        "1 models, 3 samples, 3 responses, 6 measurements",
        "1 models, 3 responses, 6 measurements",  # no note; the second model's values on the same samples
    ]
    pool = Pool(tmp_path / "pool")
    samples = pool.samples().set_index("source_id")
    assert sorted(samples.index) == ["3", "q1", "q2"] and set(samples["source"]) == {"arith"}
    assert set(samples["kind"]) == {"generation"} and set(samples["metric"]) == {"match"}
    assert json.loads(samples.at["3", "target"]) == ["2", "two"]
    measured = pool.measurements()
    for log in (alpha, beta):
        mine = measured[measured["model"] == log.eval.model]
        for scorer in ("match", "includes"):
            values = mine.loc[mine["metric"] == scorer, "value"]
            assert len(values) == 3 and values.mean() == pytest.approx(accuracy(log, scorer))
    assert accuracy(beta, "match") != accuracy(beta, "includes")  # "4 apples": includes, no match
    texts = {json.loads(r)["text"] for r in pool.read("responses")["response"]}
    assert {"5", "4 apples", "two"} <= texts
    assert pool.scores().groupby("sample_id")["model"].nunique().tolist() == [2, 2, 2]


def test_multiple_choice_samples_and_the_model_option(cli, tmp_path: Path) -> None:
    quiz = Task(name="quiz", dataset=MemoryDataset(QUIZ), solver=multiple_choice(), scorer=choice())
    log = inspect_log(tmp_path / "logs", "alpha", quiz, ["ANSWER: B", "ANSWER: C"])
    cli("import", "inspect", log.location, "--model", "my-model", check=True)
    pool = Pool(tmp_path / "pool")
    samples = pool.samples().set_index("source_id")
    assert set(samples["kind"]) == {"multiple_choice"} and set(samples["metric"]) == {"choice"}
    assert list(samples.at["m1", "choices"]) == ["Rome", "Paris"] and json.loads(samples.at["m1", "target"]) == 1
    assert json.loads(samples.at["m2", "target"]) == 0
    values = pool.measurements().set_index("sample_id")["value"]
    assert values[samples.at["m1", "sample_id"]] == 1.0 and values[samples.at["m2", "sample_id"]] == 0.0
    assert set(pool.measurements()["model"]) == {"my-model"}


def test_samples_with_several_right_answers_are_said_to_be_generations(cli, tmp_path: Path) -> None:
    several = Sample(id="m3", input="Which are colours?", choices=["red", "dog", "blue"], target=["A", "C"])
    quiz = Task(
        name="quiz",
        dataset=MemoryDataset([*QUIZ, several]),
        solver=multiple_choice(multiple_correct=True),
        scorer=choice(),
    )
    log = inspect_log(tmp_path / "logs", "alpha", quiz, ["ANSWER: B", "ANSWER: A", "ANSWER: A,C"])
    done = cli("import", "inspect", log.location, check=True)
    assert "1 samples with choices have not one target letter among them (m3; several right answers" in done.stderr
    samples = Pool(tmp_path / "pool").samples().set_index("source_id")
    assert samples.at["m3", "kind"] == "generation" and json.loads(samples.at["m3", "target"]) == ["A", "C"]
    assert set(samples.loc[["m1", "m2"], "kind"]) == {"multiple_choice"}
    values = Pool(tmp_path / "pool").measurements()["value"]
    assert values.mean() == pytest.approx(accuracy(log, "choice"))


def test_epochs_are_reduced_as_inspect_reduces_them(cli, tmp_path: Path) -> None:
    # inspect asks each sample in turn per epoch: q1, q2, 3, then again
    log = inspect_log(tmp_path / "logs", "alpha", arithmetic(), ["4", "6", "two", "4", "5", "3"], epochs=2)
    cli("import", "inspect", log.location, check=True)
    measured = Pool(tmp_path / "pool").measurements()
    match_values = measured.loc[measured["metric"] == "match", "value"]
    assert sorted(match_values) == [0.5, 0.5, 1.0] and match_values.mean() == pytest.approx(accuracy(log, "match"))
    # a log without reductions (an eval that stopped early): the epochs' mean of inspect's value_to_float
    log.reductions = None
    bare = tmp_path / "bare.eval"
    write_eval_log(log, str(bare))
    done = cli("import", "inspect", str(bare), pool=tmp_path / "other", check=True)
    assert "no reduced scores in the log: each sample's epochs are averaged" in done.stderr
    other = Pool(tmp_path / "other").measurements()
    assert sorted(other.loc[other["metric"] == "match", "value"]) == [0.5, 0.5, 1.0]


def test_reduced_scores_that_are_letters_count_as_inspects_metrics_count_them(cli, tmp_path: Path) -> None:
    # the "mode" reducer keeps match's letters: q1 C,C,I -> C; q2 C,I,I -> I; 3 C,I,I -> I
    answers = ["4", "6", "two", "4", "5", "3", "5", "5", "3"]
    log = inspect_log(tmp_path / "logs", "alpha", arithmetic(), answers, epochs=Epochs(3, "mode"))
    assert {score.value for score in log.reductions[0].samples} == {"C", "I"}
    cli("import", "inspect", log.location, check=True)
    measured = Pool(tmp_path / "pool").measurements()
    match_values = measured.loc[measured["metric"] == "match", "value"]
    assert sorted(match_values) == [0.0, 0.0, 1.0] and match_values.mean() == pytest.approx(accuracy(log, "match"))
    # a value inspect cannot read as a number (it would warn and count 0) is left out, and said
    log.reductions[0].samples[0].value = "maybe"
    odd = tmp_path / "odd.eval"
    write_eval_log(log, str(odd))
    done = cli("import", "inspect", str(odd), pool=tmp_path / "other", check=True)
    assert "left out 1 values of match that are no numbers ('maybe')" in done.stderr
    other = Pool(tmp_path / "other").measurements()
    assert len(other[other["metric"] == "match"]) == 2 and len(other[other["metric"] == "includes"]) == 3


def test_errored_samples_are_left_out_and_bad_files_named(cli, tmp_path: Path) -> None:
    task = arithmetic(solve=fail_on("q2"))
    mock = get_model("mockllm/alpha", custom_outputs=[answer("4"), answer("two")])
    [log] = eval(task, model=mock, log_dir=str(tmp_path / "logs"), display="none", fail_on_error=False)
    done = cli("import", "inspect", log.location, check=True)
    assert "left out 1 samples: every epoch errored (q2)" in done.stderr
    assert sorted(Pool(tmp_path / "pool").samples()["source_id"]) == ["3", "q1"]
    (tmp_path / "empty").mkdir()
    done = cli("import", "inspect", str(tmp_path / "empty"))
    assert done.returncode == 2 and f"{tmp_path / 'empty'}: no inspect_ai logs in this directory" in done.stderr
    broken = tmp_path / "broken.eval"
    broken.write_text("not a zip")
    done = cli("import", "inspect", str(broken))
    assert done.returncode == 2 and f"{broken}: not an inspect_ai log" in done.stderr
    empty = tmp_path / "empty.json"
    empty.write_text("{}")  # pydantic's message runs over several lines: the first, in parentheses
    done = cli("import", "inspect", str(empty))
    assert (
        done.stderr
        == f"poolbench: error: {empty}: not an inspect_ai log (ValidationError: 1 validation error for EvalLog)\n"
    )
    assert len(Pool(tmp_path / "pool").samples()) == 2  # nothing of the failed import landed


def test_json_logs_and_chat_inputs(cli, tmp_path: Path) -> None:
    chat = [ChatMessageSystem(content="Answer with a number."), ChatMessageUser(content="2+2?")]
    task = Task(name="chat", dataset=MemoryDataset([Sample(id=1, input=chat, target="4")]), scorer=match())
    log = inspect_log(tmp_path / "logs", "alpha", task, ["4"])
    as_json = tmp_path / "log.json"
    write_eval_log(log, str(as_json))  # inspect's other log format
    cli("import", "inspect", str(as_json), check=True)
    pool = Pool(tmp_path / "pool")
    assert pool.samples()["prompt"].tolist() == ["Answer with a number.\n\n2+2?"]
    assert pool.measurements()["value"].tolist() == [1.0]


def test_logs_by_url_as_inspect_reads_them(cli, tmp_path: Path) -> None:
    """A URL goes to inspect's filesystem layer (fsspec) as inspect reads it: file:// here, s3:// alike."""
    alpha = inspect_log(tmp_path / "logs", "alpha", arithmetic(), ["4", "5", "two"])
    inspect_log(tmp_path / "logs", "beta", arithmetic(), ["4", "6", "2"])
    done = cli("import", "inspect", (tmp_path / "logs").as_uri(), check=True)
    assert done.stderr.count(f"{tmp_path / 'logs'}/") == 2  # each log named by its local path
    assert set(Pool(tmp_path / "pool").measurements()["model"]) == {"mockllm/alpha", "mockllm/beta"}
    done = cli("import", "inspect", Path(alpha.location).as_uri(), pool=tmp_path / "other", check=True)
    assert "3 samples" in done.stderr
    missing = (tmp_path / "nowhere.eval").as_uri()
    done = cli("import", "inspect", missing)
    assert done.returncode == 2 and f"{missing}: no such file" in done.stderr
    done = cli("import", "inspect", "nosuch://bucket/logs")
    assert done.returncode == 2 and "nosuch://bucket/logs: Protocol not known: nosuch" in done.stderr


def test_without_inspect_installed_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.schema import PoolError
    from tasks.importers.inspect_logs import import_inspect_log, log_files

    monkeypatch.setitem(sys.modules, "inspect_ai.log", None)  # what `import inspect_ai.log` finds uninstalled
    for call in (lambda: log_files(["logs"]), lambda: import_inspect_log("log.eval")):
        with pytest.raises(PoolError, match=r"needs inspect-ai: pip install 'poolbench\[inspect\]'"):
            call()
