"""Accuracy of one model on the two multiple-choice formats `run` offers, SmolLM2-135M on the starter capitals.

    python bench/multiple_choice_formats.py [--samples 100]

Each question scored by its choices' log-likelihoods (lm-eval's way, the default) and answered with a letter
(`--multiple-choice letter`, HELM's joint format), with 0 and 3 examples, without and with the model's chat
template (examples as turns): the accuracy of each, what a user choosing a format for a small model weighs.
"""

from __future__ import annotations

import argparse
import tempfile
from itertools import product
from pathlib import Path

from harness.backends import make_backend
from harness.models import smollm2_path
from harness.pool import Pool
from harness.runner import MULTIPLE_CHOICE, RunSpec, run
from tasks.starter import starter_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    samples = parser.parse_args().samples
    with tempfile.TemporaryDirectory() as folder:
        pool = Pool(Path(folder) / "pool", create=True)
        pool.add("samples", starter_samples(["capitals"]).head(samples))
        backend = make_backend("hf", {"pretrained": str(smollm2_path())}, batch_size=16, device="cpu")
        print(f"{'multiple choice':<16}{'examples':>9}  {'prompt':<14}{'acc':>6}")
        for answered, shots, chat in product(MULTIPLE_CHOICE, (0, 3), (False, True)):
            spec = RunSpec(
                f"{answered}-{shots}-{chat}",
                "hf",
                num_fewshot=shots,
                chat_template=chat,
                fewshot_as_multiturn=chat,
                multiple_choice=answered,
            )
            run(pool, spec, backend, progress=False)
            values = pool.read("measurements", models=[spec.model])
            acc = values.loc[values["metric"] == "acc", "value"].mean()
            print(f"{answered:<16}{shots:>9}  {'chat template' if chat else 'plain':<14}{acc:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
