"""Local lm-eval tasks for tests: a YAML over a JSONL file whose rows have a `question`."""

from __future__ import annotations

from pathlib import Path

TASK_YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {{test: {data}}}
test_split: test
output_type: {output_type}
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
{body}
metadata: {{version: 1.0}}
"""


def write_task(folder: Path, name: str, data: Path, output_type: str, body: str) -> None:
    """`folder/name.yaml`: the lm-eval task `name` over `data`, prompting "Question: ...\\nAnswer:"; `body` is the
    rest of its YAML (target, choices, generation settings, filters, metrics)."""
    (folder / f"{name}.yaml").write_text(TASK_YAML.format(name=name, data=data, output_type=output_type, body=body))
