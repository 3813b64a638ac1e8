"""A HELM run directory -> samples, measurements and the model.

Reads HELM's documented per-run files: `run_spec.json` (the run name and `adapter_spec.model`),
`instances.json` (input text, references with their "correct" tags, id, split) and `per_instance_stats.json`
(per instance and train trial, a list of stats with `name.name`, `sum` and `count`). Multiple-choice
instances (several references, one tagged correct) keep their references as choices; the others keep the
correct references as targets. Perturbed instances (HELM's data augmentation: copies under the original's id)
are left out, and so are stats with a perturbation; the other scoring stats become measurements (their mean
over train trials); counts such as token numbers are not scores and are skipped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from harness.schema import PoolError, complete_samples

SCORE_STATS = frozenset(
    {
        "exact_match",
        "quasi_exact_match",
        "prefix_exact_match",
        "quasi_prefix_exact_match",
        "f1_score",
        "rouge_l",
        "rouge_1",
        "rouge_2",
        "bleu_1",
        "bleu_4",
        "math_equiv",
        "math_equiv_chain_of_thought",
        "exact_match_indicator",
        "final_number_exact_match",
        "ifeval_strict_accuracy",
        "wb_score",
    }
)


def _load(path: Path) -> Any:
    if not path.is_file():
        raise PoolError(
            f"{path}: missing (a HELM run directory holds run_spec.json, instances.json and per_instance_stats.json)"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PoolError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None


def import_helm(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Tables for one HELM run; raises PoolError naming the file at fault."""
    run_dir = Path(run_dir)
    spec = _load(run_dir / "run_spec.json")
    instances = _load(run_dir / "instances.json")
    stats = _load(run_dir / "per_instance_stats.json")
    try:
        model = spec["adapter_spec"]["model"]
        run_name = spec["name"]
    except (KeyError, TypeError):
        raise PoolError(f"{run_dir / 'run_spec.json'}: no name or adapter_spec.model") from None
    source = ",".join(p for p in run_name.split(",") if not p.startswith("model=")) or run_name
    rows, index_of = [], {}
    for number, instance in enumerate(instances):
        if isinstance(instance, dict) and instance.get("perturbation"):
            continue  # a perturbed copy (data augmentation): its id is the original's
        try:
            rows.append(_sample(instance, source, run_name))
        except (KeyError, TypeError) as err:
            raise PoolError(f"{run_dir / 'instances.json'}: instance {number} lacks {err}") from None
        index_of[instance["id"]] = len(rows) - 1
    samples = complete_samples(pd.DataFrame(rows))
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for number, entry in enumerate(stats):
        try:
            instance_id = entry.get("instance_id")
            if instance_id not in index_of or entry.get("perturbation"):
                continue
            for stat in entry.get("stats", []):
                name = stat.get("name", {})
                if name.get("name") in SCORE_STATS and not name.get("perturbation") and stat.get("count"):
                    values[(instance_id, name["name"])].append(float(stat["sum"]) / stat["count"])
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise PoolError(
                f"{run_dir / 'per_instance_stats.json'}: entry {number} is not a HELM stats entry "
                f"({type(err).__name__}: {err})"
            ) from None
    if not values:
        raise PoolError(f"{run_dir / 'per_instance_stats.json'}: no scoring stats for the run's instances")
    measurements = pd.DataFrame(
        [
            {"sample_id": samples["sample_id"].iloc[index_of[iid]], "metric": metric, "value": sum(v) / len(v)}
            for (iid, metric), v in values.items()
        ]
    ).assign(model=model, run_id=f"helm:{run_name}")
    primary = measurements["metric"].value_counts().index[0]
    samples["metric"] = primary
    return {
        "samples": samples,
        "measurements": measurements,
        "models": pd.DataFrame([{"model": model, "backend": "helm", "args": json.dumps(spec["adapter_spec"])}]),
    }


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
