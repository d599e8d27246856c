"""hfchat's Gradio app: wires the sidebar controls to hfchat's chat function. No logic here."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import gradio as gr

from hfchat.backends import ALL_CONTROLS, CONTROLS
from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import AppOptions, parse_options
from hfchat.config import COMPUTE_DTYPES, DEVICES, QUANT_TYPES, RANGES, TASKS, Backend, GenerationSettings
from hfchat.fairqueue import LOCAL_QUEUES
from hfchat.limits import RateLimiter
from hfchat.providers import chat_providers

log = logging.getLogger("hfchat.app")


def _slider(name: str, value: float, step: float, info: str = "") -> gr.Slider:
    """A slider labelled with its API name, over the range the config validates."""
    low, high = RANGES[name]
    return gr.Slider(low, high, value=value, step=step, label=name, info=info or None)


def build_app(options: AppOptions, service: ChatService | None = None) -> gr.Blocks:
    service = service or ChatService(
        cache=ModelCache(options.cache_size),
        timeout=options.timeout,
        policy=options.local_policy,
        limiter=RateLimiter(options.rate_limit),
        retry=options.retry,
        limits=options.limits,
    )
    chat_fn = make_chat_fn(service, options)
    # Gradio hands its request (the session hash the rate limit counts) to a parameter
    # annotated gr.Request; hfchat.chat stays gradio-free, so the annotation is set here.
    chat_fn.__annotations__["request"] = gr.Request
    g = GenerationSettings()
    with gr.Blocks(title="hfchat", fill_height=True, analytics_enabled=False) as demo:
        with gr.Sidebar(label="Settings"):
            controls: dict[str, Any] = {
                "backend": gr.Radio(
                    [(b.label, b.value) for b in Backend], value=options.backend.value, label="Backend"
                ),
                "model": gr.Textbox(options.model, label="Repo ID or local folder", placeholder="owner/name"),
                "provider": gr.Dropdown(list(chat_providers()), value=options.provider, label="Provider"),
                "endpoint_url": gr.Textbox(
                    options.endpoint_url, label="Endpoint URL", placeholder="http://127.0.0.1:8000"
                ),
                "served_model": gr.Textbox(
                    options.served_model, label="Served model name", placeholder="found from /v1/models when empty"
                ),
                "task": gr.Dropdown(list(TASKS), value=options.task, label="Task"),
                "system_prompt": gr.Textbox(options.system_prompt, label="System prompt", lines=2),
                "max_new_tokens": _slider("max_new_tokens", options.max_new_tokens, 1),
                "do_sample": gr.Checkbox(g.do_sample, label="do_sample", info="off: greedy, the same reply every time"),
                "temperature": _slider("temperature", g.temperature, 0.05, "used when do_sample is on"),
                "top_p": _slider("top_p", g.top_p, 0.01, "used when do_sample is on"),
                "top_k": _slider("top_k", g.top_k, 1, "used when do_sample is on; 0 = off"),
                "repetition_penalty": _slider("repetition_penalty", g.repetition_penalty, 0.01, "1.0 = off"),
                "frequency_penalty": _slider("frequency_penalty", g.frequency_penalty, 0.05, "OpenAI scale, 0 = off"),
                "seed": gr.Number(-1, precision=0, label="seed", info="-1 = random"),
                "load_in_4bit": gr.Checkbox(options.load_in_4bit, label="Load in 4-bit (bitsandbytes)"),
                "quant_type": gr.Radio(list(QUANT_TYPES), value=options.quant_type, label="4-bit type"),
                "compute_dtype": gr.Dropdown(
                    list(COMPUTE_DTYPES), value=options.compute_dtype, label="4-bit compute dtype"
                ),
                "double_quant": gr.Checkbox(True, label="4-bit double quantization"),
                "device": gr.Dropdown(list(DEVICES), value=options.device, label="Device"),
                "hf_token": gr.Textbox(
                    "",
                    label="HF token (this browser session only)",
                    type="password",
                    placeholder="hf_…, overrides HF_TOKEN",
                ),
            }
        params = [p for p in list(inspect.signature(chat_fn).parameters)[2:] if p != "request"]
        gr.ChatInterface(
            chat_fn,
            additional_inputs=[controls[name] for name in params],
            api_name="chat",
            # Fixed at construction, so always on; a text-only task refuses images with a message.
            multimodal=True,
            textbox=gr.MultimodalTextbox(
                sources=["upload"],
                file_types=["image"],
                file_count="multiple",
                placeholder="Type a message (attach images with the task image-text-to-text)…",
                show_label=False,
                stop_btn=True,  # a custom textbox brings its own buttons; Stop is off by default
            ),
            title="hfchat",
            description="Chat with any Hugging Face model: Inference Providers, your own endpoint, or locally.",
            editable=True,
            fill_height=True,
            analytics_enabled=False,
        )
        toggled = {name: controls[name] for name in sorted(ALL_CONTROLS - {"hf_token"})}
        for name, component in toggled.items():
            component.visible = name in CONTROLS[options.backend]

        def show_for(backend: str) -> dict[gr.components.Component, dict]:
            wanted = CONTROLS[Backend(backend)]
            return {component: gr.update(visible=name in wanted) for name, component in toggled.items()}

        controls["backend"].change(show_for, controls["backend"], list(toggled.values()), api_name=False)
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = parse_options(argv)
    LOCAL_QUEUES.configure(options.local_concurrency)
    log.info("%s", options.local_policy.describe())
    if options.public and options.rate_limit is None:
        log.warning("public deployment without --rate-limit: one visitor can keep the app busy")
    queued(build_app(options), options).launch(server_name=options.host, server_port=options.port, share=options.share)


def queued(demo: gr.Blocks, options: AppOptions) -> gr.Blocks:
    """The queue as the app runs it: `concurrency` chats at once, at most `max_queue` waiting;
    beyond that Gradio answers at once that the app is busy (HTTP 503, "try again")."""
    return demo.queue(default_concurrency_limit=options.concurrency, max_size=options.max_queue)


if __name__ == "__main__":
    main()
