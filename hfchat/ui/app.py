"""hfchat's Gradio app: the page built from one module per panel (`build_app`), and `main`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import gradio as gr

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import AppOptions, parse_options
from hfchat.fairqueue import DeviceQueues
from hfchat.limits import ActiveTurns, RateLimiter
from hfchat.logs import serving_line, setup_logging
from hfchat.presets import (
    CONTROL_NAMES,
)
from hfchat.space import public_token_warning
from hfchat.ui.chat_tab import chat_panel, wire_chat
from hfchat.ui.compare_tab import compare_tab
from hfchat.ui.controls import settings_controls
from hfchat.ui.conversations import conversation_panel, wire_conversations
from hfchat.ui.notices import wire_notices
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
        queues=DeviceQueues(options.local_concurrency),
    )
    chat_fn = rendered(make_chat_fn(service, options))
    with gr.Blocks(title="hfchat", fill_height=True, analytics_enabled=False) as demo:
        with gr.Sidebar(label="Settings"):
            if options.oauth:  # a Space with hf_oauth: each visitor's own token pays for their calls
                gr.LoginButton()
            saved = conversation_panel()
            presets = preset_panel()
            controls = settings_controls(options)
        wire_notices(demo, options)
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                chat = chat_panel()
            with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
                compare_tab(options, service, controls, tabs)
        # Presets and exports hold every control but the token (those this build has).
        settable = {name: controls[name] for name in CONTROL_NAMES if name in controls}
        turns = wire_chat(chat, saved, chat_fn, controls, settable)
        wire_conversations(demo, saved, chat, settable, turns)
        wire_presets(demo, presets, settable)
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    setup_logging()
    options = parse_options(argv)
    log.info("%s", options.deployment_policy.describe())
    if options.public and options.rate_limit is None:
        log.warning("public deployment without --rate-limit: one visitor can keep the app busy")
    if warning := public_token_warning(options.public, options.auth is not None):
        log.warning("%s", warning)
    demo = queued(build_app(options), options)
    # quiet: Gradio's start-up lines end "set `share=True` in `launch()`"; ours name --share.
    demo.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        auth=options.auth,
        head=PAGE_HEAD,
        quiet=True,
        prevent_thread_lock=True,
    )
    log.info("%s", serving_line(demo.local_url or "", demo.share_url))
    demo.block_thread()
