"""hfchat's Gradio app: the page built from one module per panel (`build_app`), and `main`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence

import gradio as gr

from hfchat import net
from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import AppOptions, parse_options
from hfchat.fairqueue import LOCAL_QUEUES
from hfchat.limits import ActiveTurns, RateLimiter
from hfchat.presets import (
    CONTROL_NAMES,
)
from hfchat.space import public_token_warning
from hfchat.ui.chat_tab import SavedChatInterface
from hfchat.ui.compare_tab import compare_tab
from hfchat.ui.controls import settings_controls
from hfchat.ui.conversations import conversation_panel, wire_conversations
from hfchat.ui.page import PAGE_HEAD, queued
from hfchat.ui.presets import preset_panel, wire_presets
from hfchat.ui.render import rendered

log = logging.getLogger("hfchat.app")


def build_app(options: AppOptions, service: ChatService | None = None) -> gr.Blocks:
    service = service or ChatService(
        cache=ModelCache(options.cache_size),
        timeout=options.timeout,
        policy=options.deployment_policy,
        limiter=RateLimiter(options.rate_limit),
        active=ActiveTurns(options.max_turns_per_client),
        retry=options.retry,
        limits=options.limits,
        turn_timeout=options.turn_timeout,
        stall_timeout=options.stall_timeout,
        endpoint_api_key=options.endpoint_api_key,
    )
    chat_fn = rendered(make_chat_fn(service, options))
    # Gradio hands its request (the session hash the rate limit counts) to a parameter
    # annotated gr.Request; hfchat.chat stays gradio-free, so the annotation is set here.
    chat_fn.__annotations__["request"] = gr.Request
    # Likewise the signed-in visitor's token (None when not signed in, or not on a Space).
    chat_fn.__annotations__["oauth_token"] = gr.OAuthToken | None
    with gr.Blocks(title="hfchat", fill_height=True, analytics_enabled=False) as demo:
        with gr.Sidebar(label="Settings"):
            if options.oauth:  # a Space with hf_oauth: each visitor's own token pays for their calls
                gr.LoginButton()
            saved = conversation_panel()
            presets = preset_panel()
            controls = settings_controls(options)
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                injected = {"request", "oauth_token"}  # filled by Gradio, not by a control
                params = [p for p in list(inspect.signature(chat_fn).parameters)[2:] if p not in injected]
                chat = SavedChatInterface(
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
            with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
                compare_tab(options, service, controls, tabs)
        # Presets and exports hold every control but the token (those this build has).
        settable = {name: controls[name] for name in CONTROL_NAMES if name in controls}
        wire_conversations(demo, saved, chat, settable)
        wire_presets(demo, presets, settable)
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # no URL's user:password or query in any log line
        handler.addFilter(net.SCRUB_URLS)
    options = parse_options(argv)
    LOCAL_QUEUES.configure(options.local_concurrency)
    log.info("%s", options.deployment_policy.describe())
    if options.public and options.rate_limit is None:
        log.warning("public deployment without --rate-limit: one visitor can keep the app busy")
    if warning := public_token_warning(options.public, options.auth is not None):
        log.warning("%s", warning)
    queued(build_app(options), options).launch(
        server_name=options.host, server_port=options.port, share=options.share, auth=options.auth, head=PAGE_HEAD
    )
