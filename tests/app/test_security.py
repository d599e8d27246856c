"""A public demo, end to end: the app launched in-process, driven by gradio_client and raw HTTP.

Tokens never come back (chat, page, /config, API info, event streams, logs, tracebacks,
cache keys), a full queue answers "busy" at once, the per-session rate limit answers in the
chat, and concurrent sessions never see each other's prompts or settings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client
from gradio_client.utils import QueueError

from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.cli import parse_options
from hfchat.config import ModelSpec
from hfchat.limits import RateLimiter
from hfchat.messages import content_text
from hfchat.testing.app import RunningApp
from hfchat.testing.servers import RecordedRequest, Recorder, RecordingProxy, json_response
from tests.fixtures import SENTINEL_TOKEN

PAGES = ("", "config", "gradio_api/info", "gradio_api/info?all_endpoints=true")


@pytest.fixture
def launch(start_app: Callable[..., RunningApp]) -> Callable[..., RunningApp]:
    """Start the app in-process with these flags, queued exactly as `python app.py` does."""

    def start(*flags: str, service: ChatService | None = None) -> RunningApp:
        options = parse_options(list(flags), {})
        service = service or ChatService(
            cache=ModelCache(options.cache_size), limiter=RateLimiter(options.rate_limit), timeout=options.timeout
        )
        return start_app(options, service)

    return start


def text_of(result: Any) -> str:
    """The reply text from what /chat returns: a string, a message dict or a list of them."""
    if isinstance(result, dict) and "content" in result:
        return content_text(result["content"])
    if isinstance(result, list) and all(isinstance(m, dict) and "content" in m for m in result):
        return "\n\n".join(text_of(m) for m in result)
    return content_text(result)


def ask(client: Client, text: str, **settings: Any) -> str:
    """One turn through the API, as the multimodal box sends it; the client keeps the history."""
    return text_of(client.predict(message={"text": text, "files": []}, api_name="/chat", **settings))


def submit(client: Client, text: str, **settings: Any) -> Any:
    return client.submit(message={"text": text, "files": []}, api_name="/chat", **settings)


def echo_401(req: RecordedRequest) -> Any:
    """A provider that quotes the credentials it refused back in its error body."""
    return json_response({"error": f"Invalid credentials: {req.headers.get('authorization', '')}"}, 401)


def sse_messages(url: str, fn_index: int, data: list[Any], session_hash: str) -> list[str]:
    """Run one event the way the browser does and return every raw message the server sent back."""
    body = {"data": data, "fn_index": fn_index, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    joined = httpx.post(url + "gradio_api/queue/join", json=body, timeout=30)
    joined.raise_for_status()
    event_id = joined.json()["event_id"]
    messages = [joined.text]
    with httpx.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session_hash}, timeout=60) as r:
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            messages.append(line)
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                break
    return messages


def test_session_token_never_leaks_after_a_401(
    launch: Callable[..., RunningApp],
    hub_recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    hub_recorder.route("POST", "/v1/chat/completions", echo_401)
    app = launch("--backend", "providers", "--model", "org/model")
    reply = ask(app.client(), "Hi", hf_token=SENTINEL_TOKEN)
    sent = [r.headers.get("authorization", "") for r in hub_recorder.requests]
    assert any(SENTINEL_TOKEN in h for h in sent), "the token really was sent, and echoed back"
    assert reply.startswith("⚠ **Not authorized (401).**") and "Invalid credentials" in reply
    assert SENTINEL_TOKEN not in reply
    for page in PAGES:
        assert SENTINEL_TOKEN not in httpx.get(app.url + page).text, page
    keys = app.service.cache.cached_keys()
    assert len(keys) == 1, f"the turn's client is cached under one key: {keys}"
    assert SENTINEL_TOKEN not in repr(keys[0])
    assert isinstance(keys[0], ModelSpec) and keys[0].token_fingerprint != "anonymous", "keyed by whose token"
    assert "turn failed" in caplog.text
    assert SENTINEL_TOKEN not in caplog.text
    out, err = capfd.readouterr()
    assert SENTINEL_TOKEN not in out + err


def test_environment_token_never_leaks_after_a_401(
    launch: Callable[..., RunningApp],
    hub_recorder: Recorder,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HF_TOKEN", SENTINEL_TOKEN)
    hub_recorder.route("POST", "/v1/chat/completions", echo_401)
    app = launch("--backend", "providers", "--model", "org/model")
    reply = ask(app.client(), "Hi")
    assert any(SENTINEL_TOKEN in r.headers.get("authorization", "") for r in hub_recorder.requests)
    assert "Not authorized" in reply and SENTINEL_TOKEN not in reply
    for page in PAGES:
        assert SENTINEL_TOKEN not in httpx.get(app.url + page).text, page
    assert SENTINEL_TOKEN not in caplog.text
    out, err = capfd.readouterr()
    assert SENTINEL_TOKEN not in out + err


def crashing_build(spec: ModelSpec, token: str | None) -> Callable[[], Any]:
    """A backend whose build crashes with the token in its message (as a careless library might)."""

    def build() -> Any:
        raise RuntimeError(f"backend exploded while holding token={token}")

    return build


def test_a_crash_inside_the_backend_shows_no_token_in_chat_logs_or_traceback(
    launch: Callable[..., RunningApp],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    service = ChatService(cache=ModelCache(2), build=crashing_build)
    app = launch("--backend", "providers", "--model", "org/model", service=service)
    reply = ask(app.client(), "Hi", hf_token=SENTINEL_TOKEN)
    assert reply.startswith("⚠ **Generation failed.**") and "backend exploded" in reply
    assert SENTINEL_TOKEN not in reply
    assert "Traceback (most recent call last)" in caplog.text, "an unexplained error keeps its traceback"
    assert "backend exploded while holding token=hf_***" in caplog.text
    assert SENTINEL_TOKEN not in caplog.text
    out, err = capfd.readouterr()
    assert SENTINEL_TOKEN not in out + err


def test_the_token_box_value_never_comes_back_to_the_browser(
    launch: Callable[..., RunningApp], hub_recorder: Recorder
) -> None:
    """The browser's own path: textbox submit, append to history, then the chat function with
    the sidebar values; every message of every event stream is searched for the token."""
    hub_recorder.route("POST", "/v1/chat/completions", echo_401)
    app = launch("--backend", "providers", "--model", "org/model")
    config = httpx.get(app.url + "config").json()
    components = {c["id"]: c for c in config["components"]}
    token_box = next(i for i, c in components.items() if str(c["props"].get("label", "")).startswith("HF token"))
    assert components[token_box]["props"]["type"] == "password"
    deps = config["dependencies"]
    box = next(i for i, c in components.items() if c["type"] == "multimodaltextbox")
    submit = next(i for i, d in enumerate(deps) if [box, "submit"] in [list(t) for t in d["targets"]])
    chain = [submit, *(i for i, d in enumerate(deps) if d["trigger_after"] == submit)]  # the question, the reply
    session = uuid.uuid4().hex[:11]
    streams: list[str] = []
    for index in chain:
        dep = deps[index]
        assert token_box not in dep["outputs"], "the token box is never an output"
        data: list[Any] = []
        for component_id in dep["inputs"]:
            props = components[component_id]["props"]
            if component_id == token_box:
                data.append(SENTINEL_TOKEN)
            elif components[component_id]["type"] == "multimodaltextbox":
                data.append({"text": "Hello", "files": []})
            elif components[component_id]["type"] in ("state", "browserstate"):
                data.append(None)
            else:
                data.append(props.get("value"))
        streams += sse_messages(app.url, index, data, session)
    assert token_box in deps[chain[-1]]["inputs"], "the chain really sent the token"
    assert any(SENTINEL_TOKEN in r.headers.get("authorization", "") for r in hub_recorder.requests)
    assert any("Not authorized" in m for m in streams), "the chat function ran and answered"
    assert not [m for m in streams if SENTINEL_TOKEN in m]
    for page in PAGES:
        assert SENTINEL_TOKEN not in httpx.get(app.url + page).text, page


def test_no_control_or_api_parameter_offers_remote_code(launch: Callable[..., RunningApp]) -> None:
    app = launch("--backend", "local", "--model", "org/model")
    assert "remote" not in httpx.get(app.url + "config").text.lower()
    assert "remote" not in httpx.get(app.url + "gradio_api/info").text.lower()


def test_a_full_queue_answers_busy_at_once(launch: Callable[..., RunningApp], recorder: Recorder) -> None:
    """One chat at a time, one waiting: the third visitor is told at once that the app is busy."""
    release = threading.Event()

    def slow(req: RecordedRequest) -> Any:
        release.wait(60)
        return json_response({"error": "done waiting"}, 500)

    recorder.route("POST", "/v1/chat/completions", slow)
    recorder.route("GET", "/v1/models", json_response({"data": [{"id": "m"}]}))
    app = launch("--backend", "endpoint", "--endpoint-url", recorder.url, "--concurrency", "1", "--max-queue", "1")
    first = submit(app.client(), "one")
    deadline = time.monotonic() + 60
    while not [r for r in recorder.requests if r.method == "POST"] and time.monotonic() < deadline:
        time.sleep(0.05)
    second = submit(app.client(), "two")
    while second.status().code.name != "IN_QUEUE" and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        began = time.monotonic()
        with pytest.raises(QueueError, match="Queue is full"):
            ask(app.client(), "three")
        assert time.monotonic() - began < 15, "the refusal is prompt, not a hang"
        # The browser gets HTTP 503 from the join, which Gradio's page shows as
        # "This application is currently busy. Please try again."
        body = {"data": [{"text": "x", "files": []}, []], "fn_index": 0, "session_hash": "abc"}
        assert httpx.post(app.url + "gradio_api/queue/join", json=body, timeout=15).status_code == 503
    finally:
        release.set()
    assert "done waiting" in text_of(first.result(timeout=60))
    assert "done waiting" in text_of(second.result(timeout=60)), "the waiting chat is served, not dropped"


def test_rate_limit_answers_in_the_chat_per_session(
    launch: Callable[..., RunningApp], tiny_models: dict[str, Path]
) -> None:
    app = launch(
        "--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu", "--max-new-tokens", "2",
        "--rate-limit", "2/min",
    )  # fmt: skip
    visitor = app.client()
    replies = [ask(visitor, f"turn {i}") for i in range(3)]
    assert not replies[0].startswith("⚠") and not replies[1].startswith("⚠")
    assert replies[2].startswith("⚠ **Busy, try again.**") and "2 messages per minute" in replies[2]
    assert "Try again in" in replies[2]
    assert not ask(app.client(), "hi").startswith("⚠"), "others unaffected"


@dataclass(frozen=True)
class Visitor:
    marker: str
    system_prompt: str
    max_new_tokens: int
    seed: int


def test_concurrent_sessions_never_see_each_others_prompts_or_settings(
    launch: Callable[..., RunningApp], proxy: RecordingProxy
) -> None:
    """8 visitors at once, each with its own system prompt, settings and history, against a real
    `transformers serve`: every request the server got carries one visitor's data only."""
    app = launch("--backend", "endpoint", "--endpoint-url", proxy.url, "--concurrency", "8")
    visitors = [Visitor(f"V{i}X{uuid.uuid4().hex[:6]}", f"You are helper V{i}.", 3 + i, 100 + i) for i in range(8)]
    turns = 3
    barrier = threading.Barrier(len(visitors))

    def converse(v: Visitor) -> list[str]:
        client = app.client()
        barrier.wait(timeout=60)
        return [
            ask(
                client,
                f"{v.marker} turn {t}",
                system_prompt=f"{v.system_prompt} {v.marker}",
                max_new_tokens=v.max_new_tokens,
                seed=v.seed,
            )
            for t in range(turns)
        ]

    with ThreadPoolExecutor(len(visitors)) as pool:
        replies = list(pool.map(converse, visitors))
    assert all(not r.startswith("⚠") for rs in replies for r in rs), replies
    bodies = [r.json for r in proxy.requests if r.path.endswith("/chat/completions")]
    assert len(bodies) == len(visitors) * turns
    seen: dict[str, int] = {}
    for body in bodies:
        text = json.dumps(body["messages"])
        owners = [v for v in visitors if v.marker in text]
        assert len(owners) == 1, f"one visitor's data per request, got {[o.marker for o in owners]}"
        v = owners[0]
        assert body["messages"][0] == {"role": "system", "content": f"{v.system_prompt} {v.marker}"}
        assert (body["max_tokens"], body["seed"]) == (v.max_new_tokens, v.seed)
        users = [m["content"] for m in body["messages"] if m["role"] == "user"]
        turn = len(users) - 1
        assert users == [f"{v.marker} turn {t}" for t in range(turn + 1)], "its own history, in order"
        seen[v.marker] = seen.get(v.marker, 0) + 1
    assert seen == {v.marker: turns for v in visitors}
