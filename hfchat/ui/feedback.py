"""How a refused action is told: a warning toast, never Gradio's red Error badge."""

import html
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.errors import HFChatError


def refused(exc: HFChatError, output: Component) -> dict[Any, Any]:
    """A refused action as a warning toast, changing nothing (`output`, any of the event's
    outputs, is skipped, and so are the others), so no component is left with Gradio's red
    "Error" badge: raising gr.Error marks every output of the event with one."""
    title = type(exc).title
    gr.Warning(html.escape(f"{title}. {exc}"), title=title)  # Gradio 6 draws every warning as "Warning"
    return {output: gr.skip()}
