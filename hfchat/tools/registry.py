"""Which tools a turn offers: the operator's built-in tools and MCP servers, and a visitor's own
MCP server for their session only (`ToolChoice` is what the settings panel or `/chat` asked for).

The rules live here: on a public deployment a visitor may switch on only the built-in tools the
operator enabled (`--tools`), their MCP URL goes through the SSRF guard, and stdio servers are
the operator's alone. A server that cannot be reached costs its tools for this turn, with a
notice, never the turn. Gradio-free.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hfchat.errors import ConfigError
from hfchat.settings import BUILTIN_TOOLS
from hfchat.tools.types import Tool, ToolError

log = logging.getLogger(__name__)

MAX_VISITOR_SERVERS = 64
"""Visitors' MCP connections kept at once (least recently used closed first)."""

_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class ToolChoice:
    """What one turn asked for: built-in tools by name, the MCP tools by name (None: all of
    them), and the visitor's own MCP server URL ("" none)."""

    builtin: tuple[str, ...] = ()
    mcp: tuple[str, ...] | None = None
    visitor_url: str = field(default="", repr=False)

    @classmethod
    def of(cls, tools: Any, mcp_tools: Any, mcp_url: Any) -> ToolChoice:
        """From the settings' values as `/chat` and the panel send them (lists, text or None)."""

        def names(value: Any) -> tuple[str, ...]:
            if isinstance(value, str):
                return tuple(n.strip() for n in value.split(",") if n.strip())
            return tuple(str(n) for n in value or ())

        return cls(names(tools), None if mcp_tools is None else names(mcp_tools), str(mcp_url or "").strip())

    @property
    def any(self) -> bool:
        return bool(self.builtin) or self.mcp is None or bool(self.mcp) or bool(self.visitor_url)


def tool_name(name: str, taken: Mapping[str, Any]) -> str:
    """`name` as models and OpenAI servers accept it (letters, digits, _ and -, 64 at most),
    made unique among `taken` with a numbered suffix."""
    base = _NAME.sub("_", name)[:60] or "tool"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


@dataclass
class Offered:
    """The tools of one turn by the name the model sees, and notices for the reply."""

    tools: dict[str, Tool] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


ServerTools = Callable[[str | None], Sequence[Tool]]
"""One MCP server's tools for a caller's HF token (`hfchat.tools.mcp`); raises ToolError when
the server cannot be reached or listed."""


@dataclass
class ToolRegistry:
    """The deployment's tools. `builtin` makes built-in tools by name; `servers` are the
    operator's MCP servers (label -> their tools); `visitor` connects a visitor's server URL
    (it checks the URL against the deployment's policy first)."""

    builtin: Callable[[Sequence[str]], Mapping[str, Tool]] | None = None
    allowed_builtin: tuple[str, ...] = BUILTIN_TOOLS
    """The built-in tools visitors may switch on: all of them privately, the operator's `--tools` in public."""
    servers: Mapping[str, ServerTools] = field(default_factory=dict)
    visitor: Callable[[str], ServerTools] | None = None
    _visitors: OrderedDict[tuple[str, str], ServerTools] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, choice: ToolChoice) -> None:
        """Refuse built-in tools this deployment does not offer, naming those it does."""
        refused = [name for name in choice.builtin if name not in self.allowed_builtin]
        if refused:
            offered = ", ".join(self.allowed_builtin) or "none"
            raise ConfigError(
                f"tools: this deployment does not offer {', '.join(refused)}.",
                f"Choose among: {offered} (the operator enables tools with --tools).",
                field="tools",
            )
        if choice.visitor_url and self.visitor is None:
            raise ConfigError("mcp_url: this deployment does not connect to visitors' MCP servers.", field="mcp_url")

    def offered(self, choice: ToolChoice, session: str | None, hf_token: str | None) -> Offered:
        """The tools for one turn. Raises ConfigError for a refused choice (before anything
        runs); a server that fails to list its tools becomes a notice."""
        self.check(choice)
        out = Offered()
        if choice.builtin and self.builtin is not None:
            for name, tool in self.builtin(choice.builtin).items():
                out.tools[tool_name(name, out.tools)] = tool
        servers: list[tuple[str, ServerTools]] = list(self.servers.items())
        if choice.visitor_url and self.visitor is not None:
            servers.append((choice.visitor_url, self._visitor(session or "", choice.visitor_url)))
        for label, listing in servers:
            try:
                tools = listing(hf_token)
            except ToolError as exc:
                shown = "your MCP server" if label == choice.visitor_url else f"the MCP server {label}"
                out.notices.append(f"*The tools of {shown} are not offered this turn: {exc.message}*")
                continue
            for tool in tools:
                if choice.mcp is None or tool.spec.name in choice.mcp or label == choice.visitor_url:
                    out.tools[tool_name(tool.spec.name, out.tools)] = tool
        return out

    def _visitor(self, session: str, url: str) -> ServerTools:
        """A visitor's server, connected once per session and URL (the policy checks it first)."""
        assert self.visitor is not None
        key = (session, url)
        with self._lock:
            if key in self._visitors:
                self._visitors.move_to_end(key)
                return self._visitors[key]
        listing = self.visitor(url)  # raises ConfigError for a URL the policy refuses
        with self._lock:
            self._visitors[key] = listing
            while len(self._visitors) > MAX_VISITOR_SERVERS:
                _, dropped = self._visitors.popitem(last=False)
                close = getattr(dropped, "close", None)
                if close is not None:
                    close()
        return listing


@dataclass(frozen=True)
class Listed:
    """One server's tools as the settings panel lists them, or why it could not list them."""

    label: str
    tools: tuple[tuple[str, str], ...] = ()
    """(name, description) of each tool."""
    error: str = ""


def _describe(tools: Sequence[Tool]) -> tuple[tuple[str, str], ...]:
    return tuple((tool.spec.name, " ".join(tool.spec.description.split())[:200]) for tool in tools)


def catalog(registry: ToolRegistry, hf_token: str | None) -> list[Listed]:
    """The operator's MCP servers and their tools, for the settings panel."""
    out = []
    for label, listing in registry.servers.items():
        try:
            out.append(Listed(label, _describe(listing(hf_token))))
        except ToolError as exc:
            out.append(Listed(label, error=exc.message))
    return out


def visitor_catalog(registry: ToolRegistry, session: str, url: str, hf_token: str | None) -> Listed:
    """A visitor's MCP server and its tools (ConfigError when this deployment refuses the URL)."""
    registry.check(ToolChoice(visitor_url=url))
    try:
        return Listed(url, _describe(registry._visitor(session, url)(hf_token)))
    except ToolError as exc:
        return Listed(url, error=exc.message)


def mcp_listing(server: Any, timeout_s: float, fingerprint: Callable[[str | None], str]) -> ServerTools:
    """An MCP server's tools for a caller (`hfchat.tools.mcp`): one client per server, or for
    Hugging Face's own server one per caller's token (kept by its fingerprint, never the token),
    since only that server gets the token. Unreachable: a ToolError naming why."""
    from hfchat.errors import HFChatError
    from hfchat.tools.mcp import MCPClient, is_hf_mcp

    clients: OrderedDict[str, Any] = OrderedDict()
    lock = threading.Lock()
    per_caller = bool(server.url) and is_hf_mcp(server.url)

    def listing(hf_token: str | None) -> Sequence[Tool]:
        key = fingerprint(hf_token) if per_caller else ""
        with lock:
            client = clients.get(key)
            if client is None:
                client = clients[key] = MCPClient(server, hf_token if per_caller else None, timeout_s=timeout_s)
                while len(clients) > MAX_VISITOR_SERVERS:
                    clients.popitem(last=False)[1].close()
        try:
            return client.tools()
        except HFChatError as exc:
            raise ToolError(" ".join(filter(None, [exc.message, exc.hint]))) from None

    def close() -> None:
        with lock:
            for client in clients.values():
                client.close()
            clients.clear()

    listing.close = close  # type: ignore[attr-defined]
    return listing


def deployment_registry(
    enabled: Sequence[str],
    public: bool,
    policy: Any,
    mcp_urls: Sequence[str] = (),
    mcp_commands: Sequence[str] = (),
    timeout_s: float = 30.0,
    fingerprint: Callable[[str | None], str] = lambda token: "",
) -> ToolRegistry:
    """The tools of this deployment, from its flags: built-in tools (all may be switched on
    privately; on a public deployment only those --tools enabled), the operator's MCP servers
    (--mcp, --mcp-stdio) and visitors' HTTP servers, checked against `policy` (the SSRF guard
    on a public deployment). Nothing connects until a turn or the settings panel asks."""
    from hfchat.tools.builtin import builtin_tools
    from hfchat.tools.mcp import check_visitor_server, parse_servers

    servers = parse_servers(mcp_urls, mcp_commands, environ={})
    listings = {server.label: mcp_listing(server, timeout_s, fingerprint) for server in servers}

    def visitor(url: str) -> ServerTools:
        return mcp_listing(check_visitor_server(url, policy), timeout_s, fingerprint)

    allowed = tuple(enabled) if public else BUILTIN_TOOLS
    return ToolRegistry(
        builtin=lambda names: builtin_tools(names),
        allowed_builtin=allowed,
        servers=listings,
        visitor=visitor,
    )
