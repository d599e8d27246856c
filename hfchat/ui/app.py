"""hfchat's Gradio app: the page built from one module per panel (`build_app`), and `main`."""

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import gradio as gr

from hfchat.api.openai import gateway_routes
from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn, make_measure_fn
from hfchat.cli import AppOptions, parse_options
from hfchat.cpu import apply_torch_threads
from hfchat.embeddings import EmbeddingRanker
from hfchat.fairqueue import DeviceQueues
from hfchat.limits import ActiveTurns, RateLimiter
from hfchat.logs import serving_line, setup_logging
from hfchat.presets import (
    CONTROL_NAMES,
)
from hfchat.settings import Group
from hfchat.space import public_token_warning
from hfchat.tokens import Fingerprinter
from hfchat.tools.registry import deployment_registry
from hfchat.ui.chat_tab import chat_panel, wire_ask, wire_chat
from hfchat.ui.compare_tab import compare_tab
from hfchat.ui.controls import settings_controls
from hfchat.ui.conversations import conversation_panel, wire_conversations
from hfchat.ui.meter import wire_meter
from hfchat.ui.notices import wire_notices
from hfchat.ui.page import PAGE_LOOK, model_header_button, queued, wire_panels
from hfchat.ui.picker import model_picker
from hfchat.ui.presets import preset_panel, wire_presets
from hfchat.ui.render import rendered
from hfchat.ui.tools import builtin_choices, mcp_choices, startup_catalog, tools_status, wire_tools

log = logging.getLogger("hfchat.app")


def build_service(options: AppOptions) -> ChatService:
    """The one service behind the chat, compare mode and the OpenAI API, as `options` say."""
    apply_torch_threads(options.torch_threads)  # before any local model (and torch) loads
    fingerprint = Fingerprinter()
    tools = deployment_registry(
        options.sidebar.tools,
        options.public,
        options.deployment_policy,
        options.mcp,
        options.mcp_stdio,
        options.tool_timeout,
        fingerprint,
    )
    return ChatService(
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
        fingerprint=fingerprint,
        tools=tools,
        max_tool_steps=options.max_tool_steps,
        tool_timeout=options.tool_timeout,
        upload_root=str(gr.utils.get_upload_folder()),  # documents are read only from Gradio's uploads
        embeddings=EmbeddingRanker(options.embeddings) if options.embeddings else None,
    )


def launch_kwargs(options: AppOptions, service: ChatService | Any) -> dict[str, Any]:
    """What `main` and the in-process launcher pass to `launch()` besides host and port: the
    password, the page head, and with --openai-api the /v1 routes over `service`.

    The routes go in through launch's public `app_kwargs` (FastAPI's `routes=`), so they are
    part of the very app Gradio serves: the same process and port, ahead of Gradio's own
    routes, and there for a --share link or a Space too (both serve that app)."""
    routes = gateway_routes(service.respond, options) if options.openai_api else []
    return {"auth": options.auth, **PAGE_LOOK, "app_kwargs": {"routes": routes}}


def build_app(options: AppOptions, service: ChatService | None = None) -> gr.Blocks:
    service = service or build_service(options)
    views = make_chat_fn(service, options)
    chat_fn = rendered(views)
    with gr.Blocks(title="hfchat", fill_height=True, analytics_enabled=False) as demo:
        with gr.Sidebar(label="Conversations", position="left", elem_id="conversations-panel") as conversations:
            saved = conversation_panel()
        with gr.Sidebar(label="Settings", position="right", elem_id="settings-panel", width=340) as settings:
            if options.oauth:  # a Space with hf_oauth: each visitor's own token pays for their calls
                gr.LoginButton()
            presets = preset_panel()
            shown: list[gr.Markdown] = []
            listed = startup_catalog(service)
            if options.sidebar.mcp_tools is None:  # all of the servers' tools, ticked (and /chat's default)
                sidebar = options.sidebar.model_copy(update={"mcp_tools": [name for _, name in mcp_choices(listed)]})
                options = dataclasses.replace(options, sidebar=sidebar)
            controls = settings_controls(
                options,
                after={Group.TOOLS: lambda: shown.append(tools_status())},
                choices={"tools": builtin_choices(service), "mcp_tools": mcp_choices(listed)},
            )
            wire_tools(demo, controls, shown[0], service)
            model_picker(options, controls)
        wire_notices(demo, options)
        with gr.Tabs(elem_id="page-tabs") as tabs:
            with gr.Tab("Chat", id="chat", elem_id="chat-tab") as chat_tab:
                header = model_header_button(options, controls)
                chat = chat_panel()
            with gr.Tab("Compare", id="compare", elem_id="compare-tab") as compare:
                compare_tab(options, service, controls, tabs, compare)
        # Presets and exports hold every control but the token (those this build has).
        settable = {name: controls[name] for name in CONTROL_NAMES if name in controls}
        meter = wire_meter(chat.meter, chat.textbox, chat.history, make_measure_fn(service, options), controls)
        turns = wire_chat(chat, saved, chat_fn, controls, settable, options.stream_rate, meter)
        wire_ask(views, controls)
        wire_conversations(demo, saved, chat, settable, turns, meter.refresh)
        wire_presets(demo, presets, settable)
        wire_panels(demo, conversations, settings, header, chat_tab, compare)
    return demo


def main(argv: Sequence[str] | None = None) -> None:
    setup_logging()
    options = parse_options(argv)
    log.info("%s", options.deployment_policy.describe())
    if options.public and options.rate_limit is None:
        log.warning("public deployment without --rate-limit: one visitor can keep the app busy")
    if warning := public_token_warning(options.public, options.auth is not None):
        log.warning("%s", warning)
    if options.openai_api:
        log.info("OpenAI-compatible API at /v1 (%s)", "API keys required" if options.api_keys else "no API keys")
    service = build_service(options)
    demo = queued(build_app(options, service), options)
    # quiet: Gradio's start-up lines end "set `share=True` in `launch()`"; ours name --share.
    demo.launch(
        server_name=options.host,
        server_port=options.port,
        share=options.share,
        quiet=True,
        prevent_thread_lock=True,
        **launch_kwargs(options, service),
    )
    log.info("%s", serving_line(demo.local_url or "", demo.share_url))
    demo.block_thread()
