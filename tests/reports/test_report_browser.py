"""The HTML report in real headless Chromium: renders, lists every model, escapes hostile text, works offline."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tempfile
from html import escape
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
import pytest

from aggregators import BOARD_COLUMNS
from harness.pool import Pool
from tests.tasks.test_importers import lm_eval_samples_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
]
HOSTILE = ["<script>document.title='PWNED'</script>", "<img src=x onerror=\"document.title='PWNED'\">"]


def browse(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Chromium on file://page with the documented flags; its stdout is the DOM after scripts ran."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and re.search(r"error|uncaught", line, re.I)]


def test_chembench_report_renders_every_model_without_errors(cli, shared_data: Path, tmp_path: Path) -> None:
    cli(
        "import",
        "matrix",
        str(shared_data / "chembench_binary" / "binary_matrix.csv"),
        "--source",
        "chembench",
        check=True,
    )
    page = tmp_path / "report.html"
    cli("report", "--out", str(page), "--bootstrap", "20", check=True)
    html = page.read_text()
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+stylesheet", html)
    assert "http://" not in re.sub(r"http://www\.w3\.org[^\"']*", "", html.split('<script type="module">')[0])
    done = browse(page, "--dump-dom")
    assert console_errors(done.stderr) == []
    rows = re.findall(r'<tr class="leaderboard-row" data-model="([^"]+)"', done.stdout)
    assert len(rows) == 22
    assert done.stdout.count("<svg") >= 3  # the Vega charts were drawn by the inlined scripts
    assert "Scores are centered Plackett-Luce log-strengths." in done.stdout
    link = re.search(r'id="download-csv" download="leaderboard.csv" href="data:text/csv;charset=utf-8,([^"]+)"', html)
    assert link is not None
    table = pd.read_csv(io.StringIO(unquote(link.group(1))))  # the table of the page, best first
    assert table["model"].tolist() == rows and table["rank"].is_monotonic_increasing
    assert table.columns.tolist()[1:] == [*BOARD_COLUMNS[1:], "mean:chembench"]
    assert table[["ci_low", "ci_high", "rank_low", "rank_high"]].notna().all().all()
    matrix = pd.read_csv(shared_data / "chembench_binary" / "binary_matrix.csv", index_col=0)
    np.testing.assert_allclose(table["mean:chembench"], matrix.mean()[table["model"]], atol=1e-12)
    shot = tmp_path / "report.png"
    browse(page, f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.stat().st_size > 10_000


def hostile_samples_file(tmp_path: Path) -> Path:
    """A real lm-eval generate_until samples file whose prompts and outputs are then made hostile."""
    path = lm_eval_samples_file(tmp_path, "generate_until")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for i, record in enumerate(records):
        record["filtered_resps"] = [HOSTILE[i % 2]]
        record["resps"] = [[HOSTILE[i % 2]]]
        record["arguments"]["gen_args_0"]["arg_0"] = f"Question {i}: {HOSTILE[(i + 1) % 2]}\nAnswer:"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_hostile_outputs_show_as_text(cli, tmp_path: Path) -> None:
    path = hostile_samples_file(tmp_path)
    cli("import", "lm-eval-samples", str(path), "--model", "evil", check=True)
    cli("import", "lm-eval-samples", str(path), "--model", "evil-twin", check=True)
    page = tmp_path / "report.html"
    cli("report", "--out", str(page), "--method", "mean", "--bootstrap", "0", check=True)
    done = browse(page, "--dump-dom")
    dom = done.stdout
    assert "<title>poolbench leaderboard</title>" in dom and "PWNED" not in dom.split("</title>")[0]
    body = dom.split('<script type="application/json"')[0]  # the page's elements, before its scripts
    assert re.search(r"<img\b", body) is None and "<script>document" not in body  # the text stayed text
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in body  # shown as text in the browser
    assert "Scores are mean values (higher is better" in body  # what the method's score is
    assert console_errors(done.stderr) == []


def test_report_says_how_each_model_was_measured(cli, tmp_path: Path) -> None:
    """A row per run that gave ranked values (a superseded run gives none), imported values marked, and a
    note when the models' prompt settings differ; a hostile system instruction shows as text."""
    cli("add", "starter", "capitals", check=True)
    run = ["run", "--no-progress", "--limit"]
    cli(*run, "20", "--model", "baseline-longest", "--name", "L", "--num-fewshot", "2", check=True)
    cli(*run, "20", "--model", "baseline-random", "--name", "R", check=True)  # superseded by the next run
    cli(*run, "30", "--model", "baseline-random", "--name", "R", "--system-instruction", HOSTILE[0], check=True)
    matrix = tmp_path / "m.csv"
    matrix.write_text("id,a,b\nq1,1,0\nq2,0,1\n")
    cli("import", "matrix", str(matrix), "--source", "m", check=True)
    page = tmp_path / "report.html"
    cli("report", "--out", str(page), "--method", "mean", "--bootstrap", "0", check=True)
    done = browse(page, "--dump-dom")
    assert console_errors(done.stderr) == []
    dom = done.stdout
    table = dom[dom.index('<table id="runs"') : dom.index("</table>", dom.index('<table id="runs"'))]
    body = table[table.index("<tbody>") :]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    runs = Pool(tmp_path / "pool").read("runs")
    run_of = {
        (c["model"], c["num_fewshot"], c.get("system_instruction")): run_id
        for run_id, c in zip(runs["run_id"], runs["config"].map(json.loads), strict=True)
    }
    hostile = "0-shot, system instruction \"&lt;script&gt;document.title='PWNED'&lt;/script&gt;\""
    expected = [
        ["L", "baseline-longest", "seed=0", run_of[("L", 2, None)], "2-shot", "20", "finished"],
        ["R", "baseline-random", "seed=0", run_of[("R", 0, HOSTILE[0])], hostile, "30", "finished"],
        ["a", "imported", "", "import:m.csv", "imported", "2", "imported"],
        ["b", "imported", "", "import:m.csv", "imported", "2", "imported"],
    ]
    order = re.findall(r'<tr class="leaderboard-row" data-model="([^"]+)"', dom)
    assert rows == sorted(expected, key=lambda row: order.index(row[0]))
    assert f"the models were run with different prompt settings (2-shot: L; {hostile}: R)" in dom
    ranked = cli("rank", "--method", "mean", "--json", check=True)  # the same rows, as JSON
    fields = ["model", "backend", "weights", "run", "settings", "values", "status"]
    listed = [[escape(str(run[f]), quote=False) for f in fields] for run in json.loads(ranked.stdout)["runs"]]
    assert listed == rows and "warning: the models were run with different prompt settings" in ranked.stderr
    assert "PWNED" not in dom.split("</title>")[0] and "<script>document" not in dom.split("<script type=")[0]


def test_comparison_page_shows_hostile_flips_as_text(cli, tmp_path: Path) -> None:
    path = hostile_samples_file(tmp_path)
    cli("import", "lm-eval-samples", str(path), "--model", "evil", check=True)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record in records[::2]:  # the twin flips every other sample
        record["exact_match"] = 1.0 - record["exact_match"]
    twin = tmp_path / "twin" / path.name
    twin.parent.mkdir()
    twin.write_text("".join(json.dumps(record) + "\n" for record in records))
    cli("import", "lm-eval-samples", str(twin), "--model", "evil-twin", check=True)
    page = tmp_path / "compare.html"
    document = json.loads(
        cli("compare", "evil", "evil-twin", "--min-shared", "1", "--json", "--html", str(page)).stdout
    )
    assert len(document["flips"]) == 3
    done = browse(page, "--dump-dom")
    assert console_errors(done.stderr) == []
    body = done.stdout.split('<script type="application/json"')[0]
    assert "Comparison: evil-twin vs evil" in body and body.count("right -&gt; wrong") + body.count(
        "wrong -&gt; right"
    ) == len(document["flips"])
    assert re.search(r"<img\b", body) is None and "<script>document" not in body and "&lt;img src=x" in body
    assert "Sample browser" not in body and "Leaderboard" not in body  # no empty leaderboard sections
    assert f'id="power">power: on {document["n_shared"]} shared samples' in body  # what the gate could catch
    deltas = body.split('<div id="deltas"')[1].split("</div>")[0]
    assert "<svg" in deltas and deltas.count("<path") >= 2  # the deltas chart was drawn: overall and one source


def test_report_of_comparisons_alone(cli, shared_data: Path, tmp_path: Path) -> None:
    """LLMFAO's crowd preferences and a pair of models with hostile names: every model ranked, names as text."""
    llmfao = shared_data / "llmfao" / "crowd-comparisons.csv"
    options = ["--model-a", "left", "--model-b", "right", "--winner", "winner", "--prompt", "prompt"]
    cli("import", "pairwise", str(llmfao), "--source", "llmfao", *options, "--judge", "worker", check=True)
    hostile = tmp_path / "hostile.jsonl"
    rows = [{"model_a": HOSTILE[0], "model_b": HOSTILE[1], "winner": w, "prompt": f"p{i}"} for i, w in enumerate("aab")]
    hostile.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cli("import", "pairwise", str(hostile), "--source", "hostile", check=True)
    both = cli("rank", check=True).stderr  # no sample compares the hostile pair with LLMFAO's models
    assert "no sample compares these groups of models with one another: 59 (Airoboros L2 70B," in both
    assert f"), 2 ({', '.join(sorted(HOSTILE))}). Scores and ranks compare within a group only" in both
    page = tmp_path / "report.html"
    cli("report", "--out", str(page), "--bootstrap", "0", check=True)
    diagnostics = page.read_text().split('<ul id="diagnostics">')[1].split("</ul>")[0]
    assert diagnostics.count("no sample compares these groups") == 1 and "comparison graph splits" not in diagnostics
    cli("report", "--out", str(page), "--source", "llmfao", "--bootstrap", "0", check=True)
    done = browse(page, "--dump-dom")
    assert console_errors(done.stderr) == []
    assert len(re.findall(r'<tr class="leaderboard-row"', done.stdout)) == 59
    header = done.stdout.split('id="header"')[1].split("</table>")[0]
    assert "<td>comparisons</td><td>8,931</td>" in header and "<td>samples</td><td>13</td>" in header
    cli("report", "--out", str(page), "--source", "hostile", "--bootstrap", "0", check=True)
    done = browse(page, "--dump-dom")
    body = done.stdout.split('<script type="application/json"')[0]
    assert console_errors(done.stderr) == [] and "PWNED" not in done.stdout.split("</title>")[0]
    assert re.search(r"<img\b", body) is None and "<script>document" not in body and "&lt;img src=x" in body
