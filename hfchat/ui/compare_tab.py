"""The Compare tab: one prompt, two configurations side by side."""

from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.chat import ChatService
from hfchat.cli import AppOptions
from hfchat.compare import SIDES, Side, SideView, check_side, compare_turn, copy_settings, describe, side_titles
from hfchat.errors import HFChatError
from hfchat.limits import client_address
from hfchat.streaming import paced
from hfchat.ui.controls import settings_controls
from hfchat.ui.feedback import refused
from hfchat.ui.render import to_messages
from hfchat.updates import Waiting

QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def stop_button(running: bool) -> dict[str, Any]:
    """Stop is prominent (and enabled) only while a compare turn runs; otherwise neutral and
    disabled, as there is nothing to stop."""
    return gr.update(variant="stop" if running else "secondary", interactive=running)


def compare_tab(
    options: AppOptions, service: ChatService, main: dict[str, Component], tabs: gr.Tabs, tab: gr.Tab
) -> None:
    """The Compare tab's contents (`compare_panels`), built the first time the visitor opens
    `tab`, in that visitor's session only.

    Gradio builds the config of every block of the page for each new session (each page
    load; issue 14): the two settings panels, windows and buttons here are some 70 of the
    page's blocks, so a session that never opens Compare should not pay for them. The
    first select ticks `opened` in the browser (no request); its change (once: later
    selects leave it ticked) renders the contents, kept for the rest of the session, as is
    what the visitor did there (settings, conversations, a running turn) while on another
    tab. `opened` is a hidden checkbox, not a `gr.State`: Gradio's page fires a State's
    change only after a queued event, and a checkbox's after any."""
    opened = gr.Checkbox(False, visible="hidden", container=False, elem_id="compare-opened")
    tab.select(None, None, opened, js="() => true", **QUIET)

    @gr.render(triggers=[opened.change], queue=False)
    def contents() -> None:
        compare_panels(options, service, main, tabs)


def compare_panels(options: AppOptions, service: ChatService, main: dict[str, Component], tabs: gr.Tabs) -> None:
    """A and B side by side: one prompt box, a settings panel and a chat window per side,
    and a button per side that copies its settings into the main chat's sidebar.

    Each side's title names what differs from the other side (`side_titles`); its window's
    label says what it runs (`describe`). Every event here takes the settings as sent
    (preprocess=False), so a bad value is refused with one toast naming the side and the
    field, never with Gradio's red "Error" badge."""
    panels: dict[str, dict[str, Component]] = {}
    accordions: dict[str, gr.Accordion] = {}
    chats: dict[str, gr.Chatbot] = {}
    histories: dict[str, gr.State] = {}
    copies: dict[str, gr.Button] = {}
    with gr.Row(equal_height=False):
        for side in SIDES:
            with gr.Column(min_width=320):
                with gr.Accordion(open=False, elem_id=f"compare-{side.lower()}-settings") as accordions[side]:
                    panels[side] = settings_controls(options, side)
                chats[side] = gr.Chatbot(elem_id=f"compare-{side.lower()}-chat", height=420, buttons=["copy"])
                histories[side] = gr.State([])
                copies[side] = gr.Button(f"Copy {side} to main chat", size="sm", elem_id=f"compare-copy-{side.lower()}")
    with gr.Row():
        box = gr.Textbox(
            show_label=False,
            placeholder="One prompt, sent to A and B at once",
            scale=5,
            elem_id="compare-prompt",
            submit_btn=False,
            interactive=True,  # said, not inferred: see `settings_controls`
        )
        send = gr.Button("Send to both", variant="primary", scale=1, elem_id="compare-send")
        stop = gr.Button("Stop", variant="secondary", interactive=False, scale=1, elem_id="compare-stop")
        clear = gr.Button("Clear", scale=1, interactive=False, elem_id="compare-clear")
    status = gr.Markdown("", elem_id="compare-status")
    _wire_titles(panels, accordions, chats)
    for side in SIDES:
        _wire_copy(panels[side], side, main, copies[side], tabs, service.limits.local_dirs)
    token, endpoint_key = main["hf_token"], main["endpoint_api_key"]
    inputs: set[Any] = {
        box,
        token,
        endpoint_key,
        *histories.values(),
        *(c for panel in panels.values() for c in panel.values()),
    }

    async def run(
        data: dict[Component, Any], request: gr.Request, oauth_token: gr.OAuthToken | None
    ) -> AsyncIterator[dict[Component, Any]]:
        sides = [Side(data[histories[s]] or [], {n: data[c] for n, c in panels[s].items()}) for s in SIDES]
        session = getattr(request, "session_hash", None)
        signed_in = getattr(oauth_token, "token", None)
        client = client_address(request, options.on_space)
        try:
            turn = compare_turn(service, data[box], sides, data[token], session, signed_in, data[endpoint_key], client)
        except HFChatError as exc:  # a blank prompt or a side's bad setting: one toast, nothing else
            yield refused(exc, box)
            return
        busy = {box: "", stop: stop_button(True), send: gr.update(interactive=False)}
        busy[clear] = gr.update(interactive=True)
        async with aclosing(paced(turn, options.stream_rate)) as views_so_far:  # Stop closes the turn
            async for views in views_so_far:
                windows = {s: [*view.asked, *to_messages(view.reply)] for s, view in zip(SIDES, views, strict=True)}
                yield {
                    **busy,
                    status: answering(views),
                    **{chats[s]: w for s, w in windows.items()},
                    **{histories[s]: w for s, w in windows.items()},
                }
                busy = {}
        yield {status: "Both replies are in.", stop: stop_button(False), send: gr.update(interactive=True)}

    outputs = [box, status, stop, send, clear, *chats.values(), *histories.values()]
    # Private: from code, compare by calling /chat twice at once with different settings.
    events: list[dict[str, Any]] = [
        trigger(run, inputs, outputs, preprocess=False, api_visibility="private")  # settings as sent: see above
        for trigger in (send.click, box.submit)
    ]
    idle: dict[Component, Any] = {stop: stop_button(False), send: gr.update(interactive=True)}
    stop.click(lambda: {status: "Stopped.", **idle}, None, [status, stop, send], cancels=events, **QUIET)

    def clear_all() -> dict[Any, Any]:
        emptied: dict[Component, Any] = {c: [] for c in (*chats.values(), *histories.values())}
        return {status: "", clear: gr.update(interactive=False), **idle, **emptied}

    clear.click(
        clear_all, None, [status, clear, stop, send, *chats.values(), *histories.values()], cancels=events, **QUIET
    )
    for side in SIDES:  # the window's own trash button empties that side's conversation
        chats[side].clear(lambda: [], None, histories[side], **QUIET)


def answering(views: Sequence[SideView]) -> str:
    """The status line during a turn: who answers, and who waits for whom."""
    lasts = {s: v.reply[-1] for s, v in zip(SIDES, views, strict=True) if v.reply}
    waiting = [f"{s} is waiting for {u.behind or 'the device'}…" for s, u in lasts.items() if isinstance(u, Waiting)]
    return " ".join(waiting) or "A and B are answering…"


def _wire_titles(
    panels: dict[str, dict[str, Component]], accordions: dict[str, gr.Accordion], chats: dict[str, gr.Chatbot]
) -> None:
    """Both sides' titles follow every setting of either side: each names what differs
    (`side_titles`), and each window's label says what that side runs (`describe`)."""

    def titles(sides: Sequence[dict[str, Any]]) -> dict[Component, Any]:
        named = side_titles(sides)
        out: dict[Any, Any] = {}
        for side, values, title in zip(SIDES, sides, named, strict=True):
            out[accordions[side]] = gr.update(label=title)
            out[chats[side]] = gr.update(label=f"{side}: {describe(values)}")
        return out

    def from_data(data: dict[Component, Any]) -> dict[Component, Any]:
        return titles([{n: data[c] for n, c in panels[s].items()} for s in SIDES])

    initial = titles([{n: c.value for n, c in panels[s].items()} for s in SIDES])
    for component, update in initial.items():
        component.label = update["label"]
    every = [c for panel in panels.values() for c in panel.values()]
    gr.on(
        [c.change for c in every],  # type: ignore[attr-defined]
        from_data,
        inputs=set(every),
        outputs=[*accordions.values(), *chats.values()],
        preprocess=False,  # a bad value must not raise into the titles: they show it as sent
        queue=False,
        **QUIET,
    )


def _wire_copy(
    panel: dict[str, Component],
    side: str,
    main: dict[str, Component],
    copy: gr.Button,
    tabs: gr.Tabs,
    local_dirs: Sequence[str],
) -> None:
    """The side's copy button fills the main sidebar, once the side's settings validate."""
    names = list(panel)
    components = [panel[n] for n in names]

    def copy_to_main(*values: Any) -> dict[Any, Any]:
        given = dict(zip(names, values, strict=True))
        try:
            check_side(side, given, local_dirs)
        except HFChatError as exc:
            return refused(exc, main["backend"])
        copied = copy_settings(given, list(main))
        gr.Info(f"Copied {side}'s settings into the main chat.")
        return {tabs: gr.Tabs(selected="chat"), **{main[n]: v for n, v in copied.items()}}

    copy.click(
        copy_to_main,
        components,
        [tabs, *(main[n] for n in names if n in main)],
        preprocess=False,  # a bad value is refused with a toast, not Gradio's Error badges
        **QUIET,
    )
