"""The settings controls (sidebar and compare sides), and which backend shows which."""

from __future__ import annotations

from typing import TypeVar

import gradio as gr
from gradio.components import Component

from hfchat.backends import ALL_CONTROLS, CONTROLS
from hfchat.cli import AppOptions
from hfchat.config import COMPUTE_DTYPES, DEVICES, QUANT_TYPES, RANGES, TASKS, Backend, GenerationSettings
from hfchat.providers import chat_providers

C = TypeVar("C", bound=gr.components.Component)


def _as_sent(component: C) -> C:
    """Hand the component's value to hfchat's validation as sent, so an API call with a value
    out of range, NaN or a string is refused naming the field: Gradio's own check names
    neither the field nor the fix, and a string crashes it. (An instance attribute, because
    subclassing a Gradio component writes a .pyi file next to this one.)"""
    component.preprocess = lambda payload: payload  # type: ignore[method-assign]
    return component


def _slider(name: str, value: float, step: float, info: str = "", prefix: str = "") -> gr.Slider:
    """A slider labelled with its API name, over the range the config validates."""
    low, high = RANGES[name]
    return _as_sent(gr.Slider(low, high, value=value, step=step, label=prefix + name, info=info or None))


def settings_controls(options: AppOptions, side: str = "") -> dict[str, Component]:
    """One set of settings controls, keyed by API name, rendered where it is called.

    The main sidebar (`side=""`, which adds the session token box) and each compare side
    ("A", "B": labels and element IDs carry the side) are all built here.
    """
    g = GenerationSettings()
    prefix = f"{side}: " if side else ""
    ids = f"compare-{side.lower()}" if side else "settings"

    def label(text: str) -> str:
        return prefix + text

    controls: dict[str, Component] = {
        "backend": gr.Radio([(b.label, b.value) for b in Backend], value=options.backend.value, label=label("Backend")),
        "model": gr.Textbox(options.model, label=label("Repo ID or local folder"), placeholder="owner/name"),
        "provider": gr.Dropdown(list(chat_providers()), value=options.provider, label=label("Provider")),
        "endpoint_url": gr.Textbox(
            options.endpoint_url, label=label("Endpoint URL"), placeholder="http://127.0.0.1:8000"
        ),
        "served_model": gr.Textbox(
            options.served_model, label=label("Served model name"), placeholder="found from /v1/models when empty"
        ),
        "task": gr.Dropdown(list(TASKS), value=options.task, label=label("Task")),
        "system_prompt": gr.Textbox(options.system_prompt, label=label("System prompt"), lines=2),
        "max_new_tokens": _slider("max_new_tokens", options.max_new_tokens, 1, prefix=prefix),
        "do_sample": gr.Checkbox(g.do_sample, label=label("do_sample"), info="off: greedy, the same reply every time"),
        "temperature": _slider("temperature", g.temperature, 0.05, "used when do_sample is on", prefix),
        "top_p": _slider("top_p", g.top_p, 0.01, "used when do_sample is on", prefix),
        "top_k": _slider("top_k", g.top_k, 1, "used when do_sample is on; 0 = off", prefix),
        "repetition_penalty": _slider("repetition_penalty", g.repetition_penalty, 0.01, "1.0 = off", prefix),
        "frequency_penalty": _slider("frequency_penalty", g.frequency_penalty, 0.05, "OpenAI scale, 0 = off", prefix),
        "seed": _as_sent(gr.Number(-1, precision=0, label=label("seed"), info="-1 = random")),
        "load_in_4bit": gr.Checkbox(options.load_in_4bit, label=label("Load in 4-bit (bitsandbytes)")),
        "quant_type": gr.Radio(list(QUANT_TYPES), value=options.quant_type, label=label("4-bit type")),
        "compute_dtype": gr.Dropdown(
            list(COMPUTE_DTYPES), value=options.compute_dtype, label=label("4-bit compute dtype")
        ),
        "double_quant": gr.Checkbox(True, label=label("4-bit double quantization")),
        "device": gr.Dropdown(list(DEVICES), value=options.device, label=label("Device")),
    }
    if not side:  # the main sidebar only: compare mode shows both sides' speed always
        controls["show_speed"] = gr.Checkbox(
            True, label="Show speed under each reply", info="model, time to first token, tokens/s, tokens"
        )
        controls["hf_token"] = gr.Textbox(
            "",
            label="HF token (this browser session only)",
            type="password",
            placeholder="hf_…, overrides HF_TOKEN",
        )
        controls["endpoint_api_key"] = gr.Textbox(
            "",
            label="Endpoint API key (this browser session only)",
            type="password",
            placeholder="sent only to the endpoint URL above; never the HF token",
        )
    for name, component in controls.items():
        component.elem_id = f"{ids}-{name.replace('_', '-')}"
    _follow_backend(controls, options.backend)
    return controls


def _follow_backend(controls: dict[str, Component], initial: Backend) -> None:
    """Show only the controls that reach the chosen backend, now and whenever it changes."""
    toggled = {name: controls[name] for name in sorted(ALL_CONTROLS - {"hf_token"}) if name in controls}
    for name, component in toggled.items():
        component.visible = name in CONTROLS[initial]

    def show_for(backend: str) -> dict[Component, dict]:
        wanted = CONTROLS[Backend(backend)]
        return {component: gr.update(visible=name in wanted) for name, component in toggled.items()}

    controls["backend"].change(  # type: ignore[attr-defined]
        show_for, controls["backend"], list(toggled.values()), api_visibility="private"
    )
