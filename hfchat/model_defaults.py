"""A model's own sampling defaults, from the `generation_config.json` it ships.

Gradio-free. Model authors tune temperature, top_p, top_k (and whether to sample at all) for
their model and write them into `generation_config.json`; the settings panel takes those
when the model box changes, so a model is first tried the way its authors meant. Only the
sampling values are read: the rest of that file (token ids, lengths) is the pipeline's.

A local folder's file is read directly; a Hub repo's comes from huggingface_hub's cache, or
with one GET through huggingface_hub's session (HF_ENDPOINT and HF_HUB_OFFLINE honoured), so a
slow or unreachable Hub costs the panel at most a few seconds and never an error: no
defaults found means the sliders stay as they are.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub import constants, get_session, try_to_load_from_cache
from huggingface_hub.utils import build_hf_headers

from hfchat.settings import SETTINGS

log = logging.getLogger(__name__)

FILENAME = "generation_config.json"

SAMPLING_KEYS = ("do_sample", "temperature", "top_p", "top_k")
"""The generation_config fields taken over, which are the panel's settings of the same names."""

HUB_TIMEOUT_S = 3.0
"""How long the panel waits for the Hub's answer about a repo's file."""

_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def sampling_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The sampling settings a generation config sets, checked against the schema's types and
    ranges: a value the panel would refuse (top_k 500, temperature 0 while sampling) is left
    out, so a model's odd file never puts the panel into a state it refuses."""
    found: dict[str, Any] = {}
    for key in SAMPLING_KEYS:
        value = config.get(key)
        if value is None or isinstance(value, bool) != (key == "do_sample"):
            continue
        if key != "do_sample":
            if not isinstance(value, int | float):
                continue
            low, high = SETTINGS[key].range
            if not low <= value <= high or (key == "temperature" and value == 0):
                continue
            value = int(value) if key == "top_k" else float(value)
        found[key] = value
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.info("no sampling defaults from %s: %s", path, type(exc).__name__)
        return {}
    return sampling_values(data) if isinstance(data, dict) else {}


def model_defaults(model: str, timeout: float = HUB_TIMEOUT_S) -> dict[str, Any]:
    """The sampling settings `model` (a local folder, or a Hub repo ID) ships in its
    generation_config.json; {} when it ships none, or they can't be read in `timeout` s."""
    model = (model or "").strip()
    if not model:
        return {}
    folder = Path(model).expanduser()
    if folder.is_dir():
        return _read(folder / FILENAME)
    if not _REPO_ID.match(model):
        return {}
    cached = try_to_load_from_cache(model, FILENAME)  # downloaded with the model before
    if isinstance(cached, str):
        return _read(Path(cached))
    if constants.HF_HUB_OFFLINE:
        return {}
    # One GET, no retries (huggingface_hub's download retries a dead Hub for ~24 s).
    url = f"{constants.ENDPOINT.rstrip('/')}/{model}/resolve/main/{FILENAME}"  # ENDPOINT as it is now
    try:
        response = get_session().get(url, headers=build_hf_headers(), timeout=timeout, follow_redirects=True)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:  # unreachable, too slow, not JSON
        log.info("no sampling defaults for %s from the Hub: %s", model, type(exc).__name__)
        return {}
    return sampling_values(data) if isinstance(data, dict) else {}
