"""A real MCP server for offline tests, built with the `mcp` package's FastMCP.

    python -m hfchat.testing.mcp_server --http PORT [--record FILE]   # streamable HTTP, 127.0.0.1:PORT/mcp
    python -m hfchat.testing.mcp_server --stdio [--record FILE]

Tools: `add(a, b)`, `slow(seconds)` (sleeps: for Stop tests), `fail(message)` (raises, so the
result has isError), `whoami()` (the transport, and whether an Authorization header came: never
its value), `picture()` (one PNG image and one line of text).

Over HTTP every request's headers are appended to the record file (`--record`, or
`HFCHAT_MCP_RECORD`) as one JSON object a line, so a test can assert which credentials reached
the server. Over stdio the file gets one line at start-up: the process's id and the names (only)
of the environment variables it was given, so a test can see what the client passed down and
that the process is gone after the client closed.

`MCPServerProcess` starts and stops it from a test, on a free loopback port.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server.fastmcp import Context, FastMCP, Image

from hfchat.testing.servers import free_port

if TYPE_CHECKING:
    from typing import Self

    from starlette.types import ASGIApp, Receive, Scope, Send

RECORD_ENV = "HFCHAT_MCP_RECORD"
NAME = "hfchat-test-mcp"

# The smallest valid PNG: 1x1, transparent.
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def build(transport: str) -> FastMCP:
    """The FastMCP server and its tools; `transport` is what `whoami` reports."""
    server = FastMCP(NAME, log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers and return their sum."""
        return a + b

    @server.tool()
    async def slow(seconds: float) -> str:
        """Wait for the given number of seconds, then say so."""
        await asyncio.sleep(seconds)
        return f"waited {seconds} s"

    @server.tool()
    def fail(message: str) -> str:
        """Always fails, with the given message."""
        raise ValueError(message)

    @server.tool()
    def whoami(ctx: Context) -> str:  # type: ignore[type-arg]
        """Which transport this is, and whether the request carried credentials."""
        request = ctx.request_context.request
        headers = getattr(request, "headers", None)
        carried = "yes" if headers is not None and "authorization" in headers else "no"
        return f"{NAME} over {transport}; Authorization header: {carried}"

    @server.tool(structured_output=False)
    def picture() -> list[Any]:
        """A one-pixel picture and a caption."""
        return ["a caption", Image(data=_PNG, format="png")]

    return server


class _RecordHeaders:
    """ASGI middleware: each HTTP request's method, path and headers, one JSON line each."""

    def __init__(self, app: ASGIApp, path: Path) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            line = json.dumps({"method": scope["method"], "path": scope["path"], "headers": headers})
            with self.path.open("a") as f:
                f.write(line + "\n")
        await self.app(scope, receive, send)


def serve_http(port: int, record: Path | None) -> None:
    import uvicorn

    app: Any = build("http").streamable_http_app()
    if record is not None:
        app = _RecordHeaders(app, record)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def serve_stdio(record: Path | None) -> None:
    if record is not None:
        with record.open("a") as f:
            f.write(json.dumps({"pid": os.getpid(), "environment": sorted(os.environ)}) + "\n")
    build("stdio").run("stdio")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--http", type=int, metavar="PORT", help="streamable HTTP on 127.0.0.1:PORT/mcp")
    mode.add_argument("--stdio", action="store_true", help="MCP over stdin/stdout")
    parser.add_argument("--record", type=Path, default=None, help=f"record file (default: ${RECORD_ENV})")
    args = parser.parse_args(argv)
    record = args.record or (Path(os.environ[RECORD_ENV]) if os.environ.get(RECORD_ENV) else None)
    if args.stdio:
        serve_stdio(record)
    else:
        serve_http(args.http, record)


# ------------------------------------------------------------------ for tests

ROOT = Path(__file__).resolve().parents[2]

_LIVE: weakref.WeakSet[MCPServerProcess] = weakref.WeakSet()


@atexit.register
def _stop_live() -> None:
    for server in list(_LIVE):
        server.stop()


def stdio_command() -> list[str]:
    """The argv that runs this server over stdio (run it with cwd=ROOT)."""
    return [sys.executable, "-m", "hfchat.testing.mcp_server", "--stdio"]


class MCPServerProcess:
    """This server over streamable HTTP in a subprocess on a free loopback port: `url` is its
    MCP endpoint, `requests()` the requests it recorded (method, path, headers)."""

    def __init__(self, *, port: int | None = None, startup_timeout: float = 60.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.startup_timeout = startup_timeout
        folder = Path(tempfile.mkdtemp(prefix="hfchat-mcp-"))
        self.record_path = folder / "requests.jsonl"
        self.log_path = folder / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def requests(self) -> list[dict[str, Any]]:
        try:
            lines = self.record_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def raw_record(self) -> str:
        """Everything the server recorded, as text (for "never contains" assertions)."""
        try:
            return self.record_path.read_text()
        except FileNotFoundError:
            return ""

    def start(self) -> Self:
        command = [sys.executable, "-m", "hfchat.testing.mcp_server", "--http", str(self.port)]
        env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")}
        env |= {RECORD_ENV: str(self.record_path), "PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _LIVE.add(self)
        deadline = time.monotonic() + self.startup_timeout
        import socket

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"MCP server exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"MCP server not listening after {self.startup_timeout:.0f}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _LIVE.discard(self)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    main()
