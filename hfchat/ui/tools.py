"""The settings panel's Tools section: a checkbox per built-in tool the deployment offers, a
checkbox per tool of the operator's MCP servers (listed when the page loads), the visitor's own
MCP server URL, and a status line that says what each server offers or why it offers nothing.

Every handler answers with the status line, never an exception: a server that is down or a URL
this deployment refuses is said there (no component ever shows Gradio's "Error" badge).
"""

import html
import logging
from collections.abc import Sequence
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.chat import ChatService
from hfchat.errors import HFChatError
from hfchat.tokens import env_token, resolve_token
from hfchat.tools.registry import Listed, catalog, visitor_catalog

log = logging.getLogger(__name__)


def builtin_choices(service: ChatService) -> list[tuple[str, str]]:
    """(label, name) of each built-in tool visitors may switch on: its name and what it does."""
    registry = service.tools
    if registry.builtin is None:
        return []
    tools = registry.builtin(registry.allowed_builtin)
    return [(f"{name} — {_first_sentence(tool.spec.description)}", name) for name, tool in tools.items()]


def _first_sentence(text: str) -> str:
    sentence = " ".join(text.split()).split(". ")[0].rstrip(".")
    return sentence[:90]


def mcp_choices(listed: Sequence[Listed]) -> list[tuple[str, str]]:
    """(label, name) of each tool of the operator's MCP servers: its name, server and what it does."""
    return [
        (f"{name} ({entry.label}) — {desc[:70]}" if desc else f"{name} ({entry.label})", name)
        for entry in listed
        for name, desc in entry.tools
    ]


def startup_catalog(service: ChatService) -> list[Listed]:
    """The operator's MCP servers' tools, listed once as the page is built (so the panel and
    `/chat` offer them all by default), with the server's own token; each logged."""
    listed = catalog(service.tools, env_token()) if service.tools.servers else []
    for entry in listed:
        if entry.error:
            log.warning("MCP server %s: not reachable (%s); its tools are listed when it is", entry.label, entry.error)
        else:
            log.info(
                "MCP server %s: %d tools (%s)", entry.label, len(entry.tools), ", ".join(n for n, _ in entry.tools)
            )
    return listed


def status_lines(listed: Sequence[Listed], visitor: Listed | None = None, refused: str = "") -> str:
    """The Tools section's status, one line per server (markdown, escaped)."""
    lines = []
    for entry in [*listed, *([visitor] if visitor else [])]:
        where = "your server" if entry is visitor else f"`{html.escape(entry.label)}`"
        if entry.error:
            lines.append(f"- {where}: not reachable ({html.escape(entry.error)})")
        else:
            names = ", ".join(html.escape(name) for name, _ in entry.tools) or "no tools"
            lines.append(f"- {where}: {len(entry.tools)} tool{'s' if len(entry.tools) != 1 else ''} ({names})")
    if refused:
        lines.append(f"- your server: {html.escape(refused)}")
    return "\n".join(lines)


def tools_status() -> gr.Markdown:
    """The Tools section's status line (rendered where it is called: under the section's controls)."""
    return gr.Markdown("", elem_id="tools-status")


def wire_tools(demo: gr.Blocks, controls: dict[str, Component], status: gr.Markdown, service: ChatService) -> None:
    """Fill the Tools section's choices and keep its status line; `controls` are the panel's."""
    url = controls["mcp_url"]
    assert isinstance(url, gr.Textbox)
    has_servers = bool(service.tools.servers)

    def load(hf_token: str | None, request: gr.Request, oauth_token: gr.OAuthToken | None) -> dict[Component, Any]:
        """The servers' state for this visitor (Hugging Face's MCP server lists by their token)."""
        token = resolve_token(hf_token, getattr(oauth_token, "token", None))
        return {status: status_lines(catalog(service.tools, token) if has_servers else [])}

    def connect(
        mcp_url: str | None, hf_token: str | None, request: gr.Request, oauth_token: gr.OAuthToken | None
    ) -> dict[Component, Any]:
        token = resolve_token(hf_token, getattr(oauth_token, "token", None))
        listed = catalog(service.tools, token) if has_servers else []
        address = str(mcp_url or "").strip()
        if not address:
            return {status: status_lines(listed)}
        session = str(getattr(request, "session_hash", "") or "")
        try:
            return {status: status_lines(listed, visitor_catalog(service.tools, session, address, token))}
        except HFChatError as exc:
            return {status: status_lines(listed, refused=f"{exc.message} {exc.hint}".strip())}

    token_box = controls["hf_token"]
    quiet: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")
    demo.load(load, inputs=[token_box], outputs=[status], **quiet)
    url.submit(connect, inputs=[url, token_box], outputs=[status], show_progress="hidden", api_visibility="private")
    url.blur(connect, inputs=[url, token_box], outputs=[status], show_progress="hidden", api_visibility="private")
