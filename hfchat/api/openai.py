"""The OpenAI-compatible gateway: `GET /v1/models` and `POST /v1/chat/completions`, served
by the app's own process and port (`--openai-api`), over the same `ChatService` as the chat.

Every request is a turn of `ChatService.respond`, exactly as the chat window's: the same
cache, deployment policy, rate limit, limits and error translation. The gateway adds only
what OpenAI's protocol needs: model ids (`hfchat.api.requests`), auth, a concurrency and
queue bound like Gradio's, the reply's typed views as completion chunks, and errors in
OpenAI's JSON shape with the status their kind calls for.

Auth: the Bearer is the caller's Hugging Face token (used like the sidebar's box, never
logged or stored); without one, the server's HF_TOKEN serves a private (loopback)
deployment only. A public deployment refuses the API unless keys are set (`--api-key`,
`HFCHAT_API_KEYS`); then the Bearer must be one of them and `X-HF-Token` carries the
caller's own token.

Stop: the reply runs in a worker thread feeding the response; when the client goes away,
the response's task is cancelled and the turn's `cancel` event is set, which ends a local
generate thread at its next token and closes a remote HTTP stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from hfchat import errors
from hfchat.api.requests import ApiError, Listed, Turn, listed_models, parse_request
from hfchat.config import Backend
from hfchat.limits import client_address
from hfchat.settings import SidebarSettings
from hfchat.tokens import Fingerprinter
from hfchat.updates import Answer, Failed, Footer, ReplyView, Thinking

log = logging.getLogger(__name__)

API_KEYS_ENV = "HFCHAT_API_KEYS"

STATUS: dict[type[errors.HFChatError], int] = {
    errors.ConfigError: 400,
    errors.InputError: 400,
    errors.UnsupportedTaskError: 400,
    errors.RequestRejectedError: 400,
    errors.AuthError: 401,
    errors.MissingTokenError: 401,
    errors.AccessError: 403,
    errors.LocalModelNotAllowedError: 403,
    errors.EndpointNotAllowedError: 403,
    errors.ModelNotFoundError: 404,
    errors.RateLimitError: 429,
    errors.TooManyMessagesError: 429,
    errors.ConnectionFailedError: 503,
    errors.EndpointTimeoutError: 503,
    errors.OfflineModeError: 503,
    errors.OutOfMemoryError: 503,
    errors.QuantizationUnavailableError: 503,
    errors.InternalError: 500,
}
"""The HTTP status of each error kind; every other kind is the backend's failure (502)."""

_BY_TITLE = {kind.title: status for kind, status in STATUS.items()}
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_denied_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "internal_error",
}


def failure_error(failed: Failed) -> ApiError:
    """A turn's failure as an OpenAI error: the chat's own text, the status its kind calls for."""
    status = _BY_TITLE.get(failed.title, 502)
    message = f"{failed.message} {failed.hint}".strip()
    return ApiError(status, message, type=_TYPES.get(status, "api_error"), retry_after=failed.retry_after)


def error_response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": str(max(1, round(error.retry_after)))} if error.retry_after else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


Respond = Callable[..., Iterator[ReplyView]]
"""`ChatService.respond`."""


@dataclass
class Gateway:
    """The gateway's routes over one service. `keys`: the API keys a public deployment needs."""

    respond: Respond
    default: SidebarSettings
    public: bool
    keys: tuple[str, ...] = field(default=(), repr=False)
    on_space: bool = False
    concurrency: int = 32
    max_queue: int = 64
    fingerprint: Fingerprinter = field(default_factory=Fingerprinter, repr=False)
    """Tells callers apart in the rate limit's session keys without holding their tokens."""
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)
    _waiting: int = field(default=0, init=False, repr=False)

    @property
    def listed(self) -> list[Listed]:
        return listed_models(self.default)

    def routes(self) -> list[BaseRoute]:
        """`/v1/...` as one mount, for the app's FastAPI (`gr.Blocks.launch(app_kwargs=...)`)."""
        api = Starlette(
            routes=[
                Route("/models", self.models, methods=["GET"]),
                Route("/models/{model:path}", self.model, methods=["GET"]),
                Route("/chat/completions", self.completions, methods=["POST"]),
            ],
            exception_handlers={ApiError: _api_error, 404: _api_error},
        )
        return [Mount("/v1", app=api)]

    # -- auth
    def caller_token(self, request: Request) -> str | None:
        """The caller's HF token for this request (None: the server's own, on a private
        deployment), or ApiError 401/403 per the rules above."""
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        bearer = bearer.strip() if scheme.lower() == "bearer" else ""
        if self.keys:
            if not any(hmac.compare_digest(bearer.encode(), key.encode()) for key in self.keys):
                raise ApiError(
                    401,
                    "Invalid API key: send one of this server's keys as the Bearer.",
                    type="authentication_error",
                    code="invalid_api_key",
                )
            return request.headers.get("x-hf-token", "").strip() or None
        if self.public:
            raise ApiError(
                403,
                "The OpenAI API is off on this public deployment: the operator must set API keys "
                f"(--api-key or {API_KEYS_ENV}); then send one as the Bearer and your HF token as X-HF-Token.",
                type="permission_denied_error",
            )
        return bearer or None

    # -- routes
    async def models(self, request: Request) -> Response:
        self.caller_token(request)
        return JSONResponse({"object": "list", "data": [_model_object(m) for m in self.listed]})

    async def model(self, request: Request) -> Response:
        self.caller_token(request)
        wanted = request.path_params["model"]
        for entry in self.listed:
            if entry.id == wanted:
                return JSONResponse(_model_object(entry))
        raise ApiError(404, f"The model {wanted!r} does not exist here.", param="model", code="model_not_found")

    async def completions(self, request: Request) -> Response:
        token = self.caller_token(request)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "The request body is not valid JSON.") from None
        turn = parse_request(body, self.listed)
        if self.public and token is None and turn.values.get("backend") == Backend.PROVIDERS.value:
            turn.close()
            raise ApiError(
                401,
                "Inference Providers need your Hugging Face token: send it as X-HF-Token.",
                type="authentication_error",
            )
        slot = await self._admit()
        try:
            cancel = threading.Event()
            views = _pump(lambda: self._run(turn, token, request, cancel), cancel)
            completion = Completion(turn)
            first = await _first_content(views, completion)
        except BaseException:
            slot.release()
            turn.close()
            raise
        if completion.failed is not None and not completion.text:
            slot.release()
            turn.close()
            return error_response(failure_error(completion.failed))
        if not turn.stream:
            try:
                async for view in views:
                    completion.add(view)
                    if completion.stopped:
                        break  # a stop sequence came: the rest is not wanted (cancel ends it)
                return JSONResponse(completion.whole())
            finally:
                cancel.set()
                slot.release()
                turn.close()

        async def events() -> AsyncIterator[str]:
            try:
                for chunk in completion.chunks(first):
                    yield _sse(chunk)
                async for view in views:
                    for chunk in completion.chunks(view):
                        yield _sse(chunk)
                    if completion.stopped:
                        break
                for chunk in completion.last_chunks():
                    yield _sse(chunk)
                yield "data: [DONE]\n\n"
            finally:
                cancel.set()  # the client left (or the stop sequence came): the generation ends

        def done() -> None:
            slot.release()
            turn.close()

        return _Stream(events(), cancel, done)

    def _run(self, turn: Turn, token: str | None, request: Request, cancel: threading.Event) -> Iterator[ReplyView]:
        client = client_address(request, self.on_space)
        return self.respond(
            turn.message,
            turn.history,
            turn.values,
            token,
            session=f"openai-api:{self.fingerprint(token)}:{client}",
            cancel=cancel,
            show_speed=True,
            client=client,
        )

    async def _admit(self) -> asyncio.Semaphore:
        """A place among `concurrency` running requests, waiting with at most `max_queue`
        others (Gradio's queue bounds the chat the same way); past that a 503."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        if self._slots.locked() and self._waiting >= self.max_queue:
            raise ApiError(
                503,
                "The server is busy: too many requests are waiting. Try again shortly.",
                type="server_error",
                retry_after=5,
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        return self._slots


def _model_object(entry: Listed) -> dict[str, Any]:
    return {
        "id": entry.id,
        "object": "model",
        "created": 0,
        "owned_by": "hfchat",
        "hfchat": {"source": entry.source, "backend": entry.values.backend.value},
    }


def _sse(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


async def _api_error(request: Request, exc: Exception) -> Response:
    """Every ApiError in OpenAI's shape; an unknown /v1 path is a 404 in that shape too."""
    if not isinstance(exc, ApiError):
        exc = ApiError(404, f"No such API path: {request.url.path}.", code="unknown_url")
    return error_response(exc)


class _Stream(StreamingResponse):
    """An SSE response whose end (finished, or the client gone) sets the turn's cancel event."""

    def __init__(self, content: AsyncIterator[str], cancel: threading.Event, done: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self.cancel = cancel
        self.done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()
            self.done()


_END = object()


async def _pump(make: Callable[[], Iterator[ReplyView]], cancel: threading.Event) -> AsyncIterator[ReplyView]:
    """The views of `make()`, produced in a worker thread (the service blocks) and handed to
    the event loop as they come. Leaving early sets `cancel`, which ends the turn."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is reading
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            with contextlib.closing(make()) as views:  # type: ignore[type-var]  # a generator
                for view in views:
                    put(view)
                    if cancel.is_set():
                        break
        finally:
            put(_END)

    threading.Thread(target=work, name="hfchat-openai-turn", daemon=True).start()
    try:
        while (item := await queue.get()) is not _END:
            yield item
    finally:
        cancel.set()


async def _first_content(views: AsyncIterator[ReplyView], completion: Completion) -> ReplyView:
    """Views until the reply has text (or ends): a failure before any can still be a status."""
    async for view in views:
        completion.add(view, track=False)
        if completion.text or completion.thinking or completion.finished or completion.failed:
            return view
    return ()


class Completion:
    """One reply as OpenAI's chat completion: deltas from the service's snapshots, the stop
    sequences applied, and the usage and finish_reason from its footer."""

    def __init__(self, turn: Turn) -> None:
        self.turn = turn
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.text = ""
        self.thinking = ""
        self.sent_text = 0
        self.sent_thinking = 0
        self.failed: Failed | None = None
        self.figures: dict[str, Any] = {}
        self.finished = False
        self.stopped = False
        """A stop sequence came: the answer ends before it."""

    def add(self, view: ReplyView, track: bool = True) -> None:
        for update in view:
            if isinstance(update, Answer) and not self.stopped:
                self.text = update.text
                self._apply_stops()
            elif isinstance(update, Thinking):
                self.thinking = update.text
            elif isinstance(update, Failed):
                self.failed = None if update.cut else update
                self.finished = self.finished or update.cut
            elif isinstance(update, Footer):
                self.figures, self.finished = dict(update.figures), True

    def _apply_stops(self) -> None:
        cuts = [i for s in self.turn.stop if (i := self.text.find(s)) >= 0]
        if cuts:
            self.text, self.stopped = self.text[: min(cuts)], True

    def _held(self) -> int:
        """Trailing characters that may be the start of a stop sequence: not sent yet."""
        if self.stopped:
            return 0
        for size in range(max((len(s) for s in self.turn.stop), default=1) - 1, 0, -1):
            if any(s.startswith(self.text[-size:]) for s in self.turn.stop):
                return size
        return 0

    def finish_reason(self) -> str:
        if self.stopped:
            return "stop"
        reason = self.figures.get("finish_reason")
        return "length" if reason in ("length", "cut") else "stop"

    def usage(self) -> dict[str, int]:
        prompt = int(self.figures.get("input_tokens") or 0)
        completion = int(self.figures.get("output_tokens") or 0)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.turn.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    def chunks(self, view: ReplyView) -> list[dict[str, Any]]:
        """The chunks `view` adds to what was sent: reasoning_content, then content."""
        self.add(view)
        out = []
        first = self.sent_text == 0 and self.sent_thinking == 0
        if len(self.thinking) > self.sent_thinking:
            piece, self.sent_thinking = self.thinking[self.sent_thinking :], len(self.thinking)
            out.append({"reasoning_content": piece})
        end = len(self.text) - self._held()
        if end > self.sent_text:
            piece, self.sent_text = self.text[self.sent_text : end], end
            out.append({"content": piece})
        if first and out:
            out[0] = {"role": "assistant", **out[0]}
        return [self._chunk(delta) for delta in out]

    def last_chunks(self) -> list[dict[str, Any]]:
        """What is left of the answer, the finish_reason, then usage when it was asked for; a
        failure after part of the reply arrived is an error event (the client raises it)."""
        out = []
        if self.failed is not None:
            return [failure_error(self.failed).body()]
        if len(self.text) > self.sent_text:
            out.append(self._chunk({"content": self.text[self.sent_text :]}))
            self.sent_text = len(self.text)
        out.append(self._chunk({}, self.finish_reason()))
        if self.turn.include_usage:
            out.append({**self._chunk({}), "choices": [], "usage": self.usage()})
        return out

    def whole(self) -> dict[str, Any]:
        """The non-streamed answer; a failure after part of it raises as an error instead."""
        if self.failed is not None:
            raise failure_error(self.failed)
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.thinking:
            message["reasoning_content"] = self.thinking
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.turn.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason()}],
            "usage": self.usage(),
        }


def gateway_routes(respond: Respond, options: Any) -> list[BaseRoute]:
    """The /v1 routes for an app started with `options` (`hfchat.cli.AppOptions`), over
    `respond` (its `ChatService.respond`)."""
    return Gateway(
        respond,
        options.sidebar,
        options.public,
        tuple(options.api_keys),
        on_space=options.on_space,
        concurrency=options.concurrency,
        max_queue=options.max_queue,
    ).routes()
