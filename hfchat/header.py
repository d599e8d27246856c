"""The one-line model header over the chat: what you are talking to, without opening a panel.

Gradio-free, so its text is tested as a plain function: "SmolLM2-135M-Instruct · Local · 4-bit",
"DeepSeek-R1-0528 · Inference Providers · auto", "tiny · Custom endpoint · 127.0.0.1:8000".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any
from urllib.parse import urlsplit

from hfchat.config import display_url
from hfchat.settings import BACKEND_LABELS, Backend

SEPARATOR = " · "

HEADER_SETTINGS = ("backend", "model", "provider", "endpoint_url", "served_model", "load_in_4bit", "quant_type")
"""The settings the header names; it is redrawn when one of them changes."""


def short_model_name(model: str) -> str:
    """A repo ID's name ("owner/name" -> "name"), or a local folder's own name."""
    model = (model or "").strip().rstrip("/\\")
    return PurePath(model).name or model


def _host(url: str) -> str:
    shown = display_url(url.strip())
    parts = urlsplit(shown)
    return parts.netloc or shown


def model_header(values: Mapping[str, Any]) -> str:
    """The header's text for the panel's values: model, backend, then the provider (Inference
    Providers), the server (a custom endpoint) or "4-bit" (a local model loaded in 4-bit)."""
    try:
        backend = Backend(values.get("backend"))
    except ValueError:
        return "no backend chosen"
    label = BACKEND_LABELS[backend]
    if backend is Backend.ENDPOINT:
        url = str(values.get("endpoint_url") or "")
        served = short_model_name(str(values.get("served_model") or ""))
        where = _host(url) if url.strip() else "no endpoint URL yet"
        return SEPARATOR.join(filter(None, [served or "served model", label, where]))
    model = short_model_name(str(values.get("model") or "")) or "no model yet"
    if backend is Backend.PROVIDERS:
        return SEPARATOR.join([model, label, str(values.get("provider") or "auto")])
    quant = values.get("quant_type") or "nf4"
    four_bit = f"4-bit {quant}" if values.get("load_in_4bit") and quant != "nf4" else "4-bit"
    return SEPARATOR.join([model, label, *([four_bit] if values.get("load_in_4bit") else [])])
