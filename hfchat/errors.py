"""One small error hierarchy; every message says what went wrong and how to fix it.

Errors from huggingface_hub, httpx, transformers and torch are translated here, in one
place, so the chat shows a readable message instead of a stack trace.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
import jinja2
from safetensors import SafetensorError

from hfchat.updates import Failed


class HFChatError(Exception):
    """Base error: `message` says what happened, `hint` says how to fix it. Each kind names
    its `title` (the bold start of its chat reply) in its class line: `title="..."`."""

    title: ClassVar[str] = "Something went wrong"

    def __init_subclass__(cls, title: str = "", **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if title:
            cls.title = title

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()

    def failed(self) -> Failed:
        """This error as the last part of a reply (`hfchat.updates.Failed`)."""
        return Failed(self.title, self.message, self.hint, retry_after=getattr(self, "retry_after", None))

    def markdown(self) -> str:
        """The text shown for this error."""
        return self.failed().text


class ConfigError(HFChatError, title="Invalid setting"):
    def __init__(self, message: str, hint: str = "", *, field: str | None = None) -> None:
        super().__init__(message, hint or field_hint(field))
        self.field = field


def field_hint(field: str | None) -> str:
    """How to fix a refused setting, read by people on the page and by programs alike: the
    control by its label, and the parameter by its API name."""
    from hfchat.settings import SETTINGS  # imported here: the schema must stay free to import errors

    setting = SETTINGS.get(field or "")
    if setting is None:
        return "Correct it and send again."
    return f"Change “{setting.control.label}” in the settings (API parameter `{field}`), then send again."


class AuthError(HFChatError, title="Not authorized (401)"): ...


class MissingTokenError(HFChatError, title="Token needed"): ...


class AccessError(HFChatError, title="Access denied (403)"): ...


class ModelNotFoundError(HFChatError, title="Model not found (404)"): ...


class RequestRejectedError(HFChatError, title="Request rejected"): ...


class RateLimitError(HFChatError, title="Rate limited (429)"):
    def __init__(self, message: str, hint: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class ServerError(HFChatError, title="Server error"): ...


class EndpointTimeoutError(HFChatError, title="Timed out"): ...


class ConnectionFailedError(HFChatError, title="Cannot connect"): ...


class OfflineModeError(HFChatError, title="Offline mode"): ...


class QuantizationUnavailableError(HFChatError, title="4-bit loading unavailable"): ...


class OutOfMemoryError(HFChatError, title="Out of memory"): ...


class CorruptModelError(HFChatError, title="Corrupt model files"): ...


class ChatTemplateError(HFChatError, title="Chat template error"): ...


class GenerationError(HFChatError, title="Generation failed"): ...


class UnreadableReplyError(HFChatError, title="Unreadable reply"):
    """The server's stream is not the OpenAI chat-completion format: its fault, not ours."""


class ReplyCutOffError(HFChatError, title="The reply was cut off"):
    """The reply had started when the stream broke: the words say so, and why."""


class InternalError(HFChatError, title="Internal error"):
    """A bug in hfchat. The page shows only a reference; the log has the traceback under it."""

    def __init__(self, reference: str) -> None:
        super().__init__(
            f"Internal error (reference {reference}); the conversation is kept.",
            "This is a bug in hfchat, not a problem with your settings: send again, and if it happens again "
            f"report it with the reference {reference} (the app's log has the details under it).",
        )
        self.reference = reference

    def failed(self) -> Failed:
        return Failed(self.title, self.message, self.hint, reference=self.reference)


def internal_error() -> InternalError:
    """An InternalError with a fresh reference, short enough to read out, unique enough to grep."""
    return InternalError(secrets.token_hex(3))


class MalformedChunk(ValueError):
    """Raised where a streamed chunk is read when its shape is wrong; `translate` names the server."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedTaskError(HFChatError, title="Unsupported task"): ...


class EmptyReplyError(HFChatError, title="Empty reply"): ...


class InputError(HFChatError, title="Cannot send this message"):
    """The message itself can't be sent as it is (an attachment, for example)."""


class LocalModelNotAllowedError(HFChatError, title="Local model not allowed here"): ...


class EndpointNotAllowedError(HFChatError, title="Endpoint not allowed here"): ...


class ReplyTooLargeError(HFChatError, title="Reply too large"):
    """A server sent more bytes than a request may return (see `hfchat.deadline.io_budget`)."""


class RedirectRefusedError(HFChatError, title="Redirect refused"):
    """A custom endpoint answered with a redirect, which hfchat never follows (see hfchat.net)."""


class TooManyMessagesError(HFChatError, title="Busy, try again"):
    """A visitor went over the per-session rate limit (--rate-limit)."""

    def __init__(self, message: str, hint: str = "", *, retry_after: float) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


def corrupt_weights(detail: str) -> CorruptModelError:
    """A weights file that cannot be read, whoever found out (the loader or a size check)."""
    return CorruptModelError(
        f"The model's weights file cannot be read; it is truncated or corrupt ({detail[:200]}).",
        "Download the model again (delete its folder, or its entry in the Hugging Face cache), or pick another model.",
    )


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an error that carries a response, else None."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_of(exc: BaseException) -> float | None:
    """The response's Retry-After in seconds (an HTTP-date form counts as absent)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _response_message(exc: BaseException) -> str:
    """The error text in a response body that huggingface_hub did not read (streamed calls)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, httpx.Response):
        return ""
    try:
        response.read()
        body = response.json()
    except (httpx.HTTPError, httpx.StreamError, ValueError, RuntimeError):
        return ""
    if isinstance(body, dict):
        for key in ("detail", "error", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str):
                return value
    return ""


def server_detail(exc: BaseException) -> str:
    """The server's own words, shortened: often the most useful part of the message."""
    server_message = getattr(exc, "server_message", None) or _response_message(exc)
    if isinstance(server_message, str) and server_message.strip():
        return " ".join(server_message.split())[:300]
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


_CREATE_TOKEN = "Create one at https://huggingface.co/settings/tokens (it needs 'Make calls to Inference Providers')."


def from_http_status(status: int, where: str, detail: str = "", retry_after: float | None = None) -> HFChatError:
    """Map an HTTP status from a backend to an error that says what to do."""
    said = f" The server said: {detail}" if detail else ""
    if status == 401:
        return AuthError(
            f"{where} refused the token.{said}",
            "Sign in with Hugging Face (on a Space), or set a valid token in the sidebar's token box "
            "or in HF_TOKEN, then send again. " + _CREATE_TOKEN,
        )
    if status == 403:
        return AccessError(
            f"{where} denied access; the model may be gated or your token lacks a permission.{said}",
            "Open the model's page on huggingface.co and request access, or use a token "
            "with the 'Make calls to Inference Providers' permission.",
        )
    if status == 404:
        return ModelNotFoundError(
            f"{where} has no such model, or does not serve it.{said}",
            "Check the repo ID's spelling, pick another provider (or 'auto'), or for a custom "
            "endpoint set 'Served model name' to the name the server expects.",
        )
    if status in (400, 413, 422):
        hint = "Lower max_new_tokens or shorten the conversation, or change the setting the server names."
        if "model" in detail.lower():
            hint = "Set 'Served model name' to the name the server expects (see its /v1/models), then send again."
        return RequestRejectedError(f"{where} rejected the request ({status}).{said}", hint)
    if status == 429:
        wait = f" Try again in {retry_after:g} s." if retry_after else " Wait a moment and try again."
        return RateLimitError(
            f"{where} is rate limiting requests.{said}",
            f"{wait.strip()} Providers have per-token quotas; another provider may be free.",
            retry_after=retry_after,
        )
    if status == 503:
        return ServerError(
            f"{where} is unavailable (503); the model may still be loading.{said}",
            "Wait a minute and send again, or pick another provider.",
        )
    if status >= 500:
        return ServerError(
            f"{where} failed with HTTP {status}.{said}",
            "This is a server-side problem: send again, or pick another provider or endpoint.",
        )
    return RequestRejectedError(f"{where} answered HTTP {status}.{said}", "Check the settings and try again.")


_MISSING_MODEL = re.compile(
    r"is not a local folder|not a valid model identifier|does not appear to have a file|Repository Not Found", re.I
)


def _event_words(exc: BaseException) -> str:
    """The server's own words in an error event (`data: {"error": ...}`), whose text
    huggingface_hub makes from the event's `error` field: a string, or an OpenAI-style object."""
    text = str(exc).strip()
    if text.startswith("{") and len(text) < 20_000:
        try:  # huggingface_hub passed the object through; its str() is a Python repr
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            value = None
        if isinstance(value, dict):
            message = value.get("message") or value.get("detail") or value.get("error")
            text = message if isinstance(message, str) else json.dumps(value, default=str)
    return " ".join(text.split())[:300]


def _is_error_event(exc: BaseException) -> bool:
    """huggingface_hub raises a TextGenerationError (an httpx.HTTPError) for an error event."""
    return any(cls.__name__ == "TextGenerationError" for cls in type(exc).__mro__)


def hub_unreachable_uncached() -> ConnectionFailedError:
    """A Hub model that is not on disk, with no Hub to download it from."""
    return ConnectionFailedError(
        "The Hugging Face Hub cannot be reached, and the model is not in the local cache.",
        "Check the internet connection, or give the path of a local model folder, then send again.",
    )


def hub_endpoint() -> str:
    """The Hub this process talks to (HF_ENDPOINT moves it)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


OFFLINE_HINT = (
    "Check this machine's internet connection (and proxy), then send again. Without a network, pick "
    "Local and give the path of a model folder on this machine, or use a Custom endpoint."
)
"""What to do when Hugging Face's services can't be reached: the user chose them, not a URL."""

_CUT_OFF_HINT = "The server may have crashed or restarted: check it, then send again (the text above is what arrived)."
_CONNECT_HINT = "Check the endpoint URL (scheme, host and port) and that the server is running, then send again."


class _Failure:
    """The error being translated, as the rows of `_ROWS` read it. The `{...}` fields of a
    row's message and hint are its attributes (`{where}`, `{text:.200}`), read on demand."""

    def __init__(self, exc: BaseException, where: str, started: bool) -> None:
        self.exc, self.where, self.started = exc, where, started
        self.name = type(exc).__name__
        self.text = str(exc)
        self.lower = self.text.lower()

    def __getitem__(self, field: str) -> object:  # str.format_map reads the fields here
        return getattr(self, field)

    def isa(self, *kinds: type[BaseException]) -> bool:
        return isinstance(self.exc, kinds)

    @property
    def detail(self) -> str:
        return getattr(self.exc, "detail", "")

    @property
    def event(self) -> str:
        return _event_words(self.exc)

    @property
    def server(self) -> str:
        return server_detail(self.exc)

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0] if self.text else ""

    @property
    def status(self) -> int | None:
        return status_of(self.exc)

    @property
    def needs_token(self) -> bool:
        # transformers' "not a valid model identifier" also suggests `hf auth login`: a typo in
        # a repo ID is a missing model, not a missing token.
        asks = "provide an api_key" in self.text or "hf auth login" in self.text
        return asks and not _MISSING_MODEL.search(self.text)

    @property
    def dns(self) -> bool:
        return any(words in self.lower for words in ("resolve", "name or service", "nodename"))

    @property
    def hf_service(self) -> str:
        """How the message names the Hugging Face service the request was for ("" for
        any other host): the user chose Inference Providers or a Hub model, not an endpoint."""
        from hfchat.net import is_hf_service, origin  # net imports this module

        try:
            request = getattr(self.exc, "request", None)
        except RuntimeError:
            return ""
        if not isinstance(request, httpx.Request) or not is_hf_service(request.url):
            return ""
        if origin(request.url) == origin(hub_endpoint()):
            return f"The Hugging Face Hub ({request.url.host})"
        return f"Inference Providers ({request.url.host})"

    @property
    def unreachable_why(self) -> str:
        return "its name does not resolve" if self.dns else "the connection was refused"


Match = Callable[[_Failure], object]
Make = Callable[[_Failure], HFChatError]


def _says(kind: Callable[..., HFChatError], message: str, hint: str, **extra: Any) -> Make:
    """A row's error: `message` and `hint` with the failure's fields filled in."""
    return lambda f: kind(message.format_map(f), hint.format_map(f), **extra)


def _cut(why: str) -> Make:
    return _says(ReplyCutOffError, "{where} " + why + " before the reply was complete.", _CUT_OFF_HINT)


def _status(status: int) -> Make:
    return lambda f: from_http_status(status, f.where, f.server)


_ROWS: tuple[tuple[Match, Make], ...] = (
    (
        lambda f: f.isa(MalformedChunk),
        _says(
            UnreadableReplyError,
            "{where} sent a reply hfchat cannot read ({detail:.200}).",
            "It does not follow the OpenAI chat-completion stream format: check that endpoint_url points at an "
            "OpenAI-compatible server (TGI, vLLM, transformers serve) or pick another provider, then send again. "
            "Any text above is what arrived before it.",
        ),
    ),
    # After part of the reply: a broken stream or an error event says the reply was cut off, and why.
    (
        lambda f: f.started and _is_error_event(f.exc),
        _says(
            ReplyCutOffError,
            "{where} sent an error before the reply was complete. The server said: {event}",
            "Send again; if it keeps happening, check the server and its log (the text above is what arrived).",
        ),
    ),
    (
        lambda f: f.started and f.isa(httpx.TimeoutException, TimeoutError),
        _cut("sent nothing more for too long (read timeout)"),
    ),
    (lambda f: f.started and f.isa(httpx.RemoteProtocolError), _cut("closed the connection")),
    (lambda f: f.started and (f.isa(ConnectionResetError) or "reset" in f.lower), _cut("reset the connection")),
    (lambda f: f.started and f.isa(httpx.TransportError, ConnectionError), _cut("broke the connection ({text:.200})")),
    # Before any of it, or an error that is not about the stream.
    (
        lambda f: _is_error_event(f.exc),
        _says(
            ServerError,
            "{where} answered with an error. The server said: {event}",
            "This is a server-side problem: send again, or check the server and its log.",
        ),
    ),
    (
        lambda f: f.isa(httpx.InvalidURL),
        _says(
            ConfigError,
            "endpoint_url: the URL cannot be used ({text:.200}).",
            "Enter the server's base URL, such as http://127.0.0.1:8000, without spaces or control characters.",
            field="endpoint_url",
        ),
    ),
    (
        lambda f: f.name == "OfflineModeIsEnabled",
        _says(
            OfflineModeError,
            "HF_HUB_OFFLINE=1 is set, so huggingface_hub refuses to reach the Hugging Face Hub.",
            "Unset HF_HUB_OFFLINE to use the Hub, use a local model folder, or a custom endpoint URL.",
        ),
    ),
    (
        lambda f: f.needs_token,
        _says(
            MissingTokenError,
            "{where} needs a Hugging Face token, and none is set.",
            "Paste a token into the sidebar's token box, or start the app with HF_TOKEN set. " + _CREATE_TOKEN,
        ),
    ),
    (lambda f: f.name == "GatedRepoError", _status(403)),
    (lambda f: f.name == "RepositoryNotFoundError", _status(404)),
    (
        lambda f: f.name == "LocalEntryNotFoundError",
        _says(
            ConnectionFailedError,
            "The model is not in the local cache and the Hugging Face Hub cannot be reached.",
            "Connect to the internet once to download it, or give the path of a local model folder.",
        ),
    ),
    (
        lambda f: f.status is not None,
        lambda f: from_http_status(f.status or 0, f.where, f.server, retry_after_of(f.exc)),
    ),
    (
        lambda f: f.name == "InferenceTimeoutError" or f.isa(httpx.TimeoutException, TimeoutError),
        _says(
            EndpointTimeoutError,
            "{where} did not answer in time.",
            "The server may be overloaded or the model still loading: wait a moment and send again.",
        ),
    ),
    (
        lambda f: f.isa(httpx.RemoteProtocolError),
        _says(
            ConnectionFailedError,
            "The reply was cut off: {where} closed the connection in the middle of it.",
            _CUT_OFF_HINT,
        ),
    ),
    (
        lambda f: f.isa(httpx.ConnectError, ConnectionError) and f.hf_service,
        _says(ConnectionFailedError, "{hf_service} cannot be reached: {unreachable_why}.", OFFLINE_HINT),
    ),
    (
        lambda f: f.isa(httpx.ConnectError, ConnectionError) and f.dns,
        _says(ConnectionFailedError, "The endpoint's host name does not resolve.", _CONNECT_HINT),
    ),
    (
        lambda f: f.isa(httpx.ConnectError, ConnectionError),
        _says(ConnectionFailedError, "{where} refused the connection.", _CONNECT_HINT),
    ),
    (
        lambda f: f.isa(httpx.HTTPError),
        _says(
            ConnectionFailedError,
            "{where} could not be reached: {text:.200}",
            "Check the URL and the server, then send again.",
        ),
    ),
    (
        lambda f: f.name == "OutOfMemoryError" or f.isa(MemoryError) or "out of memory" in f.lower,
        _says(
            OutOfMemoryError,
            "The model does not fit in memory.",
            "Enable 4-bit loading, pick a smaller model, lower max_new_tokens, or lower the cache size (--cache-size).",
        ),
    ),
    (
        lambda f: "bitsandbytes" in f.lower and f.isa(ImportError, RuntimeError, ValueError),
        _says(
            QuantizationUnavailableError,
            "bitsandbytes cannot load this model in 4-bit here: {text:.200}",
            "Install it with `pip install bitsandbytes` (a CUDA GPU or bitsandbytes>=0.49 for CPU), or turn 4-bit off.",
        ),
    ),
    (lambda f: f.isa(SafetensorError), lambda f: corrupt_weights(f.text)),
    (
        lambda f: "probability tensor contains" in f.text,
        _says(
            GenerationError,
            "{where} produced invalid numbers (NaN or infinity) while sampling: {text:.200}",
            "Turn do_sample off, load it in float32 or bfloat16 instead of float16, or use another model; "
            "its weights may be broken.",
        ),
    ),
    (
        lambda f: f.name.endswith("TemplateError"),
        _says(
            ChatTemplateError,
            "The model's chat template failed: {text:.200}",
            "Clear the system prompt or the conversation and try again, or use another model.",
        ),
    ),
    (lambda f: f.isa(OSError) and "couldn't connect" in f.lower, lambda f: hub_unreachable_uncached()),
    (
        lambda f: f.isa(OSError) and _MISSING_MODEL.search(f.text),
        _says(
            ModelNotFoundError,
            "No model was found at that repo ID or folder. {first_line:.200}",
            "Check the repo ID (owner/name) or give an existing local folder with config.json.",
        ),
    ),
)
"""How each error of the stack reads, first match wins: (match, the error to show)."""

_OTHERWISE = _says(GenerationError, "{where} failed: {name}: {text:.300}", "Check the settings and send again.")


def translate(exc: BaseException, where: str = "The backend", *, started: bool = False) -> HFChatError:
    """Turn any error from the stack into an HFChatError that says how to fix it (`_ROWS`).

    `started`: part of the reply had arrived, so a broken stream means the reply was cut
    off, not that the server could not be reached."""
    if isinstance(exc, HFChatError):
        return exc
    failure = _Failure(exc, where, started)
    make = next((make for match, make in _ROWS if match(failure)), _OTHERWISE)
    return make(failure)


RECOVERABLE: tuple[type[BaseException], ...] = (
    HFChatError,
    OSError,
    ValueError,
    RuntimeError,
    ImportError,
    MemoryError,
    TimeoutError,
    httpx.HTTPError,
    httpx.InvalidURL,
    jinja2.TemplateError,
    SafetensorError,
)
"""Errors from backends, servers and the environment, which a chat turn translates into a
message. Anything else (KeyError, TypeError, AttributeError, AssertionError...) is a bug in
hfchat: the turn shows an InternalError with a reference, and the log has its traceback."""


class ToolsRefusedError(HFChatError, title="Tools refused"):
    """A server failed a request that offered tools before any token: some servers refuse the
    `tools` field (vLLM without --enable-auto-tool-choice), so the message says how to go on."""
