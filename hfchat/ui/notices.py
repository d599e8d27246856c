"""Notices at the top of the page, shown as it loads: today, that the Hub can't be reached."""

import gradio as gr

from hfchat.cli import AppOptions
from hfchat.offline import offline_notice

NOTICE_ID = "offline-notice"


def wire_notices(demo: gr.Blocks, options: AppOptions) -> gr.Markdown:
    """A banner, hidden until the page loads and then shown only if the starting model needs
    the Hub and the Hub can't be reached (`hfchat.offline.offline_notice`, a probe of at
    most 3 s, shared by the page loads of 15 s). Call it where the banner should sit."""
    banner = gr.Markdown(visible=False, elem_id=NOTICE_ID)

    def check() -> gr.Markdown:
        text = offline_notice(options.sidebar)
        return gr.Markdown(value=text, visible=bool(text))

    demo.load(check, outputs=banner, show_progress="hidden", queue=False, api_visibility="private")
    return banner
