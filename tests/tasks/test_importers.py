"""Importers and adapters on real data and real lm-eval output; bad input gives a clear error, loses nothing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import kendalltau

import aggregators
from harness.backends import make_backend
from harness.pool import Pool
from harness.reporting import build_report, ranking_inputs
from harness.runner import RunSpec, pending
from harness.schema import PoolError
from tasks.files import read_rows
from tasks.importers.helm import task_name
from tasks.importers.lm_eval_samples import import_lm_eval_samples
from tasks.importers.matrix import import_matrix
from tasks.importers.pairwise import import_pairwise
from tasks.local import load_local
from tests.lm_eval_task import write_task


def stats(cli) -> dict:
    return json.loads(cli("pool", "stats", "--json", check=True).stdout)


def test_chembench_matrix(cli, shared_data: Path) -> None:
    cli(
        "import",
        "matrix",
        str(shared_data / "chembench_binary" / "binary_matrix.csv"),
        "--source",
        "chembench",
        check=True,
    )
    counts = stats(cli)
    assert (counts["samples"], counts["models"], counts["measurements"]) == (2854, 22, 62788)
    again = cli(
        "import",
        "matrix",
        str(shared_data / "chembench_binary" / "binary_matrix.csv"),
        "--source",
        "chembench",
        check=True,
    )
    assert "nothing new" in again.stderr and stats(cli) == counts
    truth = pd.read_csv(shared_data / "chembench_binary" / "model_score_allcorrect.csv")
    board = json.loads(cli("rank", "--method", "mean", "--json", check=True).stdout)
    means = {m["model"]: m["score"] for m in board["models"]}
    for row in truth.itertuples(index=False):
        if row[0] in means:
            assert means[row[0]] == pytest.approx(float(row[1]), abs=1e-3)
    default = json.loads(cli("rank", "--json", check=True).stdout)  # pl-conditional: the accuracy ranking
    assert default["method"] == "pl-conditional" and default["diagnostics"]["uninformative_samples"] > 0
    order = [m["model"] for m in default["models"]]
    assert kendalltau([means[m] for m in order], range(len(order), 0, -1)).statistic >= 0.99


def test_llmfao_crowd_comparisons(cli, shared_data: Path) -> None:
    cli(
        "import",
        "pairwise",
        str(shared_data / "llmfao" / "crowd-comparisons.csv"),
        "--source",
        "llmfao",
        "--model-a",
        "left",
        "--model-b",
        "right",
        "--winner",
        "winner",
        "--prompt",
        "prompt",
        "--judge",
        "worker",
        check=True,
    )
    counts = stats(cli)
    assert (counts["comparisons"], counts["models"], counts["samples"]) == (8931, 59, 13)
    board = json.loads(cli("rank", "--json", check=True).stdout)
    pl = json.loads(cli("rank", "--method", "pl", "--json", check=True).stdout)
    assert len(board["models"]) == 59 and board["method"] == "pl-conditional"
    # comparisons alone: the default fits them as pl does
    assert [m["model"] for m in board["models"]] == [m["model"] for m in pl["models"]]
    assert [m["score"] for m in board["models"]] == pytest.approx([m["score"] for m in pl["models"]], abs=1e-6)
    assert board["models"][0]["score"] > board["models"][-1]["score"] + 1


def test_bad_matrix_cell_names_row_and_column(cli, tmp_path: Path) -> None:
    bad = tmp_path / "m.csv"
    bad.write_text("id,alpha,beta\nq1,1,0\nq2,1,oops\n")
    done = cli("import", "matrix", str(bad), "--source", "m")
    assert done.returncode == 2 and f"{bad}:3" in done.stderr and "'q2'" in done.stderr and "'beta'" in done.stderr
    assert not (tmp_path / "pool").exists() or stats(cli)["measurements"] == 0
    bad.write_text("id,alpha,beta,alpha\nq1,1,0,1\n")  # pandas would read the second alpha as alpha.1
    done = cli("import", "matrix", str(bad), "--source", "m")
    assert done.returncode == 2 and f"{bad}:1: column 'alpha' appears twice" in done.stderr
    assert not (tmp_path / "pool").exists() or stats(cli)["measurements"] == 0


def test_a_matrix_of_a_lower_is_better_metric(cli, tmp_path: Path) -> None:
    """Perplexity is lower-is-better unless the import says otherwise."""
    path = tmp_path / "ppl.csv"
    path.write_text("id,sharp,vague\nq1,3.5,9\nq2,2,8\n")
    cli("import", "matrix", str(path), "--source", "by-name", "--metric", "perplexity", check=True)
    cli("import", "matrix", str(path), "--source", "said", "--metric", "perplexity", "--higher-is-better", check=True)
    for source, best in (("by-name", "sharp"), ("said", "vague")):
        for method in ("mean", "pl"):
            board = json.loads(cli("rank", "--source", source, "--method", method, "--json", check=True).stdout)
            assert board["models"][0]["model"] == best, (source, method)
    pool = Pool(tmp_path / "pool")
    scores, _ = ranking_inputs(pool, ["by-name"])  # negated for ranking, and marked so
    assert scores["negated"].all() and sorted(scores["value"]) == [-9.0, -8.0, -3.5, -2.0]
    report = build_report(pool, aggregators.rank(scores, "mean"), scores, title="t", bootstrap=0)
    assert report.source_means["by-name"].to_dict() == {"sharp": 2.75, "vague": 8.5}  # as measured
    assert sorted(value for _, value, _ in report.browser["models"]["sharp"]) == [2.0, 3.5]
    assert report.header["alpha"] == "–"  # mean takes no prior
    compared = cli("compare", "sharp", "vague", "--source", "by-name", "--min-shared", "1", "--json")
    document = json.loads(compared.stdout)  # deltas higher-is-better, flips as measured, largest drop first
    assert document["delta"] == -5.75
    assert [(f["base"], f["candidate"], f["change"]) for f in document["flips"]] == [(2, 8, "worse"), (3.5, 9, "worse")]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.jsonl", '{"id": "q1", "a": 1}\n', "a matrix is a CSV or Parquet file"),
        ("m.csv", "id,a,b\n", "m.csv: no rows"),
    ],
)
def test_a_file_that_is_no_matrix(cli, tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    done = cli("import", "matrix", str(tmp_path / name), "--source", "m")
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_column_names_are_stripped(cli, tmp_path: Path) -> None:
    """A matrix's model names and a local file's fields, written with spaces after the commas (was: model
    ' beta', and no field 'question')."""
    (tmp_path / "m.csv").write_text("id, alpha, beta\nq1,1,0\n")
    cli("import", "matrix", str(tmp_path / "m.csv"), "--source", "m", check=True)
    assert sorted(Pool(tmp_path / "pool").measurements()["model"]) == ["alpha", "beta"]
    (tmp_path / "d.csv").write_text('question, choices, answer\nq,"[""x"", ""y""]",1\n')
    assert load_local(tmp_path / "d.csv", "d")[["prompt", "target"]].values.tolist() == [["Question: q\nAnswer:", "1"]]


def test_a_matrix_row_without_an_id_names_its_line(cli, tmp_path: Path) -> None:
    csv_file, parquet_file = tmp_path / "m.csv", tmp_path / "m.parquet"
    csv_file.write_text("id,alpha,beta\nq1,1,0\n,1,1\n")
    pd.DataFrame({"id": ["q1", None], "alpha": [1.0, 1.0]}).to_parquet(parquet_file)
    for path, line in ((csv_file, 3), (parquet_file, 2)):
        done = cli("import", "matrix", str(path), "--source", "m")
        assert done.returncode == 2 and f"{path}:{line}: no sample id" in done.stderr, done.stderr
    assert not (tmp_path / "pool").exists() or stats(cli)["samples"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,a,b\nq1,1,0,5\n", "m.csv:2: 4 fields where the header has 3"),  # pandas: q1 an index, data shifted
        ("id,a,b\nq1,1,0\nq2,1\n", "m.csv:3: 2 fields where the header has 3"),  # pandas: b missing
        ("id,a,\nq1,1,0\n", "m.csv:1: column 3 has no name"),  # pandas: a model 'Unnamed: 2'
        ("id,a,a\nq1,1,0\n", "m.csv:1: column 'a' appears twice"),  # pandas: a and a.1
        ("id,a, a \nq1,1,0\n", "m.csv:1: column 'a' appears twice"),  # was: models 'a' and ' a '
        ('id,a,b\nq1,1,0\n\n"q\n2",1,x\n', "m.csv:4: cell of sample 'q\\n2', model 'b' is not a number: 'x'"),
        ("id,a,b\nq1,1,0\nq2,inf,1\n", "m.csv:3: cell of sample 'q2', model 'a' is not a number: 'inf'"),
        (
            "id,a,b\nq1,1,0\nq2,1,85\n",
            "m.csv:3: cell of sample 'q2', model 'b' is 85, outside [0, 1], the range of acc",
        ),
        ("id,a,b\nq1,1,0\nq\xe9,1,0\n", "m.csv:3: not UTF-8 (invalid continuation byte at byte 2)"),
    ],
)
def test_a_malformed_csv_names_its_line(tmp_path: Path, text: str, message: str) -> None:
    """The matrix importer and the row reader of `add csv` and `import pairwise` refuse rows that do not match
    the header and name a row's first line, past blank lines and quoted line breaks."""
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(PoolError) as refused:
        import_matrix(path, "m")
    assert str(refused.value).startswith(f"{path}:") and message in str(refused.value)
    if "not a number" not in message and "outside" not in message:  # a row of text is no error there
        with pytest.raises(PoolError, match=re.escape(message.split(" (")[0])):
            read_rows(path)


def test_rows_read_from_a_csv_carry_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text('id,prompt\nq1,"two\nlines"\n\n\nq2,p\r\n,\n')
    rows = read_rows(path)
    assert rows["_line"].tolist() == [2, 6, 7] and rows["prompt"].tolist() == ["two\nlines", "p", ""]


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"model_b": "y", "winner": "b", "prompt": "p"}, ":2: empty model name (model_a='', model_b='y'"),
        ({"model_a": "x", "model_b": "y", "winner": "x wins", "prompt": "p"}, ":2: unknown winner"),
        ({"model_a": "x", "model_b": "x", "winner": "tie", "prompt": "p"}, ":2: a model compared with itself"),
        ({"model_a": "x", "model_b": "y", "winner": "a"}, ":2: empty prompt"),
    ],
)
def test_bad_pairwise_rows_name_their_line(cli, tmp_path: Path, second: dict, message: str) -> None:
    """A field missing from one JSONL record (pandas gives NaN there) is an empty one, not the text 'nan'."""
    path = tmp_path / "prefs.jsonl"
    first = {"model_a": "x", "model_b": "y", "winner": "a", "prompt": "p"}
    path.write_text(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    done = cli("import", "pairwise", str(path), "--source", "prefs", "--prompt", "prompt")
    assert done.returncode == 2 and f"{path}{message}" in done.stderr, done.stderr
    assert not (tmp_path / "pool").exists() or stats(cli)["comparisons"] == 0


def test_pairwise_prompt_and_judge_columns_are_read_by_name(tmp_path: Path) -> None:
    """A file's `prompt` and `judge` columns are used without options (was: every row its own sample, no
    judge); rows of files without prompts are samples of their own file (was: line 2 of two files, one
    sample)."""
    named = tmp_path / "named.csv"
    named.write_text("model_a,model_b,winner,prompt,judge\nx,y,a,p1,j1\ny,z,b,p1,j2\nx,z,tie,p2,j1\n")
    imported = import_pairwise(named, "s")
    assert imported["samples"]["prompt"].tolist() == ["p1", "p2"]
    assert imported["comparisons"]["judge"].tolist() == ["j1", "j2", "j1"]
    one, two = (tmp_path / "one.csv", tmp_path / "two.csv")
    for path in (one, two):
        path.write_text("model_a,model_b,winner\nx,y,a\n")
    ids = [import_pairwise(path, "s")["samples"]["sample_id"].item() for path in (one, two, one)]
    assert ids[0] != ids[1] and ids[0] == ids[2]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("e.csv", ""),
        ("e.csv", "model_a,model_b,winner,question,choices,answer\n\n"),
        ("samples_arc_easy_2024-01-01T00-00-00.jsonl", "\n\n"),  # a name lm-eval gives its samples
        ("e.parquet", pd.DataFrame({"model_a": pd.Series([], dtype=str)})),
    ],
)
def test_a_file_with_no_rows_is_an_error_for_every_reader(tmp_path: Path, name: str, content: object) -> None:
    """`add`, `import pairwise`, `import matrix` and `import lm-eval-samples` (was: pairwise imported nothing,
    "already in the pool", and an empty CSV was "unreadable")."""
    path = tmp_path / name
    if isinstance(content, pd.DataFrame):
        content.to_parquet(path)
    else:
        path.write_text(str(content))
    readers = [lambda: load_local(path, "s"), lambda: import_pairwise(path, "s")]
    if path.suffix == ".jsonl":
        readers.append(lambda: import_lm_eval_samples(path, "m"))
    else:
        readers.append(lambda: import_matrix(path, "s"))
    for read in readers:
        with pytest.raises(PoolError, match=r": no rows$"):
            read()


def test_an_answer_that_names_no_choice_by_letter_or_number_is_a_choice_text(cli, tmp_path: Path) -> None:
    """'x' as a letter and '2000' or '5' as an index are out of range: they are the choices' texts (they were
    refused as out of range)."""
    rows = [
        {"id": "letter", "question": "q", "choices": ["w", "x"], "answer": "x"},
        {"id": "year", "question": "q", "choices": ["1990", "2000"], "answer": "2000"},
        {"id": "count", "question": "q", "choices": ["3", "4", "5"], "answer": "5"},
        {"id": "index", "question": "q2", "choices": ["3", "4", "5"], "answer": 2},
    ]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cli("add", "jsonl", str(path), "--source", "mine", check=True)
    samples = Pool(tmp_path / "pool").samples().set_index("source_id")
    right = {key: row.choices[json.loads(row.target)] for key, row in samples.iterrows()}
    assert right == {"letter": "x", "year": "2000", "count": "5", "index": "5"}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ['{"id": "a", "question": "q", "choices": ["x", "y"], "answer": 0}', '{"id": "b", "question": '],
            ":2: malformed JSON",
        ),
        (['{"id": "a", "choices": ["x", "y"], "answer": 0}'], "missing required field 'question'"),
        ([], "data.jsonl: no rows"),
        (['{"id": "a", "question": "q", "choices": ["x", "y"], "answer": 2}'], "out of range"),
        (
            [
                '{"id": "a", "question": "q", "choices": ["x", "y"], "answer": 0}',
                '{"id": "a", "question": "other", "choices": ["x", "y"], "answer": 1}',
            ],
            "data.jsonl:2: id 'a' was used at line 1 for other content",
        ),
        (
            ['{"id": "a", "question": "q", "choices": ["x", "y"], "answer": "C"}'],
            "answer 'C' is no choice's text, and as a letter or an index it is out of range for 2 choices",
        ),
        (
            ['{"id": "a", "question": "q", "choices": ["x", "x", "y"], "answer": "x"}'],
            "answer 'x' is the text of several choices (0, 1); give its index",
        ),
    ],
)
def test_bad_local_rows_ingest_nothing(cli, tmp_path: Path, lines: list[str], message: str) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cli("pool", "init", check=True)
    done = cli("add", "jsonl", str(path), "--source", "mine")
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert stats(cli)["samples"] == 0


@pytest.mark.parametrize(
    ("name", "data", "kind", "message"),
    [
        (
            "d.jsonl",
            b'{"question": "q", "choices": ["x", "y"], "answer": 1.5}',
            "multiple_choice",
            ":1: answer must be an index, a letter or the text of a choice, got 1.5",
        ),  # was read as 1
        (
            "d.csv",
            b'question,choices,answer\nq,"[""x"", ""y""]",inf',
            "multiple_choice",
            ":2: answer must be an index, a letter or the text of a choice, got 'inf'",
        ),  # was an OverflowError
        (
            "d.csv",
            b'question,choices,answer\nq,"[""3"", ""0"", ""9""]",0',
            "multiple_choice",
            ":2: answer '0' is ambiguous: choice 0, or the choice whose text it is (choice 1)",
        ),
        (
            "d.jsonl",
            b'{"question": "q", "choices": {"text": ["x", "y"], "label": ["A", "B"]}, "answer": "maybe"}',
            "multiple_choice",
            ":1: answer must be one of the labels A, B, an index, a letter or the text of a choice, got 'maybe'",
        ),
        (
            "d.jsonl",
            b'{"question": "q", "choices": {"text": ["x", "y"], "label": ["A"]}, "answer": "A"}',
            "multiple_choice",
            ":1: choices' labels must be a list of one label per text, got ['A']",
        ),
        (
            "d.jsonl",
            b'{"prompt": "p", "answer": []}',
            "generation",
            ":1: answer must be a reference or a list of non-empty references, got []",
        ),
        ("d.jsonl", b'{"prompt": "p", "answer": ["x", ""]}', "generation", ":1: answer must be a reference or a list"),
        (
            "d.jsonl",
            b'{"prompt": "p", "answer": "x"}\n{"prompt": "caf\xe9", "answer": "x"}',
            "generation",
            ":2: not UTF-8 (invalid continuation byte at byte 16)",
        ),
        ("d.csv", b'prompt,answer\n"p\n\xe9",x', "generation", ":3: not UTF-8 (invalid continuation byte at byte 1)"),
        # one JSON array of rows: a row's line is where its object starts
        ("d.json", b'[\n  {"prompt": "p", "answer": "x"},\n  {"prompt": "q",\n   "answer": []}\n]', "generation",
         ":3: answer must be a reference or a list of non-empty references, got []"),
        ("d.json", b'[\n  {"prompt": "p", "answer": "x"},\n  {"prompt": }\n]', "generation", ":3: malformed JSON"),
        ("d.json", b'[\n  {"prompt": "p", "answer": "x"}\n  {"prompt": "q"}\n]', "generation",
         ":3: malformed JSON (expected ',' or ']')"),
        ("d.json", b'[\n  {"prompt": "p", "answer": "x"},\n  "q"\n]', "generation", ":3: expected a JSON object, got str"),
        ("d.json", b'[\n  {"prompt": "p", "answer": "x"},\n', "generation", ":3: malformed JSON (the array is not closed)"),
        ("d.json", b'[{"prompt": "p", "answer": "x"}] []', "generation", ":1: malformed JSON (more after the array)"),
    ],
)  # fmt: skip
def test_bad_local_values_name_their_line(tmp_path: Path, name: str, data: bytes, kind: str, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(data + b"\n")
    with pytest.raises(PoolError) as refused:
        load_local(path, "mine", kind)
    assert str(refused.value).startswith(f"{path}{message}"), refused.value


@pytest.mark.parametrize(
    ("name", "data"), [("d.jsonl", b'{"prompt": "p", "answer": "x"}'), ("d.csv", b"prompt,answer\np,x")]
)
def test_a_byte_order_mark_is_no_part_of_the_data(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + data + b"\n")
    samples = load_local(path, "mine", "generation")
    assert samples["prompt"].tolist() == ["p"] and list(map(json.loads, samples["target"])) == [["x"]]


def test_a_bad_template_is_named(cli, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"question": "q", "choices": ["x", "y"], "answer": 0}\n')
    for template, message in (
        ("Q: {{ nope }}", f"{path}:1: template error ('nope' is undefined)"),
        ("Q: {{ question ", "--template: unexpected end of template"),
        ("Q: {{ question | nofilter }}", "--template: No filter named 'nofilter'"),
    ):
        done = cli("add", "jsonl", str(path), "--source", "mine", "--template", template)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_names_the_pool_keeps_are_stripped_and_never_empty(cli, tmp_path: Path) -> None:
    """`--source` and `import lm-eval-samples --model` as the names read from files (was: source ' s ', and an
    empty source named a samples row)."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "q", "choices": ["x", "y"], "answer": 0}) + "\n")
    refused = cli("add", "jsonl", str(data), "--source", " ")
    assert refused.returncode == 2 and "Invalid value for '--source': empty" in refused.stderr
    cli("add", "jsonl", str(data), "--source", " s ", check=True)
    assert Pool(tmp_path / "pool").samples()["source"].tolist() == ["s"]
    logged = tmp_path / "samples_t_2026-01-01T00-00-00.jsonl"
    logged.write_text("{}\n")
    refused = cli("import", "lm-eval-samples", str(logged), "--model", "")
    assert refused.returncode == 2 and "Invalid value for '--model': empty" in refused.stderr


def test_local_files_with_mapping_template_and_metadata(cli, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text('qid,q,opts,gold,subject\n1,2+2?,"[""3"", ""4""]",B,math\n2,Sky?,"[""blue"", ""red""]",A,sci\n')
    cli(
        "add",
        "csv",
        str(path),
        "--source",
        "quiz",
        "--id-field",
        "qid",
        "--question-field",
        "q",
        "--choices-field",
        "opts",
        "--answer-field",
        "gold",
        "--template",
        "Q: {{ q }}\nA:",
        check=True,
    )
    samples = Pool(tmp_path / "pool").samples().sort_values("source_id")
    assert samples["prompt"].tolist() == ["Q: 2+2?\nA:", "Q: Sky?\nA:"]
    assert samples["target"].tolist() == ["1", "0"]
    assert json.loads(samples["metadata"].iloc[0]) == {"subject": "math"}
    gen = tmp_path / "gen.jsonl"
    gen.write_text('{"prompt": "Capital of France?", "answer": ["Paris", "paris"]}\n')
    cli("add", "jsonl", str(gen), "--source", "g", "--kind", "generation", check=True)
    assert Pool(tmp_path / "pool").samples(sources=["g"]).iloc[0]["target"] == '["Paris", "paris"]'


def test_two_imports_at_once_both_land(tmp_path: Path, shared_data: Path) -> None:
    pool_dir = tmp_path / "pool"
    base = [sys.executable, "-m", "harness.cli", "--pool", str(pool_dir)]
    subprocess.run([*base, "pool", "init"], check=True)
    procs = [
        subprocess.Popen(
            [
                *base,
                "import",
                "matrix",
                str(shared_data / "chembench_binary" / "binary_matrix.csv"),
                "--source",
                "chembench",
            ]
        ),
        subprocess.Popen(
            [
                *base,
                "import",
                "pairwise",
                str(shared_data / "llmfao" / "crowd-comparisons.csv"),
                "--source",
                "llmfao",
                "--model-a",
                "left",
                "--model-b",
                "right",
                "--prompt",
                "prompt",
                "--judge",
                "worker",
            ]
        ),
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    counts = Pool(pool_dir).stats()
    assert counts["measurements"] == 62788 and counts["comparisons"] == 8931


def lm_eval_samples_file(tmp_path: Path, output_type: str = "multiple_choice", extra: str | None = None) -> Path:
    """A real samples file: lm-eval's dummy model on a local task (`extra`: its YAML after doc_to_text),
    written by lm-eval's own tracker."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    folder = tmp_path / "tasks"
    folder.mkdir(exist_ok=True)
    data = folder / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": f"q{i}", "choices": ["a", "b", "c"], "answer": i % 3, "gold": "a"}) + "\n"
            for i in range(6)
        )
    )
    extra = extra or (
        "doc_to_choice: choices\ndoc_to_target: answer\nmetric_list: [{metric: acc}, {metric: acc_norm}]"
        if output_type == "multiple_choice"
        else "doc_to_target: gold\ngeneration_kwargs: {until: ['\\n']}\n"
        "metric_list: [{metric: bleu}, {metric: exact_match}]"  # bleu: logged per sample as [reference, output]
    )
    name = f"tiny_{output_type}"
    write_task(folder, name, data, output_type, extra)
    results = lm_eval.simple_evaluate(
        model="dummy",
        tasks=[name],
        log_samples=True,
        task_manager=TaskManager(include_path=str(folder), include_defaults=False),
    )
    tracker = EvaluationTracker(output_path=str(tmp_path / "out"))
    tracker.general_config_tracker.model_name_sanitized = "dummy"
    tracker.date_id = "2026-11-26T12-00-00.000000"  # set by save_results_aggregated in a full run
    tracker.save_results_samples(task_name=name, samples=results["samples"][name])
    return next((tmp_path / "out").rglob(f"samples_{name}_*.jsonl"))


@pytest.mark.parametrize("output_type", ["multiple_choice", "generate_until"])
def test_lm_eval_samples_file_as_lm_eval_writes_it(cli, tmp_path: Path, output_type: str) -> None:
    path = lm_eval_samples_file(tmp_path, output_type)
    original = [json.loads(line) for line in path.read_text().splitlines()]
    done = cli("import", "lm-eval-samples", str(path), "--model", "dummy", check=True)
    pool = Pool(tmp_path / "pool")
    samples = pool.samples()
    assert len(samples) == 6 and set(samples["source"]) == {f"tiny_{output_type}"}
    metrics = [metric for metric in original[0]["metrics"] if metric != "bleu"]  # a corpus-level metric: left out
    assert set(samples["metric"]) == {metrics[0]}
    assert ("left out bleu" in done.stderr) == (output_type == "generate_until")
    measured = pool.measurements()
    assert len(measured) == 6 * len(metrics) and set(measured["metric"]) == set(metrics)
    by_doc = {json.loads(m)["doc_id"]: sid for sid, m in zip(samples.sample_id, samples.metadata, strict=True)}
    for record in original:
        for metric in metrics:
            value = measured[(measured.sample_id == by_doc[record["doc_id"]]) & (measured.metric == metric)].value
            assert value.item() == float(record[metric])
    response = json.loads(pool.read("responses").iloc[0]["response"])
    assert ("loglikelihoods" in response) == (output_type == "multiple_choice")
    assert "nothing new" in cli("import", "lm-eval-samples", str(path), "--model", "dummy", check=True).stderr


def test_lm_eval_samples_of_a_loglikelihood_task_are_continuations(cli, tmp_path: Path) -> None:
    """A loglikelihood task's log (LAMBADA's kind; it lists perplexity first): continuation samples ranked on acc,
    the per-sample "perplexity" (lm-eval's log-likelihood, which it aggregates) stored as `loglikelihood`, as a run
    measures it (it was a multiple-choice sample of one choice, ranked on "perplexity" as lower-is-better: the
    likeliest model last); `add lm-eval` of the task gives the same samples."""
    extra = "doc_to_target: gold\nmetric_list: [{metric: perplexity}, {metric: acc}]"
    path = lm_eval_samples_file(tmp_path, "loglikelihood", extra)
    original = {record["doc_id"]: record for record in map(json.loads, path.read_text().splitlines())}
    cli("import", "lm-eval-samples", str(path), "--model", "dummy", check=True)
    pool = Pool(tmp_path / "pool")
    samples = pool.samples()
    assert set(samples["kind"]) == {"continuation"} and set(samples["metric"]) == {"acc"}
    assert samples["higher_is_better"].all() and {json.loads(t)[0] for t in samples["target"]} == {"a"}
    doc_of = {sid: json.loads(meta)["doc_id"] for sid, meta in zip(samples.sample_id, samples.metadata, strict=True)}
    measured = pool.measurements()
    assert set(measured["metric"]) == {"acc", "loglikelihood"}
    for row in measured.itertuples():
        logged = original[doc_of[row.sample_id]]
        assert row.value == float(logged["perplexity" if row.metric == "loglikelihood" else "acc"])
    for row in pool.read("responses").itertuples():
        loglikelihood, greedy = original[doc_of[row.sample_id]]["filtered_resps"][0]
        assert json.loads(row.response) == {"loglikelihoods": [float(loglikelihood)], "is_greedy": [greedy == "True"]}
    cli("add", "lm-eval", "tiny_loglikelihood", "--include-path", str(tmp_path / "tasks"), check=True)
    assert pool.stats()["samples"] == 6


def test_lm_eval_samples_of_a_loglikelihood_rolling_task_rank_documents_by_loglikelihood(cli, tmp_path: Path) -> None:
    """wikitext's kind: lm-eval logs per document (log-likelihood, words) pairs for its corpus-level perplexities;
    the documents become document samples measured by that log-likelihood (was: refused, "no metric with a
    number per sample"), higher better, the same samples `add lm-eval` makes, and two models' logs rank on
    them."""
    extra = "doc_to_target: question\nmetric_list: [{metric: word_perplexity}, {metric: byte_perplexity}]"
    path = lm_eval_samples_file(tmp_path, "loglikelihood_rolling", extra)  # documents q0 ... q5
    logged = [json.loads(line) for line in path.read_text().splitlines()]
    done = cli("import", "lm-eval-samples", str(path), "--model", "dummy", check=True)
    assert "left out word_perplexity, byte_perplexity: no number per sample" in done.stderr
    pool = Pool(tmp_path / "pool")
    samples = pool.samples()
    assert set(samples["kind"]) == {"document"} and set(samples["metric"]) == {"loglikelihood"}
    assert samples["higher_is_better"].all() and sorted(samples["prompt"]) == [f"q{i}" for i in range(6)]
    measured = pool.measurements()
    assert set(measured["metric"]) == {"loglikelihood"}
    assert sorted(measured["value"]) == sorted(float(r["word_perplexity"][0]) for r in logged)
    responses = [json.loads(r)["loglikelihood"] for r in pool.read("responses")["response"]]
    assert sorted(responses) == sorted(measured["value"])
    cli("add", "lm-eval", "tiny_loglikelihood_rolling", "--include-path", str(tmp_path / "tasks"), check=True)
    assert pool.stats()["samples"] == 6
    better = path.with_name(path.name.replace("2026", "2027"))
    better.write_text(
        "".join(json.dumps({**r, "filtered_resps": [str(float(r["filtered_resps"][0]) / 2)]}) + "\n" for r in logged)
    )
    cli("import", "lm-eval-samples", str(better), "--model", "better", check=True)
    board = json.loads(cli("rank", "--json", check=True).stdout)
    assert [row["model"] for row in board["models"]] == ["better", "dummy"]


def test_generations_imported_from_lm_eval_logs_get_their_scoring_from_add_lm_eval(cli, tmp_path: Path) -> None:
    """A run (or `import outputs`) on generation samples imported from lm-eval's logs scores them the plain way
    (the logs do not say how the task extracts and compares answers), while the logged model was scored by
    lm-eval: it says so, and names the `add lm-eval` that gives the same samples their task's recipe (it
    scored them silently, a gsm8k-style reference then 0 for every run)."""
    path = lm_eval_samples_file(tmp_path, "generate_until")
    cli("import", "lm-eval-samples", str(path), "--model", "dummy", check=True)
    pool = Pool(tmp_path / "pool")
    spec = RunSpec(model="m", backend="hf")
    assert pending(pool, spec).notes == (
        "the lm-eval task(s) tiny_generate_until came from lm-eval's logs (import lm-eval-samples): their "
        "generations are scored the plain way, not with the task's filter and options as lm-eval scored the logged "
        "models; `poolbench add lm-eval tiny_generate_until` first (the same samples)",
    )
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"sample_id": pool.samples()["sample_id"].iloc[0], "output": "a"}) + "\n")
    imported = cli("import", "outputs", str(outputs), "--model", "m", check=True)
    assert "note: the lm-eval task(s) tiny_generate_until came from lm-eval's logs" in imported.stderr
    cli("add", "lm-eval", "tiny_generate_until", "--include-path", str(tmp_path / "tasks"), check=True)
    assert pending(pool, spec).notes == () and pool.stats()["samples"] == 6  # the same samples, now with a recipe
    assert len(pool.measurements(models="dummy")) == 6


def test_lm_eval_samples_files_of_lm_eval_0_4_2(tmp_path: Path) -> None:
    """lm-eval 0.4.2 named samples files `.json` and for a while wrote one (indented) JSON array: both import as
    the `.jsonl` does (they were refused by name); a bad record in the array names the line it starts on."""
    path = lm_eval_samples_file(tmp_path)
    expected = import_lm_eval_samples(path, "dummy")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    as_json = path.with_suffix(".json")
    for text in (path.read_text(), json.dumps(records, indent=2)):
        as_json.write_text(text)
        tables = import_lm_eval_samples(as_json, "dummy")
        pd.testing.assert_frame_equal(tables["samples"], expected["samples"])
        measured = tables["measurements"].drop(columns="run_id")  # lm-eval:<the file's name>
        pd.testing.assert_frame_equal(measured, expected["measurements"].drop(columns="run_id"))
    records[1].pop("metrics")
    as_json.write_text(json.dumps(records, indent=2))
    line = json.dumps(records, indent=2).splitlines().index("  {", 2) + 1  # the second object's first line
    with pytest.raises(PoolError, match=f"^{re.escape(str(as_json))}:{line}: not an lm-eval sample record"):
        import_lm_eval_samples(as_json, "dummy")


def test_lm_eval_samples_of_several_filters_keep_the_first(cli, tmp_path: Path) -> None:
    """lm-eval logs each document once per filter (gsm8k: strict-match, flexible-extract): the first filter's
    records are imported and the others named (a document's value was whichever record came last); the
    response is the generation and the filtered answer (it was the answer alone)."""
    extra = (
        "doc_to_target: 'lo'\ngeneration_kwargs: {until: ['\\n']}\nmetric_list: [{metric: exact_match}]\n"
        "filter_list: [{name: finds, filter: [{function: regex, regex_pattern: '(lo)l'}, {function: take_first}]},"
        " {name: misses, filter: [{function: regex, regex_pattern: '(zzz)'}, {function: take_first}]}]"
    )
    path = lm_eval_samples_file(tmp_path, "generate_until", extra)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["filter"] for r in records] == ["finds"] * 6 + ["misses"] * 6  # the dummy model answers "lol"
    assert {r["exact_match"] for r in records if r["filter"] == "finds"} == {1.0}
    done = cli("import", "lm-eval-samples", str(path), "--model", "dummy", check=True)
    assert "left out the records of filter misses: scored with the first, finds" in done.stderr
    pool = Pool(tmp_path / "pool")
    measured = pool.measurements()
    assert len(measured) == 6 and set(measured["value"]) == {1.0}
    # the response keeps the generation and what was scored of it; the report's browser shows both
    assert {r for r in pool.read("responses")["response"]} == {json.dumps({"extracted": "lo", "text": "lol"})}
    scores, _ = ranking_inputs(pool, None)
    report = build_report(pool, aggregators.rank(scores, "mean"), scores, title="t", bootstrap=0)
    assert {text for _, _, text in report.browser["models"]["dummy"]} == {"lol\nanswer: lo"}


def test_lm_eval_tasks_metric_is_the_first_a_run_measures(cli, tmp_path: Path) -> None:
    """bleu first (no per-sample value): the sample's metric is the task's next one, and `rank` ranks on it; a
    pool whose measurements are all of other metrics than its samples' says which to choose."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"question": f"q{i}", "gold": "a"}) + "\n" for i in range(4)))
    extra = "doc_to_target: gold\ngeneration_kwargs: {until: ['\\n']}\nmetric_list: [{metric: bleu}, {metric: f1}]"
    write_task(tmp_path, "gen", data, "generate_until", extra)
    cli("add", "lm-eval", "gen", "--include-path", str(tmp_path), check=True)
    pool = Pool(tmp_path / "pool")
    assert set(pool.samples()["metric"]) == {"f1"}
    ids = pool.samples()["sample_id"].tolist()
    pool.add("measurements", pd.DataFrame({"sample_id": ids, "model": "m", "metric": "contains", "value": 1.0}))
    done = cli("rank")
    assert done.returncode == 2 and "(their measurements are of contains: choose one with --metric)" in done.stderr


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("answer", "lm-eval task 'odd', doc 1: target 'green' is not one of its 2 choices ['blue', 'red']"),
        ("golds", "lm-eval task 'odd', doc 0: several gold answers [1] (one per sample is supported)"),
        ("text", None),  # a target given as a choice's text is that choice, as lm-eval reads it
    ],
)
def test_lm_eval_task_targets(cli, tmp_path: Path, target: str, message: str | None) -> None:
    """A gold that is no choice (lm-eval scores it wrong for every model) or several golds are refused, naming
    the task and document (they were "'green' is not in list" and a TypeError); nothing lands."""
    data = tmp_path / "d.jsonl"
    rows = [("2+2?", ["3", "4"], "4", [1]), ("Sky?", ["blue", "red"], "green" if target == "answer" else "blue", [0])]
    data.write_text(
        "".join(
            json.dumps({"question": q, "choices": c, "answer": a, "text": a, "golds": g}) + "\n" for q, c, a, g in rows
        )
    )
    extra = f"doc_to_choice: choices\ndoc_to_target: {target}\nmetric_list: [{{metric: acc}}]"
    write_task(tmp_path, "odd", data, "multiple_choice", extra)
    done = cli("add", "lm-eval", "odd", "--include-path", str(tmp_path))
    if message:
        assert done.returncode == 2 and done.stderr.strip().endswith(f"poolbench: error: {message}"), done.stderr
        assert not (tmp_path / "pool").exists() or not Pool(tmp_path / "pool").stats()["samples"]
    else:
        assert done.returncode == 0, done.stderr
        samples = Pool(tmp_path / "pool").samples().sort_values("source_id")
        assert samples["target"].tolist() == ["1", "0"]


def test_local_document_samples_are_their_text_scored_by_its_loglikelihood(cli, tmp_path: Path) -> None:
    """`--kind document` (a corpus to rank models' perplexities on): each row's text alone is the prompt, no answer
    needed; a run measures its log-likelihood in rolling windows, for a text in one window the log-likelihood
    of the whole text after the prefix token (lm-eval's loglikelihood with an empty context)."""
    data = tmp_path / "corpus.jsonl"
    texts = ["The quick brown fox jumps over the lazy dog.", "Colorless green ideas sleep furiously."]
    data.write_text("".join(json.dumps({"text": text, "year": 1957}) + "\n" for text in texts))
    cli("add", "jsonl", str(data), "--source", "corpus", "--kind", "document", "--question-field", "text", check=True)
    samples = Pool(tmp_path / "pool").samples().sort_values("prompt")
    assert samples["prompt"].tolist() == texts[::-1] and set(samples["kind"]) == {"document"}
    assert samples["target"].map(json.loads).isna().all() and set(samples["metric"]) == {"loglikelihood"}
    assert [json.loads(m) for m in samples["metadata"]] == [{"year": 1957}] * 2
    smollm2 = ("--model", "hf", "--model-args", "pretrained=builtin:smollm2-135m", "--no-progress")
    cli("run", *smollm2, "--name", "smol", check=True)
    measured = Pool(tmp_path / "pool").measurements(models=["smol"]).merge(samples, on="sample_id")
    backend = make_backend("hf", {"pretrained": "builtin:smollm2-135m"}, device="cpu")
    whole = [ll for ll, _ in backend.loglikelihood([("", text) for text in measured["prompt"]])]
    assert measured["value"].tolist() == pytest.approx(whole, rel=5e-5)
    # a chat template and few-shot examples leave a document alone, as in lm-eval
    cli("run", *smollm2, "--name", "chat", "--apply-chat-template", "--num-fewshot", "1", check=True)
    chat = Pool(tmp_path / "pool").measurements(models=["chat"]).set_index("sample_id")["value"]
    assert chat[measured["sample_id"]].tolist() == measured["value"].tolist()
    data.write_text(json.dumps({"text": texts[0]}) + "\n" + json.dumps({"text": None}) + "\n")
    done = cli("add", "jsonl", str(data), "--source", "corpus2", "--kind", "document", "--question-field", "text")
    assert done.returncode == 2 and f"{data}:2: missing required field 'text'" in done.stderr


def test_local_continuation_samples_keep_their_answer_as_it_is(cli, tmp_path: Path) -> None:
    """`--kind continuation` (a cloze file, LAMBADA's layout): the answer is the target as it is, its leading space
    included, which a run appends to the prompt (as lm-eval's loglikelihood requests: tests/harness/test_real_model.py);
    several answers are refused."""
    data = tmp_path / "cloze.jsonl"
    rows = [{"prompt": "The sky is", "answer": " blue"}, {"prompt": "Grass is", "answer": " green"}]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cli("add", "jsonl", str(data), "--source", "cloze", "--kind", "continuation", check=True)
    samples = Pool(tmp_path / "pool").samples().sort_values("prompt")
    assert set(samples["kind"]) == {"continuation"} and set(samples["metric"]) == {"acc"}
    assert [json.loads(t) for t in samples["target"]] == [[" green"], [" blue"]]
    assert samples["prompt"].tolist() == ["Grass is", "The sky is"]
    data.write_text(json.dumps({"prompt": "The sky is", "answer": ["blue", "azure"]}) + "\n")
    done = cli("add", "jsonl", str(data), "--source", "cloze2", "--kind", "continuation")
    assert done.returncode == 2 and f"{data}:1: answer must be the text that continues the prompt" in done.stderr


def test_an_lm_eval_group_with_a_loglikelihood_rolling_task(cli, tmp_path: Path) -> None:
    """A group with a loglikelihood_rolling task (wikitext's output type: a perplexity over whole documents) adds
    both its tasks (it was refused: "only multiple_choice, generate_until, loglikelihood"); the document's
    prompt is the task's target, what lm-eval scores; a baseline's run leaves it out and says so."""
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"question": "Sky?", "choices": ["blue", "red"], "answer": 0, "gold": "Blue sky."}) + "\n"
    )
    for name, output_type, extra in (
        ("pick", "multiple_choice", "doc_to_choice: choices\ndoc_to_target: answer\nmetric_list: [{metric: acc}]"),
        ("ppl", "loglikelihood_rolling", "doc_to_target: gold\nmetric_list: [{metric: word_perplexity}]"),
    ):
        write_task(tmp_path, name, data, output_type, extra)
    (tmp_path / "both.yaml").write_text("group: both\ntask: [pick, ppl]\n")
    cli("add", "lm-eval", "both", "--include-path", str(tmp_path), check=True)
    samples = Pool(tmp_path / "pool").samples().set_index("source")
    assert samples.loc["ppl", "kind"] == "document" and samples.loc["ppl", "prompt"] == "Blue sky."
    assert samples.loc["ppl", "metric"] == "loglikelihood" and samples.loc["ppl", "higher_is_better"]
    done = cli("run", "--model", "baseline-random", "--name", "random", "--no-progress", check=True)
    assert "note: 1 document samples left out: baseline-random gives no log-probabilities of given text" in done.stderr
    assert "random: 1 samples evaluated" in done.stderr
    refused = cli("run", "--model", "baseline-random", "--name", "random", "--source", "ppl", "--no-progress")
    assert refused.returncode == 2 and (
        "nothing to evaluate: the 1 samples selected are document samples, and baseline-random gives no"
        in refused.stderr
    )


def test_lm_eval_generation_tasks_record_how_lm_eval_scores_them(cli, tmp_path: Path) -> None:
    """A generate_until task's samples carry its stop strings, length, first filter and metric options (the
    run scores with them: tests/harness/test_real_model.py); a target that indexes `doc_to_choice` is that
    choice's text, as lm-eval scores it (it was the index); a task with its own process_results is refused."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"question": "Sky?", "choices": ["blue", "red"], "answer": 0}) + "\n")
    extra = (
        "doc_to_choice: choices\ndoc_to_target: answer\n"
        'generation_kwargs: {until: ["\\n"], max_gen_toks: 20}\n'
        "filter_list: [{name: word, filter: [{function: regex, regex_pattern: '(\\w+)'}, {function: take_first}]}]\n"
        "metric_list: [{metric: exact_match, ignore_case: true}]"
    )
    write_task(tmp_path, "gen", data, "generate_until", extra)
    cli("add", "lm-eval", "gen", "--include-path", str(tmp_path), check=True)
    [sample] = Pool(tmp_path / "pool").samples().to_dict(orient="records")
    metadata = json.loads(sample["metadata"])
    assert json.loads(sample["target"]) == ["blue"] and (metadata["until"], metadata["max_gen_toks"]) == (["\n"], 20)
    assert metadata["lm_eval_scoring"] == {
        "filter": "word",
        "steps": [["regex", {"regex_pattern": "(\\w+)"}], ["take_first", {}]],
        "metric_options": {"exact_match": {"ignore_case": True}},
    }
    pool = Pool(tmp_path / "pool")
    spec = RunSpec(model="m", backend="hf")
    assert pending(pool, spec).notes == ()
    older = {**metadata}
    del older["lm_eval_scoring"]  # as an older poolbench added it
    pool.write({"samples": pd.DataFrame([{**sample, "metadata": json.dumps(older)}])})
    assert pending(pool, spec).notes == (
        "the lm-eval task(s) gen were added by an older poolbench: their generations are scored the plain way, "
        "not with the task's filter and options; add them again first",
    )
    (tmp_path / "own.py").write_text("def score(doc, results):\n    return {'exact_match': 1.0}\n")
    custom = extra.replace("metric_list", "process_results: !function own.score\nmetric_list")
    write_task(tmp_path, "gen", data, "generate_until", custom)
    refused = cli("add", "lm-eval", "gen", "--include-path", str(tmp_path))
    assert refused.returncode == 2 and "lm-eval task 'gen' scores its generations with its own process_results" in (
        refused.stderr
    )


def test_lm_eval_samples_file_name_and_bad_line(cli, tmp_path: Path) -> None:
    wrong = tmp_path / "results.jsonl"
    wrong.write_text("{}\n")
    assert "samples_<task>_<date>.jsonl" in cli("import", "lm-eval-samples", str(wrong), "--model", "m").stderr
    bad = tmp_path / "samples_t_2026-01-01T00-00-00.000000.jsonl"
    bad.write_text('{"doc_id": 0}\n')
    done = cli("import", "lm-eval-samples", str(bad), "--model", "m")
    assert done.returncode == 2 and f"{bad}:1" in done.stderr


def test_lm_eval_samples_records_without_numbers(cli, tmp_path: Path) -> None:
    """Records the import cannot use name their file and line (a record missing a field pandas fills with NaN
    when another record has it); a file of corpus-level metrics only is refused as a whole."""
    path = lm_eval_samples_file(tmp_path, "generate_until")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    without_value = {key: value for key, value in records[1].items() if key != "exact_match"}
    without_metrics = {key: value for key, value in records[1].items() if key != "metrics"}
    cases = {
        ":2: metric 'exact_match' has no value": [records[0], without_value, *records[2:]],
        ":2: not an lm-eval sample record (no list of `metrics`)": [records[0], without_metrics, *records[2:]],
        ": no metric with a number per sample (bleu: lm-eval aggregates these over the corpus)": [
            {**record, "metrics": ["bleu"]} for record in records
        ],
    }
    for error, edited in cases.items():
        path.write_text("".join(json.dumps(record) + "\n" for record in edited))
        done = cli("import", "lm-eval-samples", str(path), "--model", "m")
        assert done.returncode == 2 and f"{path}{error}" in done.stderr, done.stderr
    assert not (tmp_path / "pool").exists() or not Pool(tmp_path / "pool").stats()["samples"]


def test_hf_datasets_offline_from_a_saved_folder_and_local_files(cli, tmp_path: Path) -> None:
    import datasets

    rows = {"id": ["a", "b"], "question": ["2+2?", "Sky?"], "choices": [["3", "4"], ["blue", "red"]], "answer": [1, 0]}
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "saved"))
    cli("add", "hf", str(tmp_path / "saved"), "--source", "saved", check=True)
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(json.dumps(dict(zip(rows, values, strict=True))) + "\n" for values in zip(*rows.values(), strict=True))
    )
    cli("add", "hf", "json", "--data-files", str(data), "--split", "train", "--source", "files", check=True)
    pool = Pool(tmp_path / "pool")
    saved, files = (sorted(pool.samples(sources=[s])["content_id"]) for s in ("saved", "files"))
    assert saved == files and len(saved) == 2  # the same questions, whichever way they came in
    missing = cli("add", "hf", str(tmp_path / "nothing-here"), "--source", "x")
    assert missing.returncode == 2 and "cannot load HF dataset" in missing.stderr
    no_split = cli("add", "hf", str(tmp_path / "saved"), "--split", "train", "--source", "x")
    assert no_split.returncode == 2 and "has no split 'train'; its splits: test" in no_split.stderr


def test_hf_layouts_labelled_choices_text_answers_and_list_fields(cli, tmp_path: Path) -> None:
    """ARC's layout (choices as {"text", "label"}, labels letters or 1-4, `answerKey` a label), an answer given
    as a choice's text (lm-eval's rule for a text target), and list or dict fields kept as metadata (a list
    of two or more items was numpy's "truth value of an array is ambiguous")."""
    import datasets

    rows = {
        "id": ["q1", "q2", "q3"],
        "question": ["Which is a metal?", "2+2?", "Sky colour?"],
        "choices": [
            {"text": ["wood", "iron", "glass"], "label": ["A", "B", "C"]},
            {"text": ["3", "4", "5", "6"], "label": ["1", "2", "3", "4"]},
            {"text": ["blue", "green"], "label": ["A", "B"]},
        ],
        "answerKey": ["B", "2", "A"],
        "tags": [["metal", "easy"], ["math"], []],
        "extra": [{"n": 1}, {"n": 2}, {"n": 3}],
    }
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "arc"))
    cli("add", "hf", str(tmp_path / "arc"), "--source", "arc", "--answer-field", "answerKey", check=True)
    texts = {"question": ["Capital of France?"], "choices": [["Rome", "Paris"]], "answer": ["Paris"]}
    datasets.Dataset.from_dict(texts).save_to_disk(str(tmp_path / "texts"))
    cli("add", "hf", str(tmp_path / "texts"), "--source", "texts", check=True)
    samples = Pool(tmp_path / "pool").samples().set_index("source_id")
    right = {key: row.choices[json.loads(row.target)] for key, row in samples.iterrows()}
    assert right == {"q1": "iron", "q2": "4", "q3": "blue", "": "Paris"}
    assert json.loads(samples.at["q1", "metadata"]) == {"tags": ["metal", "easy"], "extra": {"n": 1}}


def helm_run(
    folder: Path,
    model: str,
    correct: list[float],
    name: str = "mmlu:subject=anatomy,method=multiple_choice_joint,model={model}",
    more_stats: dict[str, list[float]] | None = None,
) -> Path:
    """A HELM run directory in HELM's format, written by hand (HELM is not a dependency): instances scored
    `correct` by exact_match (and by `more_stats`), a generation instance without stats, a perturbed copy."""
    folder.mkdir(parents=True)
    name = name.format(model=model.replace("/", "_"))
    (folder / "run_spec.json").write_text(
        json.dumps(
            {"name": name, "groups": ["mmlu"], "adapter_spec": {"model": model, "method": "multiple_choice_joint"}}
        )
    )
    instances = [
        {
            "id": f"id{i}",
            "split": "test",
            "input": {"text": f"Which bone {i}?"},
            "references": [
                {"output": {"text": t}, "tags": ["correct"] if t == "femur" else []} for t in ("femur", "ulna", "skull")
            ],
        }
        for i in range(len(correct))
    ]
    instances.append(
        {
            "id": "gen",
            "split": "test",
            "input": {"text": "Name a bone."},
            "references": [{"output": {"text": "femur"}, "tags": ["correct"]}],
        }
    )
    # HELM lists an instance's perturbed copies after it, under the same id (data augmentation)
    instances.insert(1, {**instances[0], "input": {"text": "Whcih bone 0?"}, "perturbation": {"name": "typos"}})
    (folder / "instances.json").write_text(json.dumps(instances))
    stats = [
        {
            "instance_id": f"id{i}",
            "train_trial_index": 0,
            "stats": [
                {"name": {"name": stat, "split": "test"}, "count": 1, "sum": values[i], "mean": values[i]}
                for stat, values in {"exact_match": correct, **(more_stats or {})}.items()
            ]
            + [{"name": {"name": "num_prompt_tokens", "split": "test"}, "count": 1, "sum": 31.0}],
        }
        for i in range(len(correct))
    ]
    stats.append(
        {
            "instance_id": "id0",
            "train_trial_index": 0,
            "perturbation": {"name": "typos"},
            "stats": [{"name": {"name": "exact_match"}, "count": 1, "sum": 0.0}],
        }
    )
    (folder / "per_instance_stats.json").write_text(json.dumps(stats))
    predictions = [  # as helm-summarize writes them (asdict of HELM's DisplayPrediction)
        {
            "instance_id": f"id{i}",
            "perturbation": None,
            "train_trial_index": trial,
            "predicted_text": " A" if right else " B",
            "truncated_predicted_text": None,
            "base64_images": [],
            "mapped_output": "femur" if right else "ulna",
            "reference_index": None,
            "stats": {"exact_match": right},
            "annotations": None,
            "thinking_text": None,
        }
        for i, right in enumerate(correct)
        for trial in (0, 1)
    ]
    predictions.append({**predictions[0], "perturbation": {"name": "typos"}, "predicted_text": " C"})
    (folder / "display_predictions.json").write_text(json.dumps(predictions))
    return folder


def test_helm_runs(cli, tmp_path: Path) -> None:
    first = helm_run(tmp_path / "runs" / "a", "openai/gpt2", [1.0, 0.0, 1.0])
    second = helm_run(tmp_path / "runs" / "b", "meta/llama", [1.0, 1.0, 1.0])
    cli("import", "helm", str(first), str(second), check=True)
    pool = Pool(tmp_path / "pool")
    samples = pool.samples()
    assert len(samples) == 4 and set(samples["kind"]) == {"multiple_choice", "generation"}
    assert "Whcih" not in "".join(samples["prompt"])  # was: a sample, with id0's measurements
    mc = samples[samples.kind == "multiple_choice"].iloc[0]
    assert list(mc["choices"]) == ["femur", "ulna", "skull"] and mc["target"] == "0"
    measured = pool.measurements()
    assert len(measured) == 6 and set(measured["metric"]) == {"exact_match"}
    assert measured.groupby("model")["value"].sum().to_dict() == {"meta/llama": 3.0, "openai/gpt2": 2.0}
    broken = tmp_path / "runs" / "c"
    broken.mkdir()
    (broken / "run_spec.json").write_text("{")
    done = cli("import", "helm", str(broken))
    assert done.returncode == 2 and "run_spec.json:1: malformed JSON" in done.stderr
    stats_file = first / "per_instance_stats.json"
    entries = json.loads(stats_file.read_text())
    del entries[1]["stats"][0]["sum"]
    stats_file.write_text(json.dumps(entries))
    done = cli("import", "helm", str(first))
    assert done.returncode == 2 and f"{stats_file}: entry 1 is not a HELM stats entry (KeyError: 'sum')" in done.stderr


@pytest.mark.parametrize(
    ("run_name", "task"),
    [
        ("gsm:model=openai_gpt2", "gsm"),  # HELM Lite's names put the model first
        ("gsm:model=openai_gpt2,stop=none", "gsm:stop=none"),
        (
            "mmlu:subject=anatomy,method=multiple_choice_joint,model=openai_gpt2",
            "mmlu:subject=anatomy,method=multiple_choice_joint",
        ),
        ("ifeval:model=meta_llama-3-8b,model_deployment=together_meta-llama-3-8b", "ifeval"),
        ("narrative_qa", "narrative_qa"),
    ],
)
def test_helm_task_name_leaves_out_the_model(run_name: str, task: str) -> None:
    assert task_name(run_name) == task


def test_helm_runs_named_with_the_model_first_share_their_samples(cli, tmp_path: Path) -> None:
    name = "gsm:model={model},stop=none"
    first = helm_run(tmp_path / "runs" / "a", "openai/gpt2", [1.0, 0.0, 1.0], name)
    second = helm_run(tmp_path / "runs" / "b", "meta/llama", [0.0, 0.0, 1.0], name)
    cli("import", "helm", str(first), str(second), check=True)
    pool = Pool(tmp_path / "pool")
    # was: 8 samples, each run's own (source "gsm:model=openai_gpt2,stop=none"), so no model met another
    assert len(pool.samples()) == 4 and set(pool.samples()["source"]) == {"gsm:stop=none"}
    assert pool.scores().groupby("sample_id")["model"].nunique().tolist() == [2, 2, 2]


def test_helm_responses_are_the_models_predictions(cli, tmp_path: Path) -> None:
    run = helm_run(tmp_path / "runs" / "a", "openai/gpt2", [1.0, 0.0, 1.0])
    predictions = json.loads((run / "display_predictions.json").read_text())
    predictions[2].update(  # a multiple_choice_separate run's text: the prompt and the chosen reference
        predicted_text="Which bone 1? ulna", truncated_predicted_text=" ulna", mapped_output=None, reference_index=1
    )
    (run / "display_predictions.json").write_text(json.dumps(predictions))
    done = cli("import", "helm", str(run), check=True)
    assert "3 responses" in done.stderr and "no responses" not in done.stderr
    pool = Pool(tmp_path / "pool")
    prompts = pool.samples().set_index("sample_id")["prompt"]
    responses = pool.read("responses")
    shown = {prompts[row.sample_id]: json.loads(row.response) for row in responses.itertuples()}
    assert shown == {  # the first train trial's; not the perturbed copy's " C"
        "Which bone 0?": {"text": " A", "extracted": "femur"},
        "Which bone 1?": {"text": " ulna", "extracted": None},
        "Which bone 2?": {"text": " A", "extracted": "femur"},
    }
    run_id = "helm:mmlu:subject=anatomy,method=multiple_choice_joint,model=openai_gpt2"
    assert set(responses["model"]) == {"openai/gpt2"} and set(responses["run_id"]) == {run_id}
    other = helm_run(tmp_path / "runs" / "b", "meta/llama", [1.0, 1.0, 1.0])
    (other / "display_predictions.json").unlink()
    done = cli("import", "helm", str(other), check=True)
    assert f"no responses: no display_predictions.json in {other} (helm-summarize writes it)" in done.stderr
    (other / "display_predictions.json").write_text(json.dumps([{"instance_id": "id0"}]))
    done = cli("import", "helm", str(other))
    assert done.returncode == 2 and "display_predictions.json: entry 0 is not a HELM prediction" in done.stderr


def write_schema(path: Path, main_name: str, lower_is_better: bool = False) -> None:
    """HELM's schema.json as helm-summarize writes it (only the fields the importer reads, and a few more)."""
    path.write_text(
        json.dumps(
            {
                "metrics": [
                    {"name": main_name, "display_name": main_name, "lower_is_better": lower_is_better},
                    {"name": "num_prompt_tokens", "display_name": "# prompt tokens"},
                ],
                "metric_groups": [
                    {"name": "accuracy", "metrics": [{"name": "${main_name}", "split": "${main_split}"}]}
                ],
                "run_groups": [
                    {"name": "core_scenarios", "subgroups": ["mmlu"], "environment": {}},
                    {
                        "name": "mmlu",
                        "metric_groups": ["accuracy"],
                        "environment": {"main_name": main_name, "main_split": "test"},
                    },
                ],
            }
        )
    )


def test_helm_samples_are_ranked_on_the_headline_of_helms_schema(cli, tmp_path: Path) -> None:
    f1 = {"f1_score": [0.5, 0.9, 0.2]}
    run = helm_run(tmp_path / "suite" / "a", "openai/gpt2", [0.0, 1.0, 0.0], more_stats=f1)
    write_schema(tmp_path / "suite" / "schema.json", "f1_score")
    done = cli("import", "helm", str(run), check=True)
    assert "guess" not in done.stderr
    pool = Pool(tmp_path / "pool")
    assert set(pool.samples()["metric"]) == {"f1_score"}  # was: exact_match, the first stat listed
    assert sorted(pool.scores()["value"]) == [0.2, 0.5, 0.9]
    assert set(pool.measurements()["metric"]) == {"exact_match", "f1_score"}


def test_helm_headline_lower_is_better_from_the_schema(cli, tmp_path: Path) -> None:
    run = helm_run(tmp_path / "runs" / "a", "openai/gpt2", [0.0, 1.0, 0.0], more_stats={"wer_score": [0.3, 0.1, 0.6]})
    write_schema(tmp_path / "elsewhere.json", "wer_score", lower_is_better=True)
    cli("import", "helm", str(run), "--schema", str(tmp_path / "elsewhere.json"), check=True)
    samples = Pool(tmp_path / "pool").samples()
    assert set(samples["metric"]) == {"wer_score"} and not samples["higher_is_better"].any()
    assert sorted(Pool(tmp_path / "pool").scores()["value"]) == [-0.6, -0.3, -0.1]


def test_helm_without_a_schema_guesses_the_headline_and_says_so(cli, tmp_path: Path) -> None:
    cot = {"chain_of_thought_correctness": [1.0, 1.0, 0.0]}
    run = helm_run(tmp_path / "runs" / "a", "openai/gpt2", [0.0, 0.0, 0.0], more_stats=cot)
    done = cli("import", "helm", str(run), check=True)
    assert f"{run}: ranked on chain_of_thought_correctness, a guess (also measured: exact_match)" in done.stderr
    pool = Pool(tmp_path / "pool")
    assert set(pool.samples()["metric"]) == {"chain_of_thought_correctness"}  # was: not even stored


def test_helm_metric_option_chooses_the_stat(cli, tmp_path: Path) -> None:
    run = helm_run(tmp_path / "suite" / "a", "openai/gpt2", [0.0, 1.0, 0.0], more_stats={"f1_score": [0.5, 0.9, 0.2]})
    write_schema(tmp_path / "suite" / "schema.json", "rouge_l")  # a headline the run lacks
    done = cli("import", "helm", str(run), "--metric", "bogus")
    assert done.returncode == 2
    assert (
        "per_instance_stats.json: no per-instance stat 'bogus' (its scoring stats: exact_match, f1_score)"
        in done.stderr
    )
    done = cli("import", "helm", str(run))
    assert (
        f"rouge_l, the headline in {tmp_path / 'suite' / 'schema.json'} for group mmlu, is not a per-instance stat"
        in done.stderr
    )
    assert "ranked on exact_match, a guess (also measured: f1_score)" in done.stderr
    done = cli("import", "helm", str(run), "--metric", "f1_score", pool=tmp_path / "other", check=True)
    assert "guess" not in done.stderr and "headline" not in done.stderr
    assert set(Pool(tmp_path / "other").samples()["metric"]) == {"f1_score"}
    done = cli("import", "helm", str(run), "--schema", str(tmp_path / "nowhere.json"))
    assert (
        done.returncode == 2
        and "nowhere.json: missing (HELM's schema.json, which helm-summarize writes)" in done.stderr
    )
    other = json.loads((tmp_path / "suite" / "schema.json").read_text())
    other["run_groups"][1]["name"] = "gsm"
    (tmp_path / "suite" / "schema.json").write_text(json.dumps(other))
    done = cli("import", "helm", str(run), check=True)
    assert "schema.json gives no headline for the run's groups (mmlu)" in done.stderr
    assert "ranked on exact_match, a guess" in done.stderr
    (tmp_path / "suite" / "schema.json").write_text(json.dumps({"metrics": []}))
    done = cli("import", "helm", str(run))
    assert done.returncode == 2 and "schema.json: not a HELM schema (KeyError: 'run_groups')" in done.stderr
