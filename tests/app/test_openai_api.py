"""The OpenAI-compatible gateway (`--openai-api`) through the official `openai` client and
LangChain's `ChatOpenAI`, against the app in-process (so a test can see the generate thread and
the log): the local backend on the real SmolLM2, a custom endpoint on a real `transformers
serve` behind a recording proxy, and Inference Providers with the loopback recorder as router."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from hfchat.backends.local import GENERATE_THREAD_NAME
from hfchat.cli import parse_options
from hfchat.testing import wait_until
from hfchat.testing.app import RunningApp, running_app
from hfchat.testing.servers import (
    Recorder,
    RecordingProxy,
    chat_route_handler,
    json_response,
    provider_mapping_response,
)
from tests.app.test_api_client import run_readme

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SENTINEL = "hf_sentinel-not-a-real-api-token"


@pytest.fixture(scope="module")
def local(real_model: Path) -> Iterator[RunningApp]:
    args = ["--backend", "local", "--model", str(real_model), "--device", "cpu", "--openai-api"]
    with running_app(parse_options(args, environ={})) as app:
        yield app


def client(app: RunningApp, key: str = "unused", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=app.url + "v1", api_key=key, default_headers=headers or None, max_retries=0)


def local_id(app: RunningApp) -> str:
    return f"local:{app.options.sidebar.model}"


def test_models_lists_the_default_first_then_the_presets(local: RunningApp) -> None:
    ids = [m.id for m in client(local).models.list()]
    assert ids[0] == local_id(local)
    assert "deepseek-ai/DeepSeek-R1-0528" in ids and "local:HuggingFaceH4/zephyr-7b-beta:4bit" in ids
    assert len(ids) == len(set(ids))


def test_local_non_streamed_with_usage_and_greedy_twice(local: RunningApp) -> None:
    ask = dict(model=local_id(local), messages=QUESTION, temperature=0, max_tokens=24)
    first = client(local).chat.completions.create(**ask)  # type: ignore[call-overload]
    assert "Paris" in first.choices[0].message.content
    assert first.choices[0].finish_reason in ("stop", "length")
    assert first.usage.prompt_tokens > 0 and 0 < first.usage.completion_tokens <= 24
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens
    again = client(local).chat.completions.create(**ask)  # type: ignore[call-overload]
    assert again.choices[0].message.content == first.choices[0].message.content


def test_local_streamed_in_chunks_with_usage(local: RunningApp) -> None:
    ask = dict(model=local_id(local), messages=QUESTION, temperature=0, max_tokens=24)
    whole = client(local).chat.completions.create(**ask).choices[0].message.content  # type: ignore[call-overload]
    chunks = list(
        client(local).chat.completions.create(**ask, stream=True, stream_options={"include_usage": True})  # type: ignore[call-overload]
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3, "streamed as it was generated, not in one piece"
    assert "".join(pieces) == whole
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


def test_stop_sequence_and_system_message(local: RunningApp) -> None:
    messages = [{"role": "system", "content": "You answer in one short sentence."}, *QUESTION]
    reply = client(local).chat.completions.create(
        model=local_id(local), messages=messages, temperature=0, max_tokens=24, stop=["Paris"]
    )
    assert "Paris" not in reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "stop"


def test_bad_fields_are_400s_that_name_them(local: RunningApp) -> None:
    for field, value, named in [
        ("max_tokens", 0, "max_tokens"),
        ("max_tokens", 100_000, "max_tokens"),
        ("temperature", 5, "temperature"),
        ("logprobs", True, "logprobs"),
        ("n", 2, "n"),
        ("frequency_penalty", 0.5, "frequency_penalty"),  # the local backend has no such penalty
    ]:
        with pytest.raises(openai.BadRequestError) as raised:
            client(local).chat.completions.create(model=local_id(local), messages=QUESTION, **{field: value})  # type: ignore[call-overload]
        assert raised.value.body["param"] == named, raised.value.body  # type: ignore[index]
        assert named in raised.value.body["message"]  # type: ignore[index]
    with pytest.raises(openai.BadRequestError, match="not a chat-completion field"):
        client(local).chat.completions.create(model=local_id(local), messages=QUESTION, extra_body={"bogus": 1})


def test_unknown_model_is_a_404_in_openais_shape(local: RunningApp) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client(local).chat.completions.create(model="nobody/nothing", messages=QUESTION)
    assert raised.value.body["code"] == "model_not_found"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client(local).models.retrieve("local:elsewhere")


def _generating() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == GENERATE_THREAD_NAME and t.is_alive()]


def test_a_closed_stream_stops_the_local_generation(local: RunningApp) -> None:
    wait_until(lambda: not _generating(), timeout=60, what="no generation left from earlier tests")
    stream = client(local).chat.completions.create(
        model=local_id(local),
        messages=[{"role": "user", "content": "Write a very long story about a dragon."}],
        temperature=0,
        max_tokens=4000,
        stream=True,
    )
    got = 0
    for chunk in stream:
        got += bool(chunk.choices and chunk.choices[0].delta.content)
        if got == 3:
            break
    assert _generating(), "the generation is running while the client reads"
    stream.close()
    wait_until(lambda: not _generating(), timeout=20, what="the generate thread ends after the client left")


def test_langchain_chat_openai_invoke_and_stream(local: RunningApp) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=local.url + "v1",
        api_key="unused",
        model=local_id(local),
        temperature=0,
        max_tokens=24,  # type: ignore[arg-type]
    )
    answer = chat.invoke("What is the capital of France?")
    assert "Paris" in str(answer.content)
    assert answer.usage_metadata and answer.usage_metadata["output_tokens"] > 0
    pieces = [str(c.content) for c in chat.stream("What is the capital of France?")]
    assert len([p for p in pieces if p]) > 3
    assert "".join(pieces) == answer.content


def test_readme_openai_snippet_runs(local: RunningApp) -> None:
    lines = run_readme("HFCHAT_OPENAI_URL", local.url + "v1", "chat.completions.create")
    assert "Paris" in lines[0]
    assert int(lines[1]) > 0
    assert lines[2].strip(), "the streamed reply was printed"


# -- a custom endpoint: a real transformers serve, behind the recording proxy


def test_endpoint_through_the_gateway_sends_the_settings_on_the_wire(proxy: RecordingProxy) -> None:
    args = ["--backend", "endpoint", "--endpoint-url", proxy.url, "--openai-api"]
    with running_app(parse_options(args, environ={})) as app:
        model = next(iter(client(app).models.list())).id
        assert model.startswith("endpoint:127.0.0.1:")
        reply = client(app).chat.completions.create(
            model=model, messages=QUESTION, temperature=0.5, top_p=0.8, seed=7, max_tokens=6, frequency_penalty=0.25
        )
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
        sent = [r.json for r in proxy.requests if r.path.endswith("/chat/completions")][-1]
        assert (sent["temperature"], sent["top_p"], sent["seed"], sent["max_tokens"]) == (0.5, 0.8, 7, 6)
        assert sent["frequency_penalty"] == 0.25
        chunks = list(client(app).chat.completions.create(model=model, messages=QUESTION, max_tokens=6, stream=True))
        assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1


# -- Inference Providers, the loopback recorder standing in for the router


def test_providers_through_the_gateway_with_the_callers_token(
    hub_recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    hub_recorder.route(
        "GET", "/api/models/org/model", json_response(provider_mapping_response("org/model", "together", "t/org-model"))
    )
    hub_recorder.route("POST", "/together/v1/chat/completions", chat_route_handler("Hello from together"))
    args = ["--backend", "providers", "--model", "org/model", "--provider", "together", "--openai-api"]
    caplog.set_level(logging.DEBUG)
    with running_app(parse_options(args, environ={})) as app:
        gateway = client(app, key=SENTINEL)
        reply = gateway.chat.completions.create(model="org/model:together", messages=QUESTION, top_p=0.6, seed=3)
        assert reply.choices[0].message.content == "Hello from together"
        stream = gateway.chat.completions.create(model="org/model:together", messages=QUESTION, stream=True)
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert streamed == "Hello from together"
        raw = httpx.post(
            app.url + "v1/chat/completions",
            headers={"Authorization": f"Bearer {SENTINEL}"},
            json={"model": "org/model:together", "messages": QUESTION, "stream": True},
        ).text
        assert "data: [DONE]" in raw and SENTINEL not in raw
    calls = [r for r in hub_recorder.requests if r.path == "/together/v1/chat/completions"]
    assert all(c.headers.get("authorization") == f"Bearer {SENTINEL}" for c in calls)
    assert (calls[0].json["top_p"], calls[0].json["seed"]) == (0.6, 3)
    assert SENTINEL not in reply.model_dump_json()
    assert SENTINEL not in caplog.text


# -- auth on a public deployment


def test_public_deployment_without_keys_refuses_the_api() -> None:
    args = ["--backend", "providers", "--model", "org/model", "--openai-api", "--public"]
    with running_app(parse_options(args, environ={})) as app:
        with pytest.raises(openai.PermissionDeniedError, match="--api-key"):
            client(app, key=SENTINEL).models.list()
        with pytest.raises(openai.PermissionDeniedError):
            client(app, key=SENTINEL).chat.completions.create(model="org/model", messages=QUESTION)


def test_public_deployment_with_keys_wants_one_of_them(caplog: pytest.LogCaptureFixture) -> None:
    args = ["--backend", "providers", "--model", "org/model", "--openai-api", "--public"]
    caplog.set_level(logging.DEBUG)
    with running_app(parse_options(args, environ={"HFCHAT_API_KEYS": "key-one,key-two"})) as app:
        assert "key-one" not in repr(app.options)
        with pytest.raises(openai.AuthenticationError):
            client(app, key="wrong").models.list()
        assert next(m.id for m in client(app, key="key-two").models.list()) == "org/model"
        with pytest.raises(openai.AuthenticationError, match="X-HF-Token"):  # never the server's token
            client(app, key="key-one").chat.completions.create(model="org/model", messages=QUESTION)
    assert "key-one" not in caplog.text and "key-two" not in caplog.text


def test_the_api_is_off_by_default() -> None:
    with running_app(parse_options(["--backend", "providers", "--model", "org/model"], environ={})) as app:
        assert httpx.get(app.url + "v1/models").status_code == 404
