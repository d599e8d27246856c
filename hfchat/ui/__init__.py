"""hfchat's Gradio UI: every module that imports gradio lives in this package.

One module per panel (chat, compare, conversations, presets, settings controls), the page
around them (`page`), and `app`, which builds them into one `gr.Blocks` and starts it.
"""

from hfchat.ui.app import build_app, main

__all__ = ["build_app", "main"]
