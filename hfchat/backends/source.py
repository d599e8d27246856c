"""Where a local model's files come from, decided before torch is imported.

A local model is a folder (with config.json), a GGUF file (or a folder holding exactly one),
or a Hub repo ID. For a repo ID the Hub is asked first whether it is there at all
(`net.hub_reachable`, a 3 s connection probe): with no network, huggingface_hub would
retry for 24 s before transformers falls back to the disk cache. Out of reach, a model in
the cache loads from it (`local_files_only`), and one that is not is refused at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hfchat import net
from hfchat.config import gguf_file, looks_like_path
from hfchat.errors import hub_unreachable_uncached


@dataclass(frozen=True)
class ModelSource:
    """What `from_pretrained` is given for a local model: `path` (a repo ID or a folder) and
    `options`, its extra keywords (`gguf_file=<name>`, `local_files_only=True`)."""

    path: str
    options: dict[str, Any] = field(default_factory=dict)


def local_source(model: str) -> ModelSource:
    """Where `model` loads from; raises ConnectionFailedError at once for a repo ID that is
    neither reachable on the Hub nor in the local cache."""
    gguf = gguf_file(model)
    if gguf is not None:
        return ModelSource(str(gguf.parent), {"gguf_file": gguf.name})
    from huggingface_hub import constants, try_to_load_from_cache

    if looks_like_path(model) or constants.is_offline_mode() or net.hub_reachable():
        return ModelSource(model)  # (HF_HUB_OFFLINE=1 fails fast itself, with its own message)

    if not isinstance(try_to_load_from_cache(model, "config.json"), str):
        raise hub_unreachable_uncached()
    return ModelSource(model, {"local_files_only": True})
