"""Real loopback servers for offline tests: no mocks of huggingface_hub or transformers.

- ``TransformersServe``: a real ``transformers serve`` subprocess on a tiny model.
- ``RecordingProxy``: records requests on their way to a real upstream, streams
  the answers back unbuffered, and injects faults (error statuses, cut streams,
  delays).
- ``Recorder``: records requests and answers from a route table of canned
  responses, e.g. for Inference Providers routes and Hub metadata calls.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; annotations here are never evaluated

# (status, headers, body): body is bytes, or an iterable of str/bytes chunks to stream.
Response = tuple[int, Mapping[str, str], "bytes | Iterable[str | bytes]"]
Handler = Callable[["RecordedRequest"], Response]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "accept-encoding",  # ask upstream for identity bytes so SSE events can be split
}


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- serve


_LIVE_SERVERS: weakref.WeakSet[TransformersServe] = weakref.WeakSet()


@atexit.register
def _kill_live_servers() -> None:
    """Last line of defence: never leave a server behind after the test run."""
    for server in list(_LIVE_SERVERS):
        server.stop()


# Runs `transformers serve` in this interpreter (same as the `transformers` console
# script), after asking the kernel to kill it when its parent dies, even by SIGKILL.
# Done in the child rather than via preexec_fn, which is unsafe with threads.
_LAUNCHER = """
import ctypes, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass  # not Linux: atexit and the fixtures still clean up
from transformers.cli.transformers import main
sys.argv[0] = "transformers"
sys.exit(main())
"""


class TransformersServe:
    """A real ``transformers serve`` pinned to one local model, on a loopback port.

    The server only accepts requests whose ``model`` field is exactly the string
    it was started with (or no ``model`` at all); that string is ``model_name``.
    Output goes to ``log_path`` (a file, so a chatty server can never block).
    """

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        startup_timeout: float = 90.0,
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.model_name = str(model_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log_path = Path(tempfile.mkdtemp(prefix="transformers-serve-")) / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n_chars: int = 4000) -> str:
        """End of the server's output, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except FileNotFoundError:
            return ""

    @property
    def cli_args(self) -> list[str]:
        """Arguments after ``transformers``, as one would type them."""
        args = ["serve", self.model_name, "--host", "127.0.0.1", "--port", str(self.port)]
        return [*args, "--device", "cpu", *self.extra_args]

    def start(self) -> Self:
        """Start the server and block until ``GET /health`` answers 200."""
        if self.alive:
            return self
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, *self.cli_args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # own process group: stop() reaches every child
            )
        _LIVE_SERVERS.add(self)
        while (waited := time.monotonic() - began) < self.startup_timeout:
            if self.proc.poll() is not None:
                self._fail(f"exited with code {self.proc.returncode} during start-up")
            if self._healthy():
                self.startup_seconds = waited
                return self
            time.sleep(0.2)
        self.stop()
        self._fail(f"not healthy after {self.startup_timeout:.0f}s")

    def _fail(self, what: str) -> NoReturn:
        command = " ".join(["transformers", *self.cli_args])
        raise RuntimeError(f"transformers serve {what}:\n$ {command}\n{self.log_tail()}")

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Kill the server (SIGKILL by default: it dies like a crashed server)."""
        proc, self.proc = self.proc, None
        _LIVE_SERVERS.discard(self)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)

    def restart(self) -> Self:
        """Stop and start again on the same port, so existing URLs stay valid."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------ recording servers


@dataclass
class RecordedRequest:
    """One request as it arrived. Header names are lower-cased."""

    method: str
    target: str  # raw request target: path plus query string
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None  # parsed body, or None when it is not JSON


@dataclass
class _Fault:
    """An injected fault; ``times`` None means every request until ``reset()``."""

    times: int | None
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def applies(self, path: str) -> bool:
        return self.path is None or path.startswith(self.path)


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 resets connections when many clients connect at once
    # (concurrency benchmarks, load tests).
    request_queue_size = 128


class _RecordingServer:
    """Shared base: threaded loopback HTTP/1.1 server, request log, fault injection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: dict[str, _Fault] = {}
        self._closed = threading.Event()
        owner = self

        class _Handler(_RequestHandler):
            server_owner = owner

        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # keep-alive clients must not block close()
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    # -- request log
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests seen so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests arrived (for UIs that call in the background)."""
        deadline = time.monotonic() + timeout
        while len(got := self.requests) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(got)} of {count} requests after {timeout}s: {got}")
            time.sleep(0.02)
        return got

    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)

    # -- faults
    def fail_next(
        self,
        status: int = 429,
        body: str | bytes = '{"error": "injected failure"}',
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests (under ``path`` if given) with this error."""
        data = body.encode() if isinstance(body, str) else body
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        self._set_fault("fail", _Fault(times, path, {"response": (status, hdrs, data)}))

    def cut_stream_after(
        self, n_chunks: int, times: int | None = 1, path: str | None = None, *, reset: bool = False
    ) -> None:
        """Drop the connection after ``n_chunks`` SSE events of the next streamed reply(ies).

        The chunked body is left unterminated, so clients see a broken stream,
        like a server dying mid-reply. With ``reset`` the connection is aborted with a TCP RST
        instead of closed (a crashed host or a middlebox: clients read "connection reset").
        """
        self._set_fault("cut", _Fault(times, path, {"n": n_chunks, "reset": reset}))

    def delay(self, seconds: float, times: int | None = None, path: str | None = None) -> None:
        """Hold requests this long before answering (read-timeout tests); 0 turns it off."""
        self._set_fault("delay", _Fault(times, path, {"seconds": seconds}) if seconds > 0 else None)

    def reset(self) -> None:
        """Remove all injected faults."""
        with self._lock:
            self._faults.clear()

    def _set_fault(self, kind: str, fault: _Fault | None) -> None:
        with self._lock:
            self._faults.pop(kind, None)
            if fault is not None:
                self._faults[kind] = fault

    def _take_fault(self, kind: str, path: str) -> dict[str, Any] | None:
        """Consume one use of a fault if it applies to this request."""
        with self._lock:
            fault = self._faults.get(kind)
            if fault is None or not fault.applies(path):
                return None
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[kind]
            return fault.params

    # -- lifecycle
    def respond(self, req: RecordedRequest) -> Response:
        raise NotImplementedError

    def close(self) -> None:
        self._closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Response headers the handler writes itself (framing, and send_response's own).
_SET_BY_US = {"content-length", "transfer-encoding", "connection", "server", "date"}


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns every HTTP request into ``owner.respond(RecordedRequest)`` plus faults."""

    protocol_version = "HTTP/1.1"  # chunked replies: a cut stream is detectably broken
    server_owner: _RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self) -> None:
        owner = self.server_owner
        split = urlsplit(self.path)
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        req = RecordedRequest(
            method=self.command,
            target=self.path,
            path=split.path,
            query=parse_qs(split.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            json=parsed,
        )
        owner._record(req)
        delay = owner._take_fault("delay", req.path)
        if delay and owner._closed.wait(delay["seconds"]):
            self.close_connection = True
            return  # shutting down
        if fail := owner._take_fault("fail", req.path):
            response = fail["response"]
        else:
            try:
                response = owner.respond(req)
            except Exception as exc:  # noqa: BLE001 - a broken handler must fail the test visibly
                response = json_response({"error": f"recorder handler failed: {exc!r}"}, 500)
        self._send(req, *response)

    def _send(self, req: RecordedRequest, status: int, headers: Mapping[str, str], body: Any) -> None:
        try:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in _SET_BY_US:
                    self.send_header(key, value)
            if isinstance(body, bytes):
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            cut = self.server_owner._take_fault("cut", req.path)
            for sent, chunk in enumerate(body, start=1):
                data = chunk.encode() if isinstance(chunk, str) else chunk
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                if cut and sent >= cut["n"]:
                    self._drop_connection(reset=cut.get("reset", False))
                    return
            self.wfile.write(b"0\r\n\r\n")
        except (http.client.HTTPException, OSError):
            # The client gave up (read timeout) or the upstream died mid-stream:
            # either way the reply is broken, so the connection goes too.
            self._drop_connection()
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # stop an upstream stream we no longer forward

    def _drop_connection(self, reset: bool = False) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            if reset:  # linger 0: close() sends RST, not FIN
                # An RST discards what the client has not read yet: give it time to read the
                # events sent so far, as a host that crashes a moment later would.
                time.sleep(0.5)
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


def _sse_events(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    """Yield whole SSE events (``...\\n\\n``) as soon as each one has arrived."""
    buf = b""
    try:
        while data := resp.read1(65536):
            buf += data.replace(b"\r\n", b"\n")
            while (end := buf.find(b"\n\n")) >= 0:
                yield buf[: end + 2]
                buf = buf[end + 2 :]
        if buf:
            yield buf
    except (http.client.HTTPException, OSError):
        if buf:
            yield buf  # pass on what arrived; the proxy then drops the client too
        raise


def _raw_chunks(resp: http.client.HTTPResponse) -> Iterator[bytes]:
    while data := resp.read1(65536):
        yield data


class _UpstreamStream:
    """Iterable body that also closes the upstream connection when done or abandoned."""

    def __init__(self, chunks: Iterator[bytes], conn: http.client.HTTPConnection) -> None:
        self._chunks, self._conn = chunks, conn

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        self._conn.close()


class RecordingProxy(_RecordingServer):
    """Loopback reverse proxy that records requests and forwards them to ``upstream``.

    Streaming replies are forwarded event by event as they arrive. When the
    upstream cannot be reached (e.g. the server was killed) it answers 502,
    as a real gateway would.
    """

    def __init__(self, upstream: str, upstream_timeout: float = 300.0) -> None:
        parts = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self._up_host = parts.hostname or "127.0.0.1"
        self._up_port = parts.port or 80
        self._up_prefix = parts.path.rstrip("/")
        self.upstream_timeout = upstream_timeout
        super().__init__()

    def respond(self, req: RecordedRequest) -> Response:
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=self.upstream_timeout)
        headers = {k: v for k, v in req.headers.items() if k not in _HOP_BY_HOP}
        try:
            conn.request(req.method, self._up_prefix + req.target, body=req.body or None, headers=headers)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            return json_response({"error": f"proxy: upstream {self.upstream} unreachable: {exc}"}, 502)
        out_headers = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP}
        if resp.getheader("Content-Length") is not None:
            body = resp.read()
            conn.close()
            return resp.status, out_headers, body
        is_sse = "text/event-stream" in (resp.getheader("Content-Type") or "")
        chunks = _sse_events(resp) if is_sse else _raw_chunks(resp)
        return resp.status, out_headers, _UpstreamStream(chunks, conn)


class Recorder(_RecordingServer):
    """Loopback server with no upstream: records requests, answers from ``routes``.

    ``routes`` maps ``(METHOD, path_prefix)`` to a ``Response`` or to a handler
    returning one; the longest matching prefix wins, anything else gets 404.
    """

    def __init__(self, routes: Mapping[tuple[str, str], Response | Handler] | None = None) -> None:
        self.routes: dict[tuple[str, str], Response | Handler] = dict(routes or {})
        super().__init__()

    def route(self, method: str, path_prefix: str, handler: Response | Handler) -> None:
        self.routes[(method.upper(), path_prefix)] = handler

    def respond(self, req: RecordedRequest) -> Response:
        matches = [
            (prefix, handler)
            for (method, prefix), handler in self.routes.items()
            if method == req.method and req.path.startswith(prefix)
        ]
        if not matches:
            return json_response({"error": f"no route for {req.method} {req.path}"}, 404)
        handler = max(matches, key=lambda m: len(m[0]))[1]
        return handler(req) if callable(handler) else handler


# --------------------------------------------------------------- canned responses


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return (status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode())


def sse_response(events: Iterable[str | bytes]) -> Response:
    """Stream ``events`` (already ``data: ...\\n\\n`` framed) one chunk each."""
    return (200, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, events)


def _pieces(text: str) -> list[str]:
    """Split text into word-sized deltas that join back to exactly ``text``."""
    out: list[str] = []
    for word in text.split(" "):
        out.append(word if not out else " " + word)
    return [p for p in out if p] or [""]


def _chunk(model: str, cid: str, delta: dict[str, Any], finish: str | None = None) -> str:
    payload = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n"


def sse_chat_stream(text: str, model: str = "tiny-model", reasoning: str = "") -> list[str]:
    """An OpenAI chat-completion SSE stream: role, deltas, finish_reason, ``[DONE]``.

    With ``reasoning``, that text first arrives in ``delta.reasoning_content``
    (as DeepSeek-R1 hosts send it), then ``text`` in ``delta.content``.
    """
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    events = [_chunk(model, cid, {"role": "assistant", "content": ""})]
    if reasoning:
        events += [_chunk(model, cid, {"reasoning_content": p}) for p in _pieces(reasoning)]
    events += [_chunk(model, cid, {"content": p}) for p in _pieces(text)]
    events += [_chunk(model, cid, {}, finish="stop"), "data: [DONE]\n\n"]
    return events


def sse_reasoning_stream(reasoning: str, text: str, model: str = "tiny-model") -> list[str]:
    """Reasoning in ``delta.reasoning_content`` first, then the answer in ``delta.content``."""
    return sse_chat_stream(text, model=model, reasoning=reasoning)


def chat_completion_json(text: str, model: str = "tiny-model") -> dict[str, Any]:
    """A non-streaming OpenAI chat-completion body."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def chat_route_handler(text: str, reasoning: str = "") -> Handler:
    """Handler for ``POST .../v1/chat/completions``: SSE or JSON as the request asks."""

    def handle(req: RecordedRequest) -> Response:
        body = req.json if isinstance(req.json, dict) else {}
        model = str(body.get("model", "tiny-model"))
        if body.get("stream"):
            return sse_response(sse_chat_stream(text, model=model, reasoning=reasoning))
        return json_response(chat_completion_json(text, model=model))

    return handle


def sse_tool_calls_stream(
    calls: Iterable[tuple[str, str]], model: str = "tiny-model", text: str = "", piece: int = 4
) -> list[str]:
    """An OpenAI SSE stream that calls tools as real servers stream them: optional ``text``
    first, then each call's id, type and name in its first piece and its JSON ``arguments``
    split into ``piece``-character pieces (split mid-token, as vLLM and TGI do), each piece
    naming its call by ``index``; finish_reason "tool_calls". ``calls``: (name, arguments JSON)."""
    cid = f"chatcmpl-{uuid.uuid4().hex[:12]}"
    events = [_chunk(model, cid, {"role": "assistant", "content": ""})]
    events += [_chunk(model, cid, {"content": p}) for p in _pieces(text)] if text else []
    for index, (name, arguments) in enumerate(calls):
        head = {"index": index, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "function"}
        events.append(_chunk(model, cid, {"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]}))
        for start in range(0, len(arguments), piece):
            part = {"index": index, "function": {"arguments": arguments[start : start + piece]}}
            events.append(_chunk(model, cid, {"tool_calls": [part]}))
    events += [_chunk(model, cid, {}, finish="tool_calls"), "data: [DONE]\n\n"]
    return events


def tool_model_handler(
    calls: Callable[[dict[str, Any]], list[tuple[str, str]]], answer: Callable[[list[dict[str, Any]]], str]
) -> Handler:
    """``POST .../v1/chat/completions`` for a scripted tool-calling model: while the request
    offers tools and its last message is the user's, it streams ``calls(body)`` (when that is
    not empty); once the last message is a tool result, it streams ``answer(messages)`` (the
    request's messages, so the answer can quote what the tools returned)."""

    def handle(req: RecordedRequest) -> Response:
        body = req.json if isinstance(req.json, dict) else {}
        model = str(body.get("model", "tiny-model"))
        messages = body.get("messages") or []
        last = messages[-1] if messages else {}
        wanted = calls(body) if body.get("tools") and last.get("role") == "user" else []
        if wanted:
            return sse_response(sse_tool_calls_stream(wanted, model=model))
        return sse_response(sse_chat_stream(answer(messages), model=model))

    return handle


# ------------------------------------------------------------ Hub / providers


def provider_mapping_response(
    repo_id: str, provider: str, provider_model_id: str, task: str = "conversational", status: str = "live"
) -> dict[str, Any]:
    """Body of ``GET {ENDPOINT}/api/models/{repo_id}?expand=inferenceProviderMapping``.

    huggingface_hub 1.33 fetches this (``HfApi().model_info(repo_id,
    expand=["inferenceProviderMapping"])``) before calling a named provider,
    and needs ``id`` plus a mapping entry whose ``task`` matches the call
    (``conversational`` for chat_completion).
    """
    return {
        "_id": uuid.uuid4().hex[:24],
        "id": repo_id,
        "inferenceProviderMapping": {provider: {"status": status, "providerId": provider_model_id, "task": task}},
    }


def redirect_hub(monkeypatch: Any, base_url: str) -> None:
    """Point every Hub and router URL huggingface_hub builds at ``base_url``.

    Patches what huggingface_hub 1.33 reads at call time:
    ``constants.ENDPOINT`` (Hub API, read when an ``HfApi()`` is created),
    ``constants.INFERENCE_PROXY_TEMPLATE`` (``{base}/{provider}/v1/...``), the
    ``provider="auto"`` router's fixed base URL (``{base}/v1/...``), and
    ``constants.HF_HUB_OFFLINE``, which otherwise blocks even loopback calls.
    It also settles the once-per-process agent-harness lookup (see below).
    The provider-mapping cache is cleared so earlier tests cannot leak in;
    callers should clear it again afterwards (the pytest fixture does).
    """
    from huggingface_hub import constants
    from huggingface_hub.inference import _providers
    from huggingface_hub.inference._providers import _common
    from huggingface_hub.utils import _detect_agent

    # The first Hub call of a process also GETs {ENDPOINT}/api/agent-harnesses (for the
    # user-agent); settle that now so the stray request never reaches the recorder.
    registry = _detect_agent._registry or _detect_agent._EMPTY_REGISTRY
    monkeypatch.setattr(_detect_agent, "_registry", registry)
    base = base_url.rstrip("/")
    monkeypatch.setattr(constants, "ENDPOINT", base)
    monkeypatch.setattr(constants, "INFERENCE_PROXY_TEMPLATE", base + "/{provider}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_providers.CONVERSATIONAL_AUTO_ROUTER, "base_url", base)
    _common._fetch_inference_provider_mapping.cache_clear()


def serve_model_files(recorder: Recorder, repo_id: str, folder: Path, seconds: float = 0.0, pieces: int = 20) -> None:
    """Serve the files of a model folder as the Hub serves a repo's (``/{repo}/resolve/{rev}/{file}``,
    HEAD for the metadata huggingface_hub checks, GET for the bytes), behind a loopback
    ``HF_ENDPOINT``: a download that is real, on loopback. The weights (``*.safetensors``)
    arrive in ``pieces`` chunks over ``seconds``, so a download takes that long. A file the
    folder lacks is a 404 "EntryNotFound", as on the Hub."""
    commit = hashlib.sha1(repo_id.encode()).hexdigest()

    def resolve(req: RecordedRequest) -> Response:
        name = req.path.split("/resolve/", 1)[-1].split("/", 1)[-1]
        path = folder / name
        if not path.is_file() or "/" in name:
            return (404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"")
        data = path.read_bytes()
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        if req.method == "HEAD" or not name.endswith(".safetensors") or seconds <= 0:
            return (200, headers, data)
        size = -(-len(data) // pieces)

        def slowly() -> Iterator[bytes]:
            for start in range(0, len(data), size):
                time.sleep(seconds / pieces)
                yield data[start : start + size]

        return (200, headers, slowly())

    for method in ("HEAD", "GET"):
        recorder.route(method, f"/{repo_id}/resolve/", resolve)
