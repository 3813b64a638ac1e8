"""lm-eval tasks -> pool samples, with lm-eval's own prompts.

Tasks load through lm-eval's `TaskManager` (groups expand to their subtasks); each task builds its requests
with `build_all_requests`, and a sample's prompt is the context of its `Instance`s, its choices
`doc_to_choice`, its target `doc_to_target`, and the continuations lm-eval scores are the target delimiter
plus each choice (a `loglikelihood` task's, such as LAMBADA's: the target as it is, a `continuation` sample).
A `loglikelihood_rolling` task's document (wikitext's) is its `doc_to_target` alone, a `document` sample
whose prompt is that text. So the requests poolbench sends a model are exactly lm-eval's; the adapter
checks that for every document and refuses a task where they differ.
"""

from __future__ import annotations

import json
import numbers
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from harness.schema import METRICS, PoolError

#: The pool's sample kind of each lm-eval output type (lm-eval has these four).
KIND_OF = {
    "multiple_choice": "multiple_choice",
    "generate_until": "generation",
    "loglikelihood": "continuation",
    "loglikelihood_rolling": "document",
}


def load_lm_eval_tasks(
    names: list[str], include_path: str | None = None, num_fewshot: int = 0, limit: int | None = None
) -> pd.DataFrame:
    """Samples of the named tasks (or groups). With only an include path, lm-eval's built-in tasks are not
    indexed (that costs seconds). `num_fewshot` bakes lm-eval's own few-shot examples into the prompts.
    Raises PoolError for an unknown task or a request layout that differs from lm-eval's."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path, include_defaults=include_path is None)
    try:
        loaded = manager.load(names)
    except (KeyError, ValueError) as err:
        raise PoolError(f"cannot load lm-eval task(s) {', '.join(names)}: {err}") from None
    group_of = {child: group for group, children in loaded.get("group_map", {}).items() for child in children}
    frames = [
        _task_samples(name, task, str(group_of.get(name, "")), num_fewshot, limit)
        for name, task in loaded["tasks"].items()
    ]
    if not frames:
        raise PoolError(f"no lm-eval task matched {', '.join(names)}")
    return pd.concat(frames, ignore_index=True)


def _task_samples(name: str, task: Any, group: str, num_fewshot: int, limit: int | None) -> pd.DataFrame:
    output_type = task.OUTPUT_TYPE
    task.set_config("num_fewshot", num_fewshot)
    task.set_fewshot_seed(1234)
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    requests: dict[int, list[Any]] = defaultdict(list)
    for instance in task.instances:
        requests[instance.doc_id].append(instance)
    delimiter = task.config.target_delimiter if task.config.target_delimiter is not None else " "
    metrics = [m["metric"] for m in (task.config.metric_list or []) if isinstance(m.get("metric"), str)]
    measured = METRICS[KIND_OF[output_type]]
    # the task's first metric that a run measures per sample (not bleu, chrf, ...: lm-eval's corpus-level ones)
    metric = next((m for m in metrics if m in measured), measured[0])
    # the metric's direction as lm-eval declares it (None: by the metric's name, `complete_samples`)
    scoring = {"metric": metric, "higher_is_better": task.higher_is_better().get(metric)}
    scoring_recipe = _generation_scoring(name, task) if output_type == "generate_until" else None
    rows = []
    for doc_id, doc in task.doc_iterator(rank=0, limit=limit, world_size=1):
        instances = sorted(requests[doc_id], key=lambda inst: inst.idx)
        context = instances[0].arguments[0]
        metadata = {
            "task": name,
            "group": group,
            "doc_id": doc_id,
            "target_delimiter": delimiter,
            "fewshot_delimiter": task.config.fewshot_delimiter or "\n\n",
            "num_fewshot": num_fewshot,
        }
        # the description a chat template takes as the system message, and the prefix it opens the answer with
        description = task.resolve_field(doc, task.config.description) or ""
        if description and context.startswith(description):
            metadata["task_description"] = description
        if task.config.gen_prefix:  # the prompt ends with it; a chat template puts it in the assistant's turn
            metadata["gen_prefix"] = task.resolve_field(doc, task.config.gen_prefix)
            metadata["question"] = task.doc_to_text(doc)
        if isinstance(doc, dict):
            metadata["subject"] = doc.get("subject", group or name)
        if output_type == "multiple_choice":
            choices = [str(c) for c in task.doc_to_choice(doc)]
            target = _choice_index(task.doc_to_target(doc), choices, f"lm-eval task {name!r}, doc {doc_id}")
            expected = [(context, delimiter + c) for c in choices]
            if [tuple(inst.arguments) for inst in instances] != expected:
                raise PoolError(
                    f"lm-eval task {name!r}, doc {doc_id}: requests differ from prompt + delimiter "
                    "+ choice (unsupported request layout)"
                )
            fields = {"kind": "multiple_choice", "choices": choices, "target": target}
        elif output_type == "loglikelihood":  # the target after the prompt, as it is (no delimiter)
            continuation = str(task.doc_to_target(doc))
            if [tuple(inst.arguments) for inst in instances] != [(context, continuation)]:
                raise PoolError(
                    f"lm-eval task {name!r}, doc {doc_id}: requests differ from prompt + target "
                    "(unsupported request layout)"
                )
            fields = {"kind": "continuation", "choices": None, "target": [continuation]}
        elif output_type == "loglikelihood_rolling":  # the target alone, scored in rolling windows
            if [tuple(inst.arguments) for inst in instances] != [(str(task.doc_to_target(doc)),)]:
                raise PoolError(f"lm-eval task {name!r}, doc {doc_id}: its request is not its target alone")
            fields = {"kind": "document", "choices": None, "target": None}
        else:
            target = task.doc_to_target(doc)
            if task.config.doc_to_choice is not None:  # the target is a choice's index (lm-eval scores its text)
                target = task.doc_to_choice(doc)[target]
            references = [str(t) for t in target] if isinstance(target, list) else [str(target)]
            settings = instances[0].arguments[1]
            metadata["until"] = settings.get("until")
            if settings.get("max_gen_toks"):
                metadata["max_gen_toks"] = int(settings["max_gen_toks"])
            metadata["lm_eval_scoring"] = scoring_recipe
            fields = {"kind": "generation", "choices": None, "target": references}
        rows.append(
            {"prompt": context, **fields, **scoring, "source": name, "source_id": str(doc_id), "metadata": metadata}
        )
    return pd.DataFrame(rows)


def _generation_scoring(name: str, task: Any) -> dict[str, Any]:
    """How lm-eval scores the task's generations, as JSON for the samples' metadata: its first filter pipeline
    (`[function, options]` steps; lm-eval's default takes the first response) and the options of each metric
    (exact_match's `ignore_case`, `regexes_to_ignore`, ...). PoolError for a task that scores with
    its own `process_results` or a filter that is not one of lm-eval's registered ones."""
    if task.config.process_results is not None:
        raise PoolError(
            f"lm-eval task {name!r} scores its generations with its own process_results, which a run does not "
            "call: not supported (import its lm-eval --log_samples output instead)"
        )
    pipelines = task.config.filter_list or [{"name": "none", "filter": [{"function": "take_first"}]}]
    steps = [
        [step["function"], {key: value for key, value in step.items() if key != "function"}]
        for step in pipelines[0]["filter"]
    ]
    if not all(isinstance(function, str) for function, _ in steps):
        raise PoolError(f"lm-eval task {name!r}: its filter {pipelines[0]['name']!r} is custom code: not supported")
    options = {
        declared["metric"]: {
            k: v for k, v in declared.items() if k not in ("metric", "aggregation", "higher_is_better")
        }
        for declared in task.config.metric_list or []
        if isinstance(declared.get("metric"), str)
    }
    return {"filter": pipelines[0]["name"], "steps": steps, "metric_options": options}


def _choice_index(target: Any, choices: list[str], where: str) -> int:
    """The index of a document's one gold choice, as lm-eval reads `doc_to_target` (a number, or the text of a
    choice); PoolError for a gold lm-eval would score as always wrong, or for several golds."""
    if isinstance(target, list):
        raise PoolError(f"{where}: several gold answers {target!r} (one per sample is supported)")
    index = choices.index(target) if isinstance(target, str) and target in choices else target
    if not isinstance(index, numbers.Integral) or not 0 <= int(index) < len(choices):
        raise PoolError(f"{where}: target {target!r} is not one of its {len(choices)} choices {choices!r}")
    return int(index)


_TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: choices
doc_to_target: answer
metric_list: [{{metric: acc, aggregation: mean, higher_is_better: true}},
              {{metric: acc_norm, aggregation: mean, higher_is_better: true}}]
metadata: {{version: 1.0}}
"""


def write_lm_eval_task(samples: pd.DataFrame, folder: Path, name: str) -> Path:
    """Multiple-choice samples (`prompt, choices, target`) as a local lm-eval task: `folder/name.yaml` over
    `folder/name.jsonl`, zero-shot, acc and acc_norm; pass `folder` as lm-eval's include path. Returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for row in samples.itertuples():
            record = {"prompt": row.prompt, "choices": list(row.choices), "answer": int(json.loads(str(row.target)))}
            handle.write(json.dumps(record) + "\n")
    (folder / f"{name}.yaml").write_text(_TASK_YAML.format(name=name, data=data), encoding="utf-8")
    return folder
