"""The page around the app: its look (theme, CSS, <head>: image policy, storage-full banner),
the model header, the two side panels (conversations left, settings right) and the queue."""

from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.cli import AppOptions
from hfchat.header import HEADER_SETTINGS, model_header
from hfchat.ui.meter import METER_CSS
from hfchat.updates import ERROR_MARK, FOOTER_MARKS

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


NARROW_PX = 768
"""Below this width (a phone; Gradio's own sidebar breakpoint, where a panel covers the whole
screen) the page opens on the chat, with both side panels closed."""

THEME = gr.themes.Default(primary_hue="indigo", secondary_hue="slate", radius_size="md")

PAGE_CSS = """
/* The chat fills the window: the tabs, the Chat tab and its column grow; the message box
   stays at the bottom. */
#page-tabs { flex-grow: 1; display: flex; flex-direction: column; min-height: 0; }
#page-tabs > .tabitem, #chat-tab { flex-grow: 1; display: flex; flex-direction: column; min-height: 0; }
#chat-tab > .column, #chat-tab > div { flex-grow: 1; min-height: 0; }
/* ...and no further: the page's own column is as tall as the browser's window, and the chat
   window takes what is left (basis 0). Without the bound, once Continue had shown and hidden
   again, the window grew with each reply and pushed the box (and Stop) below the fold. */
.sidebar-parent:has(#page-tabs) { height: 100dvh; }
main:has(#page-tabs), .column:has(> #page-tabs) { min-height: 0 !important; }
/* overflow: hidden: while a long reply streams in fast the messages' own scroller can outgrow
   the window for a frame, over the box, where it took the click meant for Stop (seen in CI). */
#chat-window { flex: 1 1 0% !important; min-height: 240px; overflow: hidden; }
/* The chat's share/copy/trash toolbar sits in its own strip over the messages, not on them. */
#chat-window .top-panel, #chat-window .icon-button-wrapper.top-panel {
  position: static; justify-content: flex-end; margin: 0; padding: 2px 4px;
}
/* An attached document's chip (`hfchat.ui.render`): a file card in the user's message. */
#chat-window .doc-chip {
  display: inline-flex; align-items: baseline; gap: 8px; max-width: 100%; padding: 6px 12px 6px 10px;
  border: 1px solid var(--border-color-primary); border-left: 4px solid var(--color-accent); border-radius: 10px;
  background: var(--background-fill-primary);
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
}
#chat-window .doc-chip b { overflow: hidden; text-overflow: ellipsis; }
#chat-window .doc-chip small { color: var(--body-text-color-subdued); white-space: nowrap; }
/* Continue, over the message box under a reply cut by length: small, centred, never full width. */
#chat-continue { align-self: center; width: auto; min-width: 0; flex-grow: 0; margin: 4px auto; }
/* The one-line model header: a quiet button that opens the settings. */
#model-header {
  align-self: flex-start; width: auto; max-width: 100%; min-width: 0; padding: 4px 10px;
  font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  background: transparent; border: none; box-shadow: none;
}
#model-header:hover { background: var(--background-fill-secondary); }
/* The preset dropdown's text stops before its arrow. */
#preset-choice input { padding-right: 2.25rem; text-overflow: ellipsis; }
"""


def _footers(inner: str = "") -> str:
    """The CSS selector of every footer message (`inner`: of an element inside each)."""
    return ", ".join(
        f'[data-testid="bot"][aria-label^="bot\'s message: {mark}"] {inner}'.strip() for mark in FOOTER_MARKS
    )


PAGE_CSS += f"""
/* The speed footer: one line at desktop widths, small and wrapped tightly on a phone. */
{_footers()} {{ font-size: var(--text-sm); color: var(--body-text-color-subdued); }}
{_footers("p")} {{ white-space: nowrap; overflow: hidden; text-overflow: ellipsis; margin: 0; }}
@media (max-width: 767px) {{
  {_footers()} {{ font-size: var(--text-xs); line-height: 1.3; }}
  {_footers("p")} {{ white-space: normal; }}
  .gradio-container {{ padding-left: 4px !important; padding-right: 4px !important; }}
}}
"""
"""The page's CSS. A footer is told by its mark at the start of the message's aria-label
(Gradio's own "bot's message: <text>"), as the page carries no metadata id."""

PAGE_CSS += METER_CSS

PAGE_LOOK: dict[str, Any] = {"theme": THEME, "css": PAGE_CSS, "head": PAGE_HEAD}
"""What `launch` takes for the page's look (Gradio 6 takes these at launch, not in Blocks)."""


def model_header_button(options: AppOptions, controls: dict[str, Component]) -> gr.Button:
    """The one-line header naming the model, backend and provider / 4-bit
    (`hfchat.header.model_header`), redrawn whenever one of those settings changes."""
    initial = options.sidebar.model_dump(mode="json")
    header = gr.Button(model_header(initial), elem_id="model-header", size="sm", variant="secondary")
    names = [name for name in HEADER_SETTINGS if name in controls]

    def redraw(*values: Any) -> str:
        return model_header(dict(zip(names, values, strict=True)))

    gr.on(
        [controls[name].change for name in names],  # type: ignore[attr-defined]
        redraw,
        [controls[name] for name in names],
        header,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    return header


def wire_panels(
    demo: gr.Blocks,
    conversations: gr.Sidebar,
    settings: gr.Sidebar,
    header: gr.Button,
    chat_tab: gr.Tab,
    compare: gr.Tab,
) -> None:
    """The side panels: both close on a narrow screen when the page opens; the header opens
    the settings; the settings close while the Compare tab is shown (they don't apply there)
    and come back, as they were, on the Chat tab."""
    width = gr.Number(visible=False)
    settings_open = gr.State(True)
    """Whether the visitor has the settings panel open on the Chat tab."""
    quick: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")

    def opened(px: float | None) -> dict[Any, Any]:
        if px is not None and px < NARROW_PX:
            return {conversations: gr.Sidebar(open=False), settings: gr.Sidebar(open=False), settings_open: False}
        return {conversations: gr.skip(), settings: gr.skip(), settings_open: gr.skip()}

    demo.load(opened, width, [conversations, settings, settings_open], js="() => window.innerWidth", **quick)
    header.click(lambda: (gr.Sidebar(open=True), True), None, [settings, settings_open], **quick)
    settings.expand(lambda: True, None, settings_open, **quick)
    settings.collapse(lambda: False, None, settings_open, **quick)
    compare.select(lambda: gr.Sidebar(open=False), None, settings, **quick)
    chat_tab.select(lambda was_open: gr.Sidebar(open=bool(was_open)), settings_open, settings, **quick)
