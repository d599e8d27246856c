"""The Compare tab: one prompt, two configurations side by side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.chat import ChatService
from hfchat.cli import AppOptions
from hfchat.compare import DESCRIBED_BY, SIDES, Side, compare_turn, copy_settings, describe
from hfchat.limits import client_address
from hfchat.ui.controls import settings_controls
from hfchat.ui.render import to_messages


def compare_tab(options: AppOptions, service: ChatService, main: dict[str, Component], tabs: gr.Tabs) -> None:
    """A and B side by side: one prompt box, a settings panel and a chat window per side,
    and a button per side that copies its settings into the main chat's sidebar."""
    panels: dict[str, dict[str, Component]] = {}
    chats: dict[str, gr.Chatbot] = {}
    with gr.Row(equal_height=False):
        for side in SIDES:
            with gr.Column(min_width=320):
                with gr.Accordion(open=False, elem_id=f"compare-{side.lower()}-settings") as accordion:
                    panels[side] = settings_controls(options, side)
                accordion.label = _side_title(side, {n: c.value for n, c in panels[side].items()})
                chats[side] = gr.Chatbot(
                    label=side, elem_id=f"compare-{side.lower()}-chat", height=420, buttons=["copy"]
                )
                copy = gr.Button(f"Copy {side} to main chat", size="sm", elem_id=f"compare-copy-{side.lower()}")
            _wire_side(panels[side], accordion, side, main, copy, tabs)
    with gr.Row():
        box = gr.Textbox(
            show_label=False,
            placeholder="One prompt, sent to A and B at once",
            scale=5,
            elem_id="compare-prompt",
            submit_btn=False,
        )
        send = gr.Button("Send to both", variant="primary", scale=1, elem_id="compare-send")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="compare-stop")
        clear = gr.Button("Clear", scale=1, elem_id="compare-clear")
    status = gr.Markdown("", elem_id="compare-status")
    token, endpoint_key = main["hf_token"], main["endpoint_api_key"]
    inputs: set[Any] = {
        box,
        token,
        endpoint_key,
        *chats.values(),
        *(c for panel in panels.values() for c in panel.values()),
    }

    def run(
        data: dict[Component, Any], request: gr.Request, oauth_token: gr.OAuthToken | None
    ) -> Iterator[dict[Component, Any]]:
        sides = [Side(history=data[chats[s]] or [], values={n: data[c] for n, c in panels[s].items()}) for s in SIDES]
        session = getattr(request, "session_hash", None)
        signed_in = getattr(oauth_token, "token", None)
        client = client_address(request, options.on_space)
        endpoint = data[endpoint_key]
        for views in compare_turn(service, data[box], sides, data[token], session, signed_in, endpoint, client):
            shown = zip(chats.values(), views, strict=True)
            windows: dict[Component, Any] = {chat: [*view.asked, *to_messages(view.reply)] for chat, view in shown}
            yield {box: "", status: "A and B are answering…", **windows}
        yield {status: "Both replies are in."}

    outputs = [box, status, *chats.values()]
    # Private: from code, compare by calling /chat twice at once with different settings.
    events: list[dict[str, Any]] = [
        trigger(run, inputs, outputs, api_visibility="private") for trigger in (send.click, box.submit)
    ]
    stop.click(lambda: "Stopped.", None, status, cancels=events, api_visibility="private")

    def clear_all() -> dict[Any, Any]:
        return {status: "", **{chat: [] for chat in chats.values()}}

    clear.click(
        clear_all,
        None,
        [status, *chats.values()],
        cancels=events,
        api_visibility="private",
    )


def _side_title(side: str, values: dict[str, Any]) -> str:
    return f"{side} settings: {describe(values)}"


def _wire_side(
    panel: dict[str, Component],
    accordion: gr.Accordion,
    side: str,
    main: dict[str, Component],
    copy: gr.Button,
    tabs: gr.Tabs,
) -> None:
    """The side's title follows its settings; its copy button fills the main sidebar."""
    names = list(panel)
    components = [panel[n] for n in names]

    def title(*values: Any) -> dict:
        return gr.update(label=_side_title(side, dict(zip(names, values, strict=True))))

    for name in DESCRIBED_BY:
        panel[name].change(title, components, accordion, api_visibility="private")  # type: ignore[attr-defined]

    def copy_to_main(*values: Any) -> dict[Any, Any]:
        copied = copy_settings(dict(zip(names, values, strict=True)), list(main))
        gr.Info(f"Copied {side}'s settings into the main chat.")
        return {tabs: gr.Tabs(selected="chat"), **{main[n]: v for n, v in copied.items()}}

    copy.click(copy_to_main, components, [tabs, *(main[n] for n in names if n in main)], api_visibility="private")
