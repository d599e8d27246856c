"""The context meter under the chat box: "1,234 / 8,192 tokens" (`hfchat.context.ContextUse`).

One line of `gr.HTML` (`chat_tab.chat_panel` places it), drawn from `ChatService.measure`
(through `hfchat.chat.make_measure_fn`): the system prompt, the history and the text being
typed, plus max_new_tokens reserved for the reply (its tooltip says so), against the model's
context length; a warning style when it would not fit. It is redrawn when the box changes
(coalesced: one request at a time, the last value wins), when a setting that changes the
count changes, and after each event that changes the conversation (`refresh`)."""

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.context import ContextUse
from hfchat.settings import SETTINGS, Role

MeasureFn = Callable[..., ContextUse | None]
"""`hfchat.chat.make_measure_fn`'s function: (message, history, request=, oauth_token=, **settings)."""

MODEL = ("backend", "model", "provider", "endpoint_url", "served_model", "task")
COUNTED = (*MODEL, "system_prompt", "max_new_tokens", *(n for n, s in SETTINGS.items() if s.role is Role.SECRET))
"""The settings whose change changes the meter: the model (its tokenizer and window), the
system prompt, the reply's reserve, and the credentials that may reach a tokenizer."""

METER_ID = "context-meter"


def meter_html(use: ContextUse | None) -> str:
    """The meter's line: its label, the warning when it would not fit, the details as a tooltip
    (`title`); empty for settings that do not validate (the turn names the bad field)."""
    if use is None:
        return ""
    warning = use.warning()
    state = "over" if warning else "ok"
    text = html.escape(use.label(), quote=False)
    if warning:
        text += f' <span class="meter-warning">· {html.escape(warning, quote=False)}</span>'
    title = html.escape(f"{use.label()}{f' — {warning}' if warning else ''}. {use.title()}", quote=True)
    return f'<div class="context-meter meter-{state}" title="{title}" data-fits="{str(use.fits).lower()}">{text}</div>'


METER_CSS = """
#context-meter { min-height: 1.2em; }
#context-meter .context-meter { font-size: var(--text-sm); color: var(--body-text-color-subdued);
  text-align: right; padding: 2px 8px 0; font-variant-numeric: tabular-nums; cursor: help;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
#context-meter .meter-over, #context-meter .meter-over * { color: var(--color-red-600, #dc2626); font-weight: 600; }
"""
"""The meter's look (in the page's CSS): small and quiet under the box, one line (the tooltip
has it all when a phone cuts it short); red when it would not fit."""


def meter_component() -> gr.HTML:
    """The (empty) meter, rendered where it is called: under the chat box."""
    return gr.HTML("", elem_id=METER_ID, padding=False, container=False)


@dataclass(frozen=True)
class Meter:
    """The wired meter: `refresh` chains a redraw after an event (one more request), `draw`
    gives the meter's HTML for an event that outputs it itself (a turn's last update, so a
    turn needs no request for it: see `hfchat.ui.chat_tab.wire_chat`)."""

    refresh: Callable[[Any], None]
    draw: Callable[..., str]


def wire_meter(
    meter: gr.HTML,
    textbox: gr.MultimodalTextbox,
    history: gr.State,
    measure: MeasureFn,
    controls: dict[str, Component],
) -> Meter:
    """Redraw `meter` when the box or a counted setting changes; returns its `Meter`, whose `refresh`
    chains a redraw after an event that changes the conversation (a reply, undo, clear,
    opening another conversation). Unqueued and coalesced (`always_last`): counting is a
    tokenizer call (milliseconds; no model is loaded for it), so it never waits behind a reply."""
    by_name = {name: controls[name] for name in _parameters(measure) if name in controls}

    def update(
        message: Any,
        past: list[dict[str, Any]] | None,
        request: gr.Request,
        oauth_token: gr.OAuthToken | None,
        **settings: Any,
    ) -> str:
        return meter_html(measure(message, list(past or []), request=request, oauth_token=oauth_token, **settings))

    event: dict[str, Any] = dict(
        fn=update,
        inputs=[textbox, history],
        inputs_kwargs=by_name,
        outputs=[meter],
        preprocess=False,  # the settings reach hfchat's validation as sent, as the turn's do
        queue=False,
        trigger_mode="always_last",
        show_progress="hidden",
        api_visibility="private",
    )
    # The box's `change`: Gradio 6.31's multimodal box fires no `input` while one types (tried: the
    # meter stood still). A turn clearing the box redraws it too (one unqueued request); the
    # reply's own `settle` then draws it with the reply counted.
    triggers = [textbox.change, *(by_name[name].change for name in COUNTED if name in by_name)]  # type: ignore[attr-defined]
    gr.on(triggers, **event)

    def refresh(dependency: Any) -> None:
        dependency.then(**event)

    return Meter(refresh, update)


def _parameters(fn: Callable[..., Any]) -> list[str]:
    import inspect

    return list(inspect.signature(fn).parameters)
