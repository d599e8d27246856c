"""Every exception in a turn ends as a readable message in the chat (issue 10, breaks 6 and 11).

Real loopback servers stream the faults: malformed chunks after some text, a connection reset
mid-reply, an error event mid-reply. Invalid endpoint URLs are refused naming `endpoint_url`.
Our own bugs read "Internal error (reference …)" with the traceback in the log. The error path
itself cannot raise: `ModelSpec.where` and `display_url` are total (hypothesis, arbitrary text).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gradio_client import Client
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessageChunk

from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.compare import Side, compare_turn
from hfchat.config import Backend, ModelSpec, build_settings, display_url
from hfchat.errors import ConfigError
from hfchat.reply import answer_text
from hfchat.testing.servers import RecordedRequest, Recorder, Response, free_port, sse_chat_stream, sse_response
from hfchat.updates import ERROR_MARK, Answer, Failed
from tests.fixtures import SENTINEL_TOKEN, sidebar_values
from tests.fixtures.browser import AppProcess

pytestmark = pytest.mark.timeout(300)

PARTIAL = "one two three"
"""What every faulty stream sends before its fault: the reply so far, which must be kept."""


def data(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def partial_then(*fault: str) -> list[str]:
    """A chat-completion stream: the role chunk and PARTIAL's words, then `fault` (and no end)."""
    head = sse_chat_stream(PARTIAL)[:4]  # role, "one", " two", " three"
    return [*head, *fault]


def choice(delta: Any) -> dict[str, Any]:
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


MALFORMED = {
    "delta is a string": data({"choices": [{"delta": "str"}]}),
    "usage is a string": data({"choices": [], "usage": "lots"}),
    "choices is a string": data({"choices": "x"}),
    "a choice is a number": data({"choices": [1]}),
    "the chunk is a list": data([1, 2]),
    "the chunk is not JSON": "data: {nope\n\n",
    "content is a number": data(choice({"content": 5})),
    "reasoning is a list": data(choice({"reasoning_content": ["x"]})),
    "a token count is text": data(
        {"choices": [], "usage": {"prompt_tokens": "many", "completion_tokens": 1, "total_tokens": 2}}
    ),
}


def endpoint_turn(service: ChatService, url: str, message: str = "Hi", **settings: Any) -> list[str]:
    """Every update's answer text for one turn on the endpoint at `url`; never raises."""
    values = sidebar_values(backend="endpoint", endpoint_url=url, max_new_tokens=16, **settings)
    return [answer_text(update) for update in service.respond(message, [], values, SENTINEL_TOKEN)]


def first_then_good(first: list[str]) -> Callable[[RecordedRequest], Response]:
    """A chat route that streams `first` on the first call and a healthy reply after that."""
    calls = itertools.count()

    def handle(req: RecordedRequest) -> Response:
        return sse_response(first if next(calls) == 0 else sse_chat_stream("All good now."))

    return handle


def faulty_endpoint(recorder: Recorder, first: list[str]) -> str:
    recorder.route("GET", "/v1/models", (404, {}, b""))
    recorder.route("POST", "/v1/chat/completions", first_then_good(first))
    return recorder.url


@pytest.fixture
def service() -> ChatService:
    return ChatService(cache=ModelCache(4), timeout=10)


# ------------------------------------------------------------------ malformed chunks (break 6)


@pytest.mark.parametrize("chunk", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_chunk_after_text_is_the_servers_fault_and_the_next_message_works(
    chunk: str, service: ChatService, recorder: Recorder
) -> None:
    url = faulty_endpoint(recorder, partial_then(chunk))
    shown = endpoint_turn(service, url)[-1]
    assert shown.startswith(PARTIAL), f"the partial reply is kept: {shown!r}"
    assert f"\n\n{ERROR_MARK}" in shown
    assert "sent a reply hfchat cannot read" in shown and "OpenAI-compatible" in shown, shown
    assert "Internal error" not in shown and "Generation failed" not in shown
    assert "Traceback" not in shown and SENTINEL_TOKEN not in shown
    assert endpoint_turn(service, url, "Again")[-1] == "All good now.", "the next message is answered"


# --------------------------------------------------------------- invalid endpoint URLs (break 6)

BAD_URLS = {
    "CRLF": "http://127.0.0.1:8000/v1\r\nX-Injected: 1",
    "a tab inside": "http://127.0.0.1:8000/v\t1",
    "a space inside": "http://127.0.0.1:8000/my model",
    "a NUL": "http://127.0.0.1:8000/\x00",
    "65K characters": "http://127.0.0.1:8000/" + "a" * 65_600,
    "just over 2048": "http://127.0.0.1:8000/" + "a" * 2048,
    "port 80000": "http://127.0.0.1:80000",
    "port 0": "http://127.0.0.1:0/v1",
    "port not a number": "http://127.0.0.1:80a/v1",
    "unclosed IPv6": "http://[::1",
    "secret in userinfo, bad port": "http://user:s3cr3t-pw@127.0.0.1:99999/v1",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
def test_an_invalid_endpoint_url_is_refused_naming_the_field(url: str, service: ChatService) -> None:
    with pytest.raises(ConfigError) as refused:
        build_settings(**sidebar_values(backend="endpoint", endpoint_url=url), token_fingerprint="anonymous")
    assert refused.value.field == "endpoint_url"
    shown = endpoint_turn(service, url)
    assert len(shown) == 1
    assert shown[0].startswith(f"{ERROR_MARK} **Invalid setting.** endpoint_url: "), shown[0][:300]
    assert "s3cr3t" not in shown[0], "userinfo is never shown"
    assert len(shown[0]) < 1000, "the message does not echo a huge URL"
    assert not any(unicodedata.category(c) == "Cc" and c != "\n" for c in shown[0]), "no control characters"
    assert re.search(r"such as http://127\.0\.0\.1:8000|between 1 and 65535|2,048|remove", shown[0]), shown[0]


def test_userinfo_in_an_endpoint_url_is_fine_and_never_shown() -> None:
    spec = build_settings(
        **sidebar_values(backend="endpoint", endpoint_url="http://user:s3cr3t-pw@127.0.0.1:8000/v1"),
        token_fingerprint="anonymous",
    ).spec
    assert spec.endpoint_url == "http://user:s3cr3t-pw@127.0.0.1:8000/v1"
    assert "s3cr3t" not in spec.where and spec.where == "The endpoint http://127.0.0.1:8000/v1"


# ------------------------------------------------------------ the error path is total (break 6)

_SECRET = "pw-S3CRET-never-shown"


def _no_secret_or_controls(shown: str) -> None:
    assert _SECRET not in shown
    assert not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in shown), repr(shown)
    assert len(shown) <= 300


def _url_like(scheme: str, user: str, host: str, port: str, rest: str) -> str:
    return f"{scheme}://{user}:{_SECRET}@{host}:{port}/{rest}"


URL_LIKE = st.builds(
    _url_like,
    scheme=st.sampled_from(["http", "https", "", "ftp", "HTTP"]),
    user=st.text(max_size=8),
    host=st.one_of(st.text(max_size=20), st.sampled_from(["[::1", "[::1]", "127.0.0.1", "h\r\nx", "ｅxample"])),
    port=st.one_of(st.text(max_size=8), st.integers(-10, 10**7).map(str)),
    rest=st.text(max_size=30),
)
"""Text shaped like a URL with a password in it: the parser's edge cases (ports, brackets,
NFKC-normalising hosts) are where a plain st.text() rarely goes."""


@given(url=st.text())
def test_display_url_never_raises_on_any_text(url: str) -> None:
    _no_secret_or_controls(display_url(url))


@given(url=URL_LIKE)
def test_display_url_never_raises_or_shows_userinfo_in_url_like_text(url: str) -> None:
    _no_secret_or_controls(display_url(url))


@given(url=st.one_of(st.text(), URL_LIKE), backend=st.sampled_from(list(Backend)), model=st.text(max_size=40))
def test_where_never_raises_on_any_text(url: str, backend: Backend, model: str) -> None:
    spec = ModelSpec.model_construct(backend=backend, endpoint_url=url, model=model, provider=model)
    assert isinstance(spec.where, str) and spec.where
    assert _SECRET not in spec.where


# --------------------------------------------------------------------- our own bugs (break 6)


class _BuggyChat:
    """A chat model whose stream breaks after some text with one of our own bugs (a KeyError,
    say): stands in for hfchat code that is wrong, which no real server can make happen."""

    fold_system = True

    def __init__(self, bug: BaseException) -> None:
        self.bug = bug

    def stream(self, messages: Any, **kwargs: Any) -> Iterator[AIMessageChunk]:
        for word in PARTIAL.split(" "):
            yield AIMessageChunk(content=word + " ")
        raise self.bug


@pytest.mark.parametrize(
    "bug",
    [
        KeyError(f"token={SENTINEL_TOKEN}"),
        TypeError("unsupported operand"),
        AttributeError("'NoneType' object has no attribute 'text'"),
        AssertionError("unreachable"),
        LookupError("some other bug"),
    ],
    ids=lambda bug: type(bug).__name__,
)
def test_our_own_bug_reads_internal_error_with_a_reference_and_keeps_the_reply(
    bug: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    service = ChatService(cache=ModelCache(2), build=lambda spec, token: lambda: _BuggyChat(bug))
    shown = endpoint_turn(service, "http://127.0.0.1:9")[-1]
    found = re.search(r"Internal error \(reference ([0-9a-f]{6,})\); the conversation is kept", shown)
    assert found, shown
    assert shown.startswith(PARTIAL), "the partial reply is kept"
    assert "Generation failed" not in shown and type(bug).__name__ not in shown, "no internals on the page"
    assert SENTINEL_TOKEN not in shown
    logged = caplog.text
    assert found.group(1) in logged and "Traceback (most recent call last)" in logged
    assert type(bug).__name__ in logged
    assert SENTINEL_TOKEN not in logged, "the traceback is redacted"


def test_a_bug_before_any_text_also_reads_internal_error(caplog: pytest.LogCaptureFixture) -> None:
    def build(spec: ModelSpec, token: str | None) -> Callable[[], Any]:
        def crash() -> Any:
            return {}["missing"]

        return crash

    service = ChatService(cache=ModelCache(2), build=build)
    shown = endpoint_turn(service, "http://127.0.0.1:9")
    assert len(shown) == 1 and shown[0].startswith(f"{ERROR_MARK} Internal error (reference "), shown


# ------------------------------------------------------------- wording mid-stream (break 11)


def test_a_connection_reset_after_text_says_the_reply_was_cut_off(service: ChatService, recorder: Recorder) -> None:
    url = faulty_endpoint(recorder, sse_chat_stream(PARTIAL + " four five six seven"))
    recorder.cut_stream_after(4, reset=True, path="/v1/chat/completions")
    shown = endpoint_turn(service, url)[-1]
    assert shown.startswith(PARTIAL), shown
    assert "cut off" in shown and "reset" in shown, shown
    assert "could not be reached" not in shown and "Cannot connect" not in shown
    assert endpoint_turn(service, url, "Again")[-1] == "All good now."


def test_a_closed_connection_after_text_says_the_reply_was_cut_off(service: ChatService, recorder: Recorder) -> None:
    url = faulty_endpoint(recorder, sse_chat_stream(PARTIAL + " four five six seven"))
    recorder.cut_stream_after(4, path="/v1/chat/completions")
    shown = endpoint_turn(service, url)[-1]
    assert shown.startswith(PARTIAL) and "cut off" in shown and "closed the connection" in shown, shown
    assert "Cannot connect" not in shown


ERROR_EVENTS = {
    "data error string": data({"error": "CUDA error: device-side assert triggered", "error_type": "generation"}),
    "event: error, OpenAI-style object": "event: error\n"
    + data({"error": {"message": "CUDA error: device-side assert triggered", "type": "server_error"}}),
}


@pytest.mark.parametrize("event", ERROR_EVENTS.values(), ids=ERROR_EVENTS.keys())
def test_an_error_event_after_text_says_cut_off_in_the_servers_words(
    event: str, service: ChatService, recorder: Recorder
) -> None:
    url = faulty_endpoint(recorder, partial_then(event))
    shown = endpoint_turn(service, url)[-1]
    assert shown.startswith(PARTIAL), shown
    assert "cut off" in shown and "CUDA error: device-side assert triggered" in shown, shown
    assert "could not be reached" not in shown and "Cannot connect" not in shown
    assert "{'message'" not in shown, "the server's words, not a Python dict"
    assert endpoint_turn(service, url, "Again")[-1] == "All good now."


def test_an_error_event_before_any_text_is_the_servers_error_not_a_connection_failure(
    service: ChatService, recorder: Recorder
) -> None:
    url = faulty_endpoint(recorder, [ERROR_EVENTS["data error string"]])
    shown = endpoint_turn(service, url)[-1]
    assert "could not be reached" not in shown and "CUDA error" in shown and "cut off" not in shown, shown


# ------------------------------------------------------------------------------- compare mode


def test_compare_mode_shows_the_same_readable_messages(service: ChatService, recorder: Recorder) -> None:
    url = faulty_endpoint(recorder, partial_then(MALFORMED["delta is a string"]))
    sides = [
        Side([], sidebar_values(backend="endpoint", endpoint_url=url)),
        Side([], sidebar_values(backend="endpoint", endpoint_url="http://127.0.0.1:80000")),
    ]
    # A bad setting is a refusal of the whole compare turn (one toast in the UI), naming its side.
    with pytest.raises(ConfigError, match=r"^B's settings: endpoint_url:.*65535"):
        compare_turn(service, "Hi", sides, None)
    closed = Side([], sidebar_values(backend="endpoint", endpoint_url=f"http://127.0.0.1:{free_port()}"))
    views = list(compare_turn(service, "Hi", [sides[0], closed], None))[-1]
    assert [type(u) for u in views[0].reply] == [Answer, Failed] and [type(u) for u in views[1].reply] == [Failed]
    a, b = (answer_text(view.reply) for view in views)
    assert a.startswith(PARTIAL) and "sent a reply hfchat cannot read" in a, a
    assert b.startswith(ERROR_MARK) and "refused the connection" in b, b


# ---------------------------------------------------------------------------------- the API


@pytest.fixture
def faulty_app(recorder: Recorder, launch_app: Callable[..., AppProcess]) -> AppProcess:
    url = faulty_endpoint(recorder, partial_then(MALFORMED["delta is a string"]))
    return launch_app("--backend", "endpoint", "--endpoint-url", url, "--max-new-tokens", "16")


def test_over_the_api_a_malformed_chunk_and_a_bad_url_are_readable_messages_not_apperror(
    faulty_app: AppProcess,
) -> None:
    client = Client(faulty_app.url, verbose=False)
    first = answer_text(client.predict(message={"text": "Hi", "files": []}, api_name="/chat"))
    assert first.startswith(PARTIAL) and "sent a reply hfchat cannot read" in first, first
    bad = client.predict(message={"text": "Hi", "files": []}, endpoint_url="http://127.0.0.1:80000", api_name="/chat")
    assert answer_text(bad).startswith(f"{ERROR_MARK} **Invalid setting.** endpoint_url:"), bad
    crlf = client.predict(message={"text": "Hi", "files": []}, endpoint_url="http://h/\r\nX: 1", api_name="/chat")
    assert answer_text(crlf).startswith(f"{ERROR_MARK} **Invalid setting.** endpoint_url:"), crlf
    again = answer_text(client.predict(message={"text": "Again", "files": []}, api_name="/chat"))
    assert again == "All good now."


# ------------------------------------------------------------------------------ the pieces


def test_bugs_are_not_recoverable_and_invalid_urls_are() -> None:
    import httpx

    from hfchat.errors import RECOVERABLE, translate

    for bug in (KeyError, TypeError, AttributeError, AssertionError):
        assert not issubclass(bug, RECOVERABLE), bug
    assert issubclass(httpx.InvalidURL, RECOVERABLE)
    error = translate(httpx.InvalidURL("Invalid non-printable ASCII character in URL"), "The endpoint x")
    assert isinstance(error, ConfigError) and error.field == "endpoint_url"


def test_only_failures_inside_huggingface_hubs_line_parser_blame_the_server() -> None:
    from hfchat.backends.remote import _server_chunks
    from hfchat.errors import MalformedChunk

    def ours() -> Iterator[Any]:
        yield from ()
        raise AttributeError("a bug of ours, not the server's bytes")

    with pytest.raises(AttributeError):
        list(_server_chunks(ours()))

    from huggingface_hub.inference._common import _stream_chat_completion_response

    with pytest.raises(MalformedChunk, match="not a JSON object"):
        list(_server_chunks(_stream_chat_completion_response(iter(["data: [1, 2]"]))))
