"""`import outputs`: outputs generated elsewhere, scored as a run scores its own generations."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.pool import Pool
from harness.schema import PoolError
from tasks.importers.outputs import read_outputs
from tests.lm_eval_task import write_task

GSM_BODY = """doc_to_target: "{{answer}}"
generation_kwargs: {until: ["Question:"]}
filter_list: [{name: strict, filter: [{function: regex, regex_pattern: "#### (\\\\d+)"}, {function: take_first}]}]
metric_list: [{metric: exact_match, regexes_to_ignore: ["(?s).*#### "]}]"""


@pytest.fixture
def pool_with_generations(cli, tmp_path: Path) -> Pool:
    """Three local generation samples (source `gen`, ids g1-g3) and one lm-eval gsm8k-style sample (`gsm`, 0)."""
    gen = tmp_path / "gen.jsonl"
    rows = [("g1", "Capital of France?", "Paris"), ("g2", "2+2?", "4"), ("g3", "Color of the sky?", "blue")]
    gen.write_text("".join(json.dumps({"id": i, "prompt": p, "answer": a}) + "\n" for i, p, a in rows))
    cli("add", "jsonl", str(gen), "--source", "gen", "--kind", "generation", check=True)
    data = tmp_path / "gsm.jsonl"
    data.write_text(json.dumps({"question": "Eggs?", "answer": "She has 3 + 15 = 18 eggs.\n#### 18"}) + "\n")
    write_task(tmp_path, "gsm", data, "generate_until", GSM_BODY)
    cli("add", "lm-eval", "gsm", "--include-path", str(tmp_path), check=True)
    return Pool(tmp_path / "pool")


def test_outputs_are_scored_as_a_run_scores_generations(cli, tmp_path: Path, pool_with_generations: Pool) -> None:
    """exact_match, f1 and contains by hand (SQuAD normalisation, the first line as the answer); the lm-eval
    sample's answer is its task's regex filter's and its exact_match lm-eval's with the task's options (the
    plain way, its first line against the whole reference, would give 0). Importing again adds nothing."""
    outputs = tmp_path / "outputs.jsonl"
    rows = [
        {"source": "gen", "id": "g1", "output": "Paris\nis the capital"},
        {"source": "gen", "id": "g2", "output": "The answer is 4"},
        {"source": "gen", "id": "g3", "output": ""},
        {"source": "gsm", "id": "0", "output": "3 + 15 = 18\n#### 18\n"},
    ]
    outputs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    done = cli("import", "outputs", str(outputs), "--model", "api-x", check=True)
    assert "1 models, 4 responses, 12 measurements" in done.stderr
    pool = pool_with_generations
    samples = pool.samples().set_index("sample_id")
    measured = pool.measurements(models="api-x").assign(
        source_id=lambda m: samples.loc[m["sample_id"], "source_id"].values
    )
    values = measured.pivot(index="source_id", columns="metric", values="value")
    expected = {  # exact_match, f1, contains
        "g1": (1.0, 1.0, 1.0),
        "g2": (0.0, 0.5, 1.0),  # tokens "answer is 4" against "4": precision 1/3, recall 1
        "g3": (0.0, 0.0, 0.0),
        # "18" against the whole reference, normalised "she has 3 15 18 eggs 18": precision 1, recall 1/7
        "0": (1.0, 0.25, 0.0),
    }
    for source_id, (exact_match, f1, contains) in expected.items():
        row = values.loc[source_id]
        assert (row["exact_match"], row["contains"]) == (exact_match, contains), source_id
        assert row["f1"] == pytest.approx(f1), source_id
    assert set(measured["run_id"]) == {"import:outputs.jsonl"}
    responses = pool.read("responses", models="api-x").set_index("sample_id")["response"].map(json.loads)
    by_source_id = {samples.loc[i, "source_id"]: r for i, r in responses.items()}
    assert by_source_id["g1"] == {"text": "Paris\nis the capital", "extracted": "Paris"}
    assert by_source_id["0"] == {"text": "3 + 15 = 18\n#### 18\n", "extracted": "18"}
    again = cli("import", "outputs", str(outputs), "--model", "api-x", check=True)
    assert "nothing new" in again.stderr and len(pool.measurements(models="api-x")) == 12
    board = json.loads(cli("rank", "--method", "mean", "--json", check=True).stdout)
    assert [m["model"] for m in board["models"]] == ["api-x"]


def test_an_answer_pattern_and_a_csv_by_source_option(cli, tmp_path: Path, pool_with_generations: Pool) -> None:
    outputs = tmp_path / "outputs.csv"
    outputs.write_text('key,text\ng1,"I think it is paris"\ng2,"It is 4.\nSure."\n')
    cli(
        "import", "outputs", str(outputs), "--model", "m", "--source", "gen", "--id-field", "key",
        "--output-field", "text", "--answer-pattern", r"is (\w+)", check=True,
    )  # fmt: skip
    measured = pool_with_generations.measurements(models="m", metric="exact_match")
    assert sorted(measured["value"]) == [1.0, 1.0]  # "paris" and "4" after the pattern; the whole lines: 0 and 0
    refused = cli("import", "outputs", str(outputs), "--model", "m", "--source", "gen", "--answer-pattern", "is (")
    assert refused.returncode == 2 and "Invalid value for '--answer-pattern'" in refused.stderr


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"source": "gen", "id": "g1", "output": "x"}', '{"source": "gen", "id": "g9", "output": "x"}'],
         ":2: sample 'g9' of source 'gen' is not in the pool"),
        (['{"source": "gen", "id": "g1", "output": "x"}', "", '{"source": "gen", "id": "g1", "output": "y"}'],
         ":3: sample 'g1' of source 'gen' again (first at line 1)"),
        (['{"source": "gen", "id": "g1", "output": 4}'], ":1: 'output' is no text (got int)"),
        (['{"source": "gen", "id": "g1", "output": "x"}', '{"source": "gen", "id": "g2"}'],
         ":2: 'output' is no text (got nothing)"),
        (['{"source": "gen", "output": "x"}', '{"source": "gen", "id": "g2", "output": "x"}'], ":1: no source or 'id'"),
        (['{"id": "g1", "output": "x"}'], ": no `source` field: name the samples' source with --source"),
        (['{"source": "gen", "id": "g1", "answer": "x"}'], ": no 'output' field"),
        (['{"sample_id": "nope", "output": "x"}'], ":1: sample_id 'nope' is not in the pool"),
    ],
)  # fmt: skip
def test_bad_rows_name_their_line(tmp_path: Path, lines: list[str], message: str) -> None:
    pool = Pool(tmp_path / "pool", create=True)
    pool.add("samples", pd.DataFrame({"source": "gen", "source_id": ["g1", "g2"], "kind": "generation",
                                      "prompt": ["p1", "p2"], "target": [["a"], ["b"]]}))  # fmt: skip
    path = tmp_path / "outputs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PoolError) as refused:
        read_outputs(path, pool.samples())
    assert str(refused.value).startswith(f"{path}{message}"), refused.value


def test_multiple_choice_outputs_are_read_for_a_letter_others_refused_as_are_ambiguous_ids(cli, tmp_path: Path) -> None:
    """A multiple-choice sample's output is read for the letter it chose (as `run --multiple-choice letter`
    reads it); a continuation sample is scored from log-likelihoods: refused, and nothing lands; a source id
    that names two samples (a task added with two prompt settings) needs the row's sample_id."""
    cli("add", "starter", "capitals", check=True)
    pool = Pool(tmp_path / "pool")
    france = pool.samples().set_index("source_id").loc["capitals-000"]  # Paris: C
    path = tmp_path / "outputs.jsonl"
    path.write_text(json.dumps({"source": "starter/capitals", "id": "capitals-000", "output": "The answer is C"}))
    cli("import", "outputs", str(path), "--model", "m", check=True)
    [measured] = pool.read("measurements").to_dict(orient="records")
    assert measured["sample_id"] == france["sample_id"] and (measured["metric"], measured["value"]) == ("acc", 1.0)
    assert json.loads(pool.read("responses")["response"][0]) == {"text": "The answer is C", "extracted": "C"}
    pool.add("samples", pd.DataFrame({"source": "lambada", "source_id": ["l1"], "kind": "continuation",
                                      "prompt": ["The cat sat on the"], "target": [["mat"]]}))  # fmt: skip
    path.write_text(json.dumps({"source": "lambada", "id": "l1", "output": "mat"}) + "\n")
    refused = cli("import", "outputs", str(path), "--model", "n")
    assert (
        refused.returncode == 2
        and (f"{path}:1: sample 'l1' of source 'lambada' is a continuation sample, scored from log-likelihoods")
        in refused.stderr
    )
    assert pool.stats()["models"] == 1
    twice = pd.DataFrame({"source": "gen", "source_id": "g1", "kind": "generation", "prompt": ["p", "5-shot: p"],
                          "target": [["a"], ["a"]]})  # fmt: skip
    pool.add("samples", twice)
    path.write_text(json.dumps({"source": "gen", "id": "g1", "output": "a"}) + "\n")
    with pytest.raises(PoolError, match=r":1: sample 'g1' of source 'gen' names 2 samples .*give each row's sample_id"):
        read_outputs(path, pool.samples())
    by_id = pool.samples(sources="gen").iloc[1]["sample_id"]
    path.write_text(json.dumps({"sample_id": by_id, "output": "a"}) + "\n")
    assert read_outputs(path, pool.samples()).to_dict(orient="records") == [{"sample_id": by_id, "output": "a"}]
