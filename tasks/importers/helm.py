"""A HELM run directory -> samples, measurements and the model.

Reads HELM's per-run files: `run_spec.json` (the run's name, groups and `adapter_spec.model`), `instances.json`
(input text, references with their "correct" tags, id, split; helm-summarize writes it) and
`per_instance_stats.json` (per instance and train trial, a list of stats with `name.name`, `sum` and `count`),
and, where helm-summarize wrote it, `display_predictions.json` (per instance and train trial, the model's text
and the answer HELM mapped it to): the responses, of the first train trial.
Multiple-choice instances (several references, one tagged correct) keep their references as choices; the others
keep the correct references as targets. Perturbed instances (HELM's data augmentation: copies under the
original's id) are left out, and so are stats with a perturbation; the scoring stats become measurements (their
mean over train trials); counts such as token numbers are not scores and are skipped.

The samples' metric, the one they are ranked on, is HELM's headline for the run: the `main_name` that HELM's
schema (`schema.json`, which helm-summarize writes beside the runs of a suite) gives the run's groups, with
its `lower_is_better`. Without a schema it is the scoring stat most instances have (scenario-specific scores
such as `chain_of_thought_correctness` before the generic `exact_match`), and a note names the others.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd

from harness.schema import PoolError, complete_samples, error_text

#: The per-instance stats HELM's scenarios are scored by, in the order a guess prefers them: scenario-specific
#: scores first, then the generic ones in the order HELM's schemas most often make them a run's headline.
SCORE_STATS = (
    "chain_of_thought_correctness",
    "omni_math_accuracy",
    "ifeval_strict_accuracy",
    "wildbench_score_rescaled",
    "wildbench_score",
    "math_equiv_chain_of_thought",
    "math_equiv",
    "final_number_exact_match",
    "exact_match_indicator",
    "exact_match",
    "quasi_exact_match",
    "quasi_prefix_exact_match",
    "prefix_exact_match",
    "f1_score",
    "rouge_l",
    "rouge_2",
    "rouge_1",
    "bleu_4",
    "bleu_1",
)
#: The parts of a HELM run name that name the model, not the task.
MODEL_ARGS = ("model", "model_deployment")
#: The model's predictions per instance, as helm-summarize writes them for HELM's web frontend.
PREDICTIONS = "display_predictions.json"
#: What a run's files are, for the error that names a missing one.
RUN_FILES = "a HELM run directory holds run_spec.json, instances.json and per_instance_stats.json"


def _load(path: Path, what: str = RUN_FILES) -> Any:
    """A JSON file's content; PoolError naming the file (and `what` it should be, if it is missing)."""
    if not path.is_file():
        raise PoolError(f"{path}: missing ({what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PoolError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None


def import_helm(
    run_dir: str | Path, metric: str | None = None, schema: str | Path | None = None
) -> dict[str, pd.DataFrame]:
    """Tables for one HELM run, ranked on `metric` if given, else on the headline `schema` (default: the
    `schema.json` beside the run directory, if any) names; raises PoolError naming the file at fault. Notes
    (a guessed headline) are in the measurements' `attrs["notes"]`."""
    run_dir = Path(run_dir)
    spec = _load(run_dir / "run_spec.json")
    instances = _load(run_dir / "instances.json")
    stats_path = run_dir / "per_instance_stats.json"
    stats = _load(stats_path)
    try:
        model = spec["adapter_spec"]["model"]
        run_name = spec["name"]
    except (KeyError, TypeError):
        raise PoolError(f"{run_dir / 'run_spec.json'}: no name or adapter_spec.model") from None
    schema_path = Path(schema) if schema is not None else run_dir.parent / "schema.json"
    mains, lower = _read_schema(schema_path) if schema is not None or schema_path.is_file() else ({}, {})
    group = next((group for group in spec.get("groups") or [] if group in mains), None)
    wanted = set(SCORE_STATS) | {name for name in (metric, mains.get(group or "")) if name}
    source, rows, index_of = task_name(run_name), [], {}
    for number, instance in enumerate(instances):
        if isinstance(instance, dict) and instance.get("perturbation"):
            continue  # a perturbed copy (data augmentation): its id is the original's
        try:
            rows.append(_sample(instance, source, run_name))
        except (KeyError, TypeError) as err:
            raise PoolError(f"{run_dir / 'instances.json'}: instance {number} lacks {err}") from None
        index_of[instance["id"]] = len(rows) - 1
    values = _stat_values(stats, stats_path, index_of, wanted)
    if not values:
        raise PoolError(f"{stats_path}: no scoring stats for the run's instances")
    measurements = pd.DataFrame(
        [{"instance": iid, "metric": stat, "value": sum(v) / len(v)} for (iid, stat), v in values.items()]
    )
    schema_main = (mains[group], f"{schema_path} for group {group}") if group else None
    headline, notes = _headline(measurements["metric"].value_counts(), metric, schema_main, stats_path)
    if mains and group is None and metric is None:
        notes.insert(0, f"{schema_path} gives no headline for the run's groups ({', '.join(spec.get('groups') or [])})")
    samples = complete_samples(
        pd.DataFrame(rows).assign(
            metric=headline, higher_is_better=None if headline not in lower else not lower[headline]
        )
    )
    instance_rows = measurements.pop("instance").map(index_of).to_numpy()
    measurements = measurements.assign(
        sample_id=samples["sample_id"].to_numpy()[instance_rows], model=model, run_id=f"helm:{run_name}"
    )
    predictions_path, predictions = run_dir / PREDICTIONS, []
    if predictions_path.is_file():
        predictions = _load(predictions_path)
    else:
        notes.append(f"no responses: no {PREDICTIONS} in {run_dir} (helm-summarize writes it)")
    responses = _responses(predictions, predictions_path, index_of)
    measurements.attrs["notes"] = notes
    return {
        "samples": samples,
        "measurements": measurements,
        "responses": responses.assign(
            sample_id=samples["sample_id"].to_numpy()[responses.pop("row").to_numpy(dtype=int)],
            model=model,
            run_id=f"helm:{run_name}",
        ),
        "models": pd.DataFrame([{"model": model, "backend": "helm", "args": json.dumps(_model_args(spec))}]),
    }


def _model_args(spec: dict[str, Any]) -> dict[str, Any]:
    """What a run spec says of its model (its model and deployment; the rest of the adapter spec is the task's)."""
    return {key: spec["adapter_spec"][key] for key in MODEL_ARGS if key in spec["adapter_spec"]}


def task_name(run_name: str) -> str:
    """A HELM run's name without the parts that name its model ("gsm:model=openai_gpt2,stop=none" -> "gsm:stop=none"),
    so that the runs of one task on several models share their samples."""
    scenario, _, args = run_name.partition(":")
    kept = [arg for arg in args.split(",") if arg and arg.partition("=")[0] not in MODEL_ARGS]
    return f"{scenario}:{','.join(kept)}" if kept else scenario


def _read_schema(path: Path) -> tuple[dict[str, str], dict[str, bool]]:
    """From HELM's schema: each run group's headline (`environment.main_name`) and each metric's
    `lower_is_better`. Read once for all the runs of a suite (until the file changes)."""
    if not path.is_file():
        _load(path, "HELM's schema.json, which helm-summarize writes")  # raises, naming it
    return _parsed_schema(path.resolve(), path.stat().st_mtime_ns)


@cache
def _parsed_schema(path: Path, mtime_ns: int) -> tuple[dict[str, str], dict[str, bool]]:
    """`_read_schema` of the file at `path` as it was at `mtime_ns` (the cache's key: a changed file is read again)."""
    schema = _load(path)
    try:
        mains = {
            group["name"]: group["environment"]["main_name"]
            for group in schema["run_groups"]
            if "main_name" in (group.get("environment") or {})
        }
        lower = {field["name"]: bool(field.get("lower_is_better")) for field in schema.get("metrics", [])}
    except (AttributeError, KeyError, TypeError) as err:
        raise PoolError(f"{path}: not a HELM schema ({error_text(err)})") from None
    return mains, lower


def _stat_values(
    stats: Any, path: Path, index_of: dict[str, int], wanted: set[str]
) -> dict[tuple[str, str], list[float]]:
    """Per (instance id, stat) of `wanted`, the stat's mean in each train trial of an unperturbed instance."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for number, entry in enumerate(stats):
        try:
            instance_id = entry.get("instance_id")
            if instance_id not in index_of or entry.get("perturbation"):
                continue
            for stat in entry.get("stats", []):
                name = stat.get("name", {})
                if name.get("name") in wanted and not name.get("perturbation") and stat.get("count"):
                    values[(instance_id, name["name"])].append(float(stat["sum"]) / stat["count"])
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise PoolError(f"{path}: entry {number} is not a HELM stats entry ({error_text(err)})") from None
    return values


def _responses(predictions: Any, path: Path, index_of: dict[str, int]) -> pd.DataFrame:
    """`row` (of the instance in the samples) and `response` (`{"text", "extracted"}` as JSON) of each
    unperturbed instance's first train trial: the text the model predicted (of a multiple-choice-separate run,
    the chosen reference's, without the prompt) and the answer HELM mapped it to, if any."""
    rows: dict[int, str] = {}
    for number, prediction in enumerate(predictions):
        try:
            row = index_of.get(prediction["instance_id"])
            if row is None or prediction.get("perturbation") or prediction.get("train_trial_index", 0) != 0:
                continue
            text = prediction.get("truncated_predicted_text") or prediction["predicted_text"]
        except (AttributeError, KeyError, TypeError) as err:
            raise PoolError(f"{path}: entry {number} is not a HELM prediction ({error_text(err)})") from None
        rows.setdefault(row, json.dumps({"text": text, "extracted": prediction.get("mapped_output")}))
    return pd.DataFrame({"row": list(rows), "response": list(rows.values())}, dtype=object)


def _headline(
    counts: pd.Series, metric: str | None, schema_main: tuple[str, str] | None, path: Path
) -> tuple[str, list[str]]:
    """The stat to rank a run's samples on, given how many instances have each: `metric`, else the schema's
    headline (its name, and where it was read), else a guess; and notes on a guess."""
    if metric is not None:
        if metric not in counts:
            raise PoolError(f"{path}: no per-instance stat {metric!r} (its scoring stats: {', '.join(counts.index)})")
        return metric, []
    notes = []
    if schema_main is not None:
        if schema_main[0] in counts:
            return schema_main[0], []
        notes.append(f"{schema_main[0]}, the headline in {schema_main[1]}, is not a per-instance stat")
    most = counts[counts == counts.max()].index
    guess = next(stat for stat in SCORE_STATS if stat in most)
    if len(counts) > 1:
        others = ", ".join(stat for stat in counts.index if stat != guess)
        notes.append(
            f"ranked on {guess}, a guess (also measured: {others}); HELM's schema.json (beside the run, or "
            "--schema) names the headline of a run, --metric chooses one"
        )
    return guess, notes


def _sample(instance: dict[str, Any], source: str, run_name: str) -> dict[str, Any]:
    references = instance["references"]
    texts = [r["output"]["text"] for r in references]
    correct = [i for i, r in enumerate(references) if "correct" in r.get("tags", [])]
    metadata = {
        "helm_run": run_name,
        "instance_id": instance["id"],
        "split": instance.get("split"),
        "sub_split": instance.get("sub_split"),
    }
    common = {
        "source": source,
        "source_id": str(instance["id"]),
        "prompt": instance["input"]["text"],
        "metadata": metadata,
    }
    if len(texts) > 1 and len(correct) == 1:
        return {**common, "kind": "multiple_choice", "choices": texts, "target": correct[0]}
    return {**common, "kind": "generation", "choices": None, "target": [texts[i] for i in correct] or texts}
