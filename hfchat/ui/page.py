"""The page around the app: its <head> (image policy, storage-full banner) and the queue."""

from __future__ import annotations

import gradio as gr

from hfchat.cli import AppOptions
from hfchat.updates import ERROR_MARK

BROWSER_STORAGE_SECRET = "hfchat-browser-storage"
"""Gradio encrypts BrowserState with a key it also sends to the page, so it hides nothing from
the browser's user; a fixed one keeps saved conversations readable after the server restarts
(Gradio's default, a random key per start, would lose them). Tokens are never stored there."""


IMAGE_POLICY = "img-src 'self' data: blob:"
"""The page loads images only from the app itself (attachments, Gradio's own) and data:/blob:
URIs: a reply that names a remote image cannot make the browser fetch it (a zero-click leak of
the chat). Replies show such images as links (`hfchat.safe_markdown`); this is the backstop."""

STORAGE_NOTICE = (
    f"{ERROR_MARK} Your latest change could not be saved: this browser's storage for this site is full. "
    "What was saved before is kept. Export or delete conversations to make room."
)

PAGE_HEAD = f"""
<meta http-equiv="Content-Security-Policy" content="{IMAGE_POLICY}">
<script>
(() => {{
  // Gradio's BrowserState swallows a failed localStorage write (console only), and every later
  // save of the same list fails too: say so in the page, until that key saves again.
  const failed = new Set();
  const original = Storage.prototype.setItem;
  const notice = () => {{
    let box = document.getElementById("storage-warning");
    if (!box) {{
      box = document.createElement("div");
      box.id = "storage-warning";
      box.setAttribute("role", "alert");
      box.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:10000;padding:10px 16px;" +
        "background:#b91c1c;color:#fff;font:14px/1.4 system-ui,sans-serif;text-align:center";
      box.textContent = {STORAGE_NOTICE!r};
      document.body.appendChild(box);
    }}
    box.hidden = failed.size === 0;
  }};
  Storage.prototype.setItem = function (key, value) {{
    try {{
      original.call(this, key, value);
      if (failed.delete(key)) notice();
    }} catch (error) {{
      if (error && error.name === "QuotaExceededError") {{
        failed.add(key);
        notice();
      }}
      throw error;
    }}
  }};
}})();
</script>
"""


def queued(demo: gr.Blocks, options: AppOptions) -> gr.Blocks:
    """The queue as the app runs it: `concurrency` chats at once, at most `max_queue` waiting;
    beyond that Gradio answers at once that the app is busy (HTTP 503, "try again")."""
    return demo.queue(default_concurrency_limit=options.concurrency, max_size=options.max_queue)
