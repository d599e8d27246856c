"""MCP servers' tools, as plain `Tool`s the loop runs from its worker threads.

The protocol is the maintained `mcp` package's (`ClientSession` over `streamable_http_client`
or `stdio_client`); this module adds what hfchat needs around it:

- **A synchronous face.** `MCPClient` owns one event loop in a thread of its own and one
  `ClientSession` in it. Any thread may call `tools()` or a tool's `run()`; each call is a
  future on that loop, so Stop (`cancel`) cancels the running call and returns at once, and a
  call also stops when the session dies (the server exited or went away) rather than at its
  timeout. A session found dead is reconnected once, on the next call.
- **Who gets the Hugging Face token.** Only Hugging Face's own MCP server (`is_hf_mcp`):
  `https://huggingface.co/mcp` (or a path under it, any query), or `/mcp` on the Hub
  endpoint this process uses (HF_ENDPOINT; tests point it at loopback). It gets
  `Authorization: Bearer <the caller's token>`. Nothing else ever gets a Hugging Face token:
  the httpx client here is the `mcp` package's kind, not huggingface_hub's, so nothing falls
  back to HF_TOKEN or the login file; it ignores the environment (no proxies, no .netrc); and a
  request hook drops any Authorization header bound for another URL. stdio servers start with
  the `mcp` package's short list of inherited variables (HOME, LOGNAME, PATH, SHELL, TERM,
  USER), so HF_TOKEN and HUGGINGFACEHUB_API_TOKEN reach them only when the operator puts them
  in the command line (`--mcp-stdio "HF_TOKEN=... command args"`).
- **Visitors' servers.** `check_visitor_server` refuses what a visitor may not add (anything
  but http(s) URLs; on a public deployment, URLs that reach loopback or private addresses).
  Every connection a guarded server's client opens resolves the name once, checks every
  address, and connects to a checked one (`_PinnedAsyncBackend`), as `hfchat.net` does for
  endpoints, so a name that rebinds to 127.0.0.1 after the check cannot slip through.
- **Limits.** At most MAX_TOOLS_PER_SERVER tools from one server, descriptions cut to
  MAX_DESCRIPTION_CHARS, tools whose schema is over MAX_SCHEMA_CHARS left out, results cut to
  MAX_RESULT_CHARS; connecting and listing take at most CONNECT_TIMEOUT_S, a call
  CALL_TIMEOUT_S unless the client was given another.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import shlex
import sys
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

from hfchat import net
from hfchat.errors import ConfigError, ConnectionFailedError, EndpointNotAllowedError, EndpointTimeoutError
from hfchat.tools.types import MAX_RESULT_CHARS, ToolError, ToolSpec

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp.types import CallToolResult

    from hfchat.policy import DeploymentPolicy

log = logging.getLogger(__name__)

ENV_VAR = "HFCHAT_MCP"
"""The operator's MCP server URLs, comma- or whitespace-separated (like repeated --mcp)."""

HF_MCP_URL = "https://huggingface.co/mcp"

MAX_TOOLS_PER_SERVER = 64
"""Tools taken from one server: every tool's schema goes into every prompt, and a server
listing thousands would crowd the model's context (and this process's memory) out."""

MAX_DESCRIPTION_CHARS = 2_000
"""A tool's description as the model is offered it; longer ones are cut."""

MAX_SCHEMA_CHARS = 20_000
"""A tool's input schema as JSON, at most; a tool with a bigger one is left out (a schema
cut short is no schema)."""

MAX_URL_CHARS = 2_000
"""A server URL a visitor may type."""

CONNECT_TIMEOUT_S = 20.0
"""Connecting, the MCP handshake and listing the tools, each at most this long."""

CALL_TIMEOUT_S = 120.0
"""A tool call's default limit (the loop has its own, and Stop ends it sooner)."""

CLOSE_TIMEOUT_S = 10.0
"""How long `close()` waits for the session to end: the `mcp` package gives a stdio server
2 s to exit after its stdin closes, then terminates its process tree."""

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""Tool names the chat APIs accept (OpenAI: letters, digits, _ and -; dots are common too)."""

_LAUNCHERS = frozenset({"python", "python3", "node", "npx", "uv", "uvx", "bunx", "deno", "pipx", "docker"})
_ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class MCPServer:
    """One MCP server: over streamable HTTP (`url`) or a local command over stdio (`command`,
    an argv, with `env` added to its environment and `cwd` its folder). `label` names it in
    tool-call titles; `visitor` says a visitor added it for their session; `guarded` says its
    connections must reach public addresses only (a visitor's server on a public deployment)."""

    url: str = ""
    command: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    label: str = ""
    visitor: bool = False
    guarded: bool = False

    @property
    def kind(self) -> str:
        return "stdio" if self.command else "http"

    def __repr__(self) -> str:  # never the URL's credentials or the env's values
        where = net.display(self.url) if self.url else " ".join(self.command[:1])
        return f"MCPServer({self.kind}, {self.label!r}, {where})"


def http_server(url: str, *, visitor: bool = False, guarded: bool = False) -> MCPServer:
    """An HTTP server from its URL, checked for shape (http or https, a host)."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{net.display(url) or 'An empty value'} is not an MCP server URL.",
            "Give the server's streamable HTTP address, for example https://huggingface.co/mcp "
            'or http://127.0.0.1:8000/mcp (stdio servers: --mcp-stdio "command args").',
        )
    host = parts.hostname.lower()
    label = host if parts.port is None else f"{host}:{parts.port}"
    return MCPServer(url=url, label=label, visitor=visitor, guarded=guarded)


def stdio_server(command_line: str | Sequence[str], *, cwd: str | None = None) -> MCPServer:
    """A local server from its command line (`--mcp-stdio`), split as a POSIX shell would.
    Leading NAME=value words are its environment, as in a shell: the only way a variable
    beyond the safe few (HOME, PATH, ...) reaches it, HF_TOKEN included."""
    words = shlex.split(command_line) if isinstance(command_line, str) else list(command_line)
    env: list[tuple[str, str]] = []
    while words and _ENV_ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env.append((name, value))
    if not words:
        raise ConfigError(
            "--mcp-stdio needs a command to run.",
            'Give the server\'s command line in quotes, for example --mcp-stdio "npx -y @scope/server --flag".',
        )
    return MCPServer(command=tuple(words), env=tuple(env), cwd=cwd, label=_command_label(words))


def _command_label(words: Sequence[str]) -> str:
    """The command's name; for a launcher (python -m pkg, npx pkg, uvx pkg), the thing it runs."""
    name = PurePath(words[0]).name
    if re.sub(r"[\d.]+$", "", name) not in _LAUNCHERS:
        return name
    rest = list(words[1:])
    while rest:
        word = rest.pop(0)
        if word == "-m" and rest:
            return rest[0]
        if not word.startswith("-") and word not in ("run", "x", "exec"):
            return PurePath(word).name if "/" in word and not word.startswith("@") else word
    return name


def parse_servers(
    urls: Iterable[str] = (), stdio: Iterable[str] = (), environ: Mapping[str, str] | None = None
) -> list[MCPServer]:
    """The operator's servers, from `--mcp URL` (repeatable: `urls`), `HFCHAT_MCP` in
    `environ` (default os.environ; comma- or whitespace-separated URLs) and `--mcp-stdio
    "command args"` (repeatable: `stdio`). A URL given twice counts once; labels are made unique
    (a second server on one host gets " 2"). Raises ConfigError for a malformed one."""
    env = os.environ if environ is None else environ
    given = [*urls, *re.split(r"[\s,]+", env.get(ENV_VAR, ""))]
    servers: list[MCPServer] = []
    seen: set[str] = set()
    for url in (u.strip() for u in given):
        if url and url not in seen:
            seen.add(url)
            servers.append(http_server(url))
    servers.extend(stdio_server(line) for line in stdio)
    return unique_labels(servers)


def unique_labels(servers: Sequence[MCPServer]) -> list[MCPServer]:
    """The servers with labels that tell them apart ("host", "host 2", ...)."""
    counts: dict[str, int] = {}
    out = []
    for server in servers:
        counts[server.label] = counts.get(server.label, 0) + 1
        n = counts[server.label]
        out.append(server if n == 1 else replace(server, label=f"{server.label} {n}"))
    return out


def is_hf_mcp(url: str) -> bool:
    """Hugging Face's MCP server, the one MCP server that gets the caller's token:
    https://huggingface.co/mcp, a path under it (/mcp/...), any query (?login); or /mcp on the
    Hub endpoint this process uses (HF_ENDPOINT). Not other huggingface.co paths, not its
    subdomains, not Spaces (*.hf.space, other people's servers), not http://."""
    from huggingface_hub import constants

    if not net.is_hf_service(url):
        return False
    where = net.origin(url)
    if where != ("https", "huggingface.co", 443) and where != net.origin(constants.ENDPOINT):
        return False
    base = urlsplit(constants.ENDPOINT).path.rstrip("/") if where == net.origin(constants.ENDPOINT) else ""
    path = urlsplit(url).path
    return path in (f"{base}/mcp", f"{base}/mcp/") or path.startswith(f"{base}/mcp/")


def check_visitor_server(url: str, policy: DeploymentPolicy) -> MCPServer:
    """The server a visitor asked for, or ConfigError / EndpointNotAllowedError saying why not
    and what to do: only http(s) URLs (stdio servers run commands on this machine: operator
    only), and on a public deployment none that reach loopback, private or link-local
    addresses. The returned server is `guarded` there, so every connection is checked again."""
    from hfchat.policy import internal_address

    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise ConfigError(
            f"That MCP server URL is {len(url)} characters long; the most accepted is {MAX_URL_CHARS}.",
            "Give the server's address without extra parameters.",
        )
    scheme = urlsplit(url).scheme.lower()
    if scheme and scheme not in ("http", "https") and "://" in url:
        raise ConfigError(
            f"hfchat connects to MCP servers over HTTP only, and {net.display(url)} is a {scheme}: address.",
            "Give the server's streamable HTTP URL (https://...). Servers run as local commands (stdio) can only "
            'be added by the operator, with --mcp-stdio "command args".',
        )
    server = http_server(url, visitor=True, guarded=policy.public)
    if policy.public:
        internal = internal_address(urlsplit(url).hostname or "")
        if internal is not None:
            raise EndpointNotAllowedError(
                f"This public deployment does not connect to local or private network addresses, and the MCP "
                f"server {net.display(url)} is one ({internal}).",
                "Use an MCP server reachable on the internet (its public https:// URL). The operator can add "
                "local servers with --mcp URL or --mcp-stdio.",
            )
    return server


# ------------------------------------------------------------------ connections


class _PinnedAsyncBackend(httpcore.AsyncNetworkBackend):
    """Resolves each host once and connects to what it resolved to; for a guarded server,
    refuses when any of those addresses is internal (the async twin of hfchat.net's)."""

    def __init__(self, guarded: bool) -> None:
        self._guarded = guarded
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        import anyio.to_thread

        try:
            addresses = await anyio.to_thread.run_sync(net.resolve, host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: the name does not resolve ({exc})") from exc
        if self._guarded:
            internal = [a for a in addresses if net.is_internal(a)]
            if internal:
                raise httpcore.ConnectError(
                    f"{host} resolves to a local or private address ({internal[0]}), which this public deployment "
                    "does not connect to"
                )
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host}: no address to connect to")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedAsyncTransport(httpx.AsyncHTTPTransport):
    """httpx's async transport over `_PinnedAsyncBackend` (its pool rebuilt with that backend,
    as hfchat.net's GuardedTransport does for the sync client)."""

    def __init__(self, guarded: bool) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=_PinnedAsyncBackend(guarded), max_connections=20
        )


def _http_client(server: MCPServer, hf_token: str | None) -> httpx.AsyncClient:
    """The httpx client one HTTP session uses: the caller's token for HF's MCP server only."""
    headers = {"Authorization": f"Bearer {hf_token}"} if hf_token and is_hf_mcp(server.url) else {}

    async def no_stray_credentials(request: httpx.Request) -> None:
        # Belt and braces: only HF's MCP server may be sent the header set above.
        if "authorization" in request.headers and not is_hf_mcp(str(request.url)):
            del request.headers["authorization"]

    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=CALL_TIMEOUT_S + 60),
        transport=_PinnedAsyncTransport(server.guarded),
        trust_env=False,
        follow_redirects=False,
        event_hooks={"request": [no_stray_credentials]},
    )


def stdio_environment(server: MCPServer) -> dict[str, str]:
    """What a stdio server's process gets: the `mcp` package's safe few inherited variables
    (HOME, LOGNAME, PATH, SHELL, TERM, USER) plus the operator's NAME=value words."""
    from mcp.client.stdio import get_default_environment

    return {**get_default_environment(), **dict(server.env)}


@contextlib.asynccontextmanager
async def _transport(server: MCPServer, hf_token: str | None) -> AsyncIterator[tuple[Any, Any]]:
    if server.command:
        from mcp.client.stdio import StdioServerParameters, stdio_client

        params = StdioServerParameters(
            command=server.command[0], args=list(server.command[1:]), env=stdio_environment(server), cwd=server.cwd
        )
        errlog = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
        async with stdio_client(params, errlog=errlog) as (read, write):
            yield read, write
    else:
        from mcp.client.streamable_http import streamable_http_client

        async with (
            _http_client(server, hf_token) as client,
            streamable_http_client(server.url, http_client=client) as (read, write, _),
        ):
            yield read, write


# ------------------------------------------------------------------ results


def result_text(result: CallToolResult) -> str:
    """A tool result as the text the model reads: text parts joined, other parts summarised
    ("[image: image/png, 12 KB]"), structured content as JSON when nothing else came; cut to
    MAX_RESULT_CHARS."""
    from mcp import types

    parts: list[str] = []
    for item in result.content:
        if isinstance(item, types.TextContent):
            parts.append(item.text)
        elif isinstance(item, (types.ImageContent, types.AudioContent)):
            kind = "image" if isinstance(item, types.ImageContent) else "audio"
            parts.append(f"[{kind}: {item.mimeType}, {_size(_decoded_length(item.data))}]")
        elif isinstance(item, types.ResourceLink):
            parts.append(f"[resource: {item.uri}{f' ({item.mimeType})' if item.mimeType else ''}]")
        elif isinstance(item, types.EmbeddedResource):
            resource = item.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(resource.text)
            else:
                parts.append(
                    f"[resource: {resource.uri}, {resource.mimeType or 'binary'}, "
                    f"{_size(_decoded_length(resource.blob))}]"
                )
        else:  # a content type newer than this code
            parts.append(f"[{getattr(item, 'type', 'content')}]")
    if not any(p.strip() for p in parts) and result.structuredContent is not None:
        parts = [json.dumps(result.structuredContent, ensure_ascii=False)]
    return truncated("\n".join(parts))


def truncated(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit} more characters cut]"


def _decoded_length(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=") if data else 0


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1024 else f"{n / 1024:.0f} KB" if n < 1024**2 else f"{n / 1024**2:.1f} MB"


# ------------------------------------------------------------------ the client


@dataclass(frozen=True)
class MCPTool:
    """One of a server's tools, runnable from any thread (the `Tool` protocol)."""

    spec: ToolSpec
    client: MCPClient = field(repr=False, compare=False)

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        return self.client.call(self.spec.name, arguments, cancel)


class MCPClient:
    """One server's session, usable from several threads at once.

    `hf_token` is the caller's Hugging Face token: sent to Hugging Face's MCP server only
    (`is_hf_mcp`), ignored for every other server. For HF's server, keep one client per
    caller (key it by `hfchat.tokens.Fingerprinter`, never the token). Nothing connects until
    the first `tools()` or call; `close()` ends the session, its thread and a stdio process.
    """

    def __init__(
        self,
        server: MCPServer,
        hf_token: str | None = None,
        *,
        timeout_s: float = CALL_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.server = server
        self._token = hf_token if server.url and is_hf_mcp(server.url) else None
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: ClientSession | None = None
        self._held: asyncio.Task[None] | None = None  # the task that holds the session open
        self._release: asyncio.Event | None = None
        self._tools: list[MCPTool] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"MCPClient({self.server!r})"

    @property
    def label(self) -> str:
        return self.server.label

    # -- the loop thread and the session
    def _start_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"hfchat-mcp-{self.label}", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

    def _alive(self) -> bool:
        return self._session is not None and self._held is not None and not self._held.done()

    def _connect(self) -> ClientSession:
        """The live session; opens one (again, when the last one died). Call with _lock held."""
        if self._closed:
            raise ConnectionFailedError(f"The MCP server {self.label} was closed.", "Add the server again.")
        if self._alive():
            assert self._session is not None
            return self._session
        loop = self._start_loop()
        ready: concurrent.futures.Future[ClientSession] = concurrent.futures.Future()

        async def start() -> None:
            self._release = asyncio.Event()
            self._held = asyncio.create_task(self._hold(ready, self._release))

        asyncio.run_coroutine_threadsafe(start(), loop).result()
        try:
            self._session = ready.result(timeout=self.connect_timeout_s + 5)
        except concurrent.futures.TimeoutError:
            self._stop_held()
            raise EndpointTimeoutError(
                f"The MCP server {self.label} did not finish connecting within {self.connect_timeout_s:.0f} s.",
                "Check that the server is running and answering, then try again.",
            ) from None
        return self._session

    async def _hold(self, ready: concurrent.futures.Future[ClientSession], release: asyncio.Event) -> None:
        """Opens the transport and the session, hands the session over, and keeps both open
        until `release` is set or the transport fails; enter and exit stay in this one task,
        as anyio's cancel scopes require."""
        from mcp import ClientSession

        try:
            async with (
                _transport(self.server, self._token) as (read, write),
                ClientSession(read, write, read_timeout_seconds=timedelta(seconds=self.timeout_s)) as session,
            ):
                await asyncio.wait_for(session.initialize(), self.connect_timeout_s)
                ready.set_result(session)
                await release.wait()
        except BaseException as exc:  # handed to the thread that waits for the session
            if not ready.done():
                ready.set_exception(_connect_error(self.server, exc))
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s: the session ended: %s", self.label, _describe(exc))
            if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                raise

    def _stop_held(self) -> None:
        """End the session's task (set its release, then wait for it to unwind)."""
        loop, held, release = self._loop, self._held, self._release
        self._session = None
        if loop is None or held is None or release is None:
            return

        async def stop() -> None:
            release.set()
            done, _ = await asyncio.wait({held}, timeout=CLOSE_TIMEOUT_S)
            if not done:
                held.cancel()
                await asyncio.wait({held}, timeout=CLOSE_TIMEOUT_S)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=2 * CLOSE_TIMEOUT_S + 1)

    # -- tools
    def tools(self) -> list[MCPTool]:
        """The server's tools (listed once, then cached), within this module's limits.
        Raises ConnectionFailedError or EndpointTimeoutError when the server can't be reached."""
        with self._lock:
            if self._tools is not None:
                return list(self._tools)
            session = self._connect()
            loop = self._loop
            assert loop is not None
            listing = asyncio.wait_for(self._list(session), self.connect_timeout_s)
            future = asyncio.run_coroutine_threadsafe(listing, loop)
            try:
                listed = future.result(timeout=self.connect_timeout_s + 5)
            except (TimeoutError, asyncio.TimeoutError, concurrent.futures.TimeoutError):
                future.cancel()
                raise EndpointTimeoutError(
                    f"The MCP server {self.label} did not list its tools within {self.connect_timeout_s:.0f} s.",
                    "Check that the server is working, then try again.",
                ) from None
            self._tools = [MCPTool(spec, self) for spec in self._specs(listed)]
            return list(self._tools)

    async def _list(self, session: ClientSession) -> list[Any]:
        from mcp import types
        from mcp.shared.exceptions import McpError

        listed: list[Any] = []
        cursor: str | None = None
        try:
            while len(listed) <= MAX_TOOLS_PER_SERVER:
                params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
                page = await session.list_tools(params=params)
                listed.extend(page.tools)
                cursor = page.nextCursor
                if not cursor:
                    break
        except McpError as exc:
            raise ConnectionFailedError(
                f"The MCP server {self.label} refused to list its tools: {exc.error.message}",
                "Check the server's own log; the tools of the other servers are still offered.",
            ) from None
        return listed

    def _specs(self, listed: Sequence[Any]) -> list[ToolSpec]:
        specs: list[ToolSpec] = []
        for tool in listed:
            if len(specs) >= MAX_TOOLS_PER_SERVER:
                log.warning("MCP server %s lists over %d tools; the rest are left out", self.label, len(specs))
                break
            if not _NAME.match(tool.name) or any(s.name == tool.name for s in specs):
                log.warning("MCP server %s: tool name %r is not usable; left out", self.label, tool.name[:80])
                continue
            schema = dict(tool.inputSchema or {})
            schema.setdefault("type", "object")
            if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
                log.warning(
                    "MCP server %s: tool %s has a schema over %d characters; left out",
                    self.label,
                    tool.name,
                    MAX_SCHEMA_CHARS,
                )
                continue
            description = (tool.description or tool.title or "").strip()
            if len(description) > MAX_DESCRIPTION_CHARS:
                description = description[: MAX_DESCRIPTION_CHARS - 1] + "…"
            specs.append(ToolSpec(tool.name, description, schema, server=self.label))
        return specs

    # -- calls
    def call(self, name: str, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        """Run one tool: its text, or ToolError (the tool's own error, a timeout, a dead
        server). Returns within about 0.1 s of `cancel` being set."""
        where = f"MCP server {self.label}"
        if cancel.is_set():
            raise ToolError(f"{name} on {where} was stopped before it started.")
        try:
            with self._lock:
                session = self._connect()
                loop, held = self._loop, self._held
        except (ConnectionFailedError, EndpointTimeoutError) as exc:
            raise ToolError(f"{name}: {exc.message}") from None
        assert loop is not None and held is not None
        future = asyncio.run_coroutine_threadsafe(self._call(session, held, name, dict(arguments)), loop)
        deadline = self.timeout_s + 5  # the session's own read timeout comes first
        waited = 0.0
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                waited += 0.1
            except concurrent.futures.CancelledError:
                raise ToolError(f"{name} on {where} was stopped.") from None
            if cancel.is_set():
                future.cancel()
                raise ToolError(f"{name} on {where} was stopped.")
            if waited > deadline:
                future.cancel()
                raise ToolError(f"{name} on {where} timed out after {self.timeout_s:.0f} s.")

    async def _call(
        self, session: ClientSession, held: asyncio.Task[None], name: str, arguments: dict[str, Any]
    ) -> str:
        """The call, raced against the session's end, so a server that dies mid-call is
        reported at once rather than at the timeout."""
        from mcp.shared.exceptions import McpError

        where = f"MCP server {self.label}"
        call = asyncio.ensure_future(session.call_tool(name, arguments))
        try:
            await asyncio.wait({call, held}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not call.done():
                call.cancel()
        if not call.done() or call.cancelled():
            raise ToolError(
                f"{name}: the {where} disconnected during the call; it will be reconnected on the next call."
            )
        try:
            result = call.result()
        except McpError as exc:
            if exc.error.code == httpx.codes.REQUEST_TIMEOUT:
                raise ToolError(f"{name} on {where} timed out after {self.timeout_s:.0f} s.") from None
            raise ToolError(f"{name} on {where} failed: {exc.error.message}") from None
        except (RuntimeError, httpx.HTTPError, OSError) as exc:  # the package's own checks, the network
            raise ToolError(f"{name} on {where} failed: {_describe(exc)}") from None
        text = result_text(result)
        if result.isError:
            raise ToolError(f"{name} on {where} returned an error: {text or 'no details'}")
        return text

    # -- the end
    def close(self) -> None:
        """End the session (a stdio server's process with it) and the loop's thread."""
        with self._lock:
            self._closed = True
            self._stop_held()
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=CLOSE_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> MCPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    """An exception (or the first real one in a group) as one readable, credential-free line."""
    while getattr(exc, "exceptions", None):  # an exception group (anyio's task groups raise them)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    text = str(exc) or type(exc).__name__
    return net.scrub(text)[:500]


def _connect_error(server: MCPServer, exc: BaseException) -> Exception:
    """Why a connection failed, as an HFChatError with what to do."""
    if isinstance(exc, ConnectionFailedError | EndpointTimeoutError):
        return exc
    if isinstance(exc, TimeoutError):
        return EndpointTimeoutError(
            f"The MCP server {server.label} did not answer the MCP handshake in time.",
            "Check that the URL is the server's streamable HTTP endpoint (often ending in /mcp).",
        )
    what = _describe(exc)
    if server.command:
        hint = "Check that the command runs and speaks MCP over stdio (try it in a terminal)."
    else:
        hint = "Check the URL (the streamable HTTP endpoint, often ending in /mcp) and that the server is running."
    return ConnectionFailedError(f"Could not connect to the MCP server {server.label}: {what}", hint)


__all__ = [
    "CALL_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "ENV_VAR",
    "HF_MCP_URL",
    "MAX_DESCRIPTION_CHARS",
    "MAX_SCHEMA_CHARS",
    "MAX_TOOLS_PER_SERVER",
    "MCPClient",
    "MCPServer",
    "MCPTool",
    "check_visitor_server",
    "http_server",
    "is_hf_mcp",
    "parse_servers",
    "result_text",
    "stdio_environment",
    "stdio_server",
    "unique_labels",
]
