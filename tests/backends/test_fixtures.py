"""Sanity checks for the offline harness: if these fail, app tests cannot be trusted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hfchat.testing.servers import (
    RecordedRequest,
    Recorder,
    RecordingProxy,
    TransformersServe,
    chat_route_handler,
    json_response,
    provider_mapping_response,
    sse_reasoning_stream,
    sse_response,
)
from hfchat.testing.tiny_models import STAMP_FILE, build_all

USER_ONLY = [{"role": "user", "content": "Hello there, how are you?"}]
WITH_SYSTEM = [{"role": "system", "content": "Be brief."}, *USER_ONLY]


def _greedy(model_dir: Path, prompt: Any) -> str:
    from transformers import pipeline

    pipe = pipeline("text-generation", model=str(model_dir))
    out = pipe(prompt, max_new_tokens=20, do_sample=False, return_full_text=False)
    return str(out[0]["generated_text"])


# ----------------------------------------------------------------------- models


@pytest.mark.parametrize("name", ["chat", "plain", "nosystem", "think"])
def test_tiny_model_greedy_text_is_visible_and_deterministic(tiny_models: dict[str, Path], name: str) -> None:
    prompt = "Hello there, how are you?" if name == "plain" else USER_ONLY
    first = _greedy(tiny_models[name], prompt)
    assert first.strip(), f"{name} gave blank text {first!r}"
    assert " " in first.strip()  # ByteLevel decoding gives words, not byte soup
    assert first.isascii() and first.isprintable()
    assert _greedy(tiny_models[name], prompt) == first


def test_chat_templates(tiny_models: dict[str, Path]) -> None:
    from jinja2 import TemplateError
    from transformers import AutoTokenizer

    def render(name: str, messages: list[dict[str, str]]) -> str:
        tok = AutoTokenizer.from_pretrained(tiny_models[name])
        return str(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    assert render("chat", WITH_SYSTEM) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHello there, how are you?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render("think", USER_ONLY).endswith("<|im_start|>assistant\n<think>\n")
    assert render("nosystem", USER_ONLY).endswith("<|im_start|>assistant\n")
    with pytest.raises(TemplateError, match="System role not supported"):
        render("nosystem", WITH_SYSTEM)
    assert AutoTokenizer.from_pretrained(tiny_models["plain"]).chat_template is None


def test_t5_loads_and_generates(tiny_models: dict[str, Path]) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_models["t5"])
    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_models["t5"])
    out = model.generate(**tok("summarize this", return_tensors="pt"), max_new_tokens=8)
    assert str(tok.decode(out[0], skip_special_tokens=True)).strip()


def test_models_are_small_safetensors_and_cached(tiny_models: dict[str, Path]) -> None:
    for path in tiny_models.values():
        assert (path / "model.safetensors").is_file()
        size = sum(f.stat().st_size for f in path.iterdir())
        assert size < 5_000_000, f"{path} is {size} bytes"
    stamps = {n: (p / STAMP_FILE).stat().st_mtime_ns for n, p in tiny_models.items()}
    started = time.monotonic()
    assert build_all(next(iter(tiny_models.values())).parent) == tiny_models
    assert time.monotonic() - started < 1.0
    assert {n: (p / STAMP_FILE).stat().st_mtime_ns for n, p in tiny_models.items()} == stamps


# ------------------------------------------------------- transformers serve + proxy


def _sse_data(raw: bytes) -> list[str]:
    return [line.removeprefix(b"data: ").decode() for line in raw.splitlines() if line.startswith(b"data: ")]


def test_proxy_records_real_streaming_completion(proxy: RecordingProxy, serve: TransformersServe) -> None:
    body = {"model": serve.model_name, "messages": USER_ONLY, "max_tokens": 60, "stream": True}
    arrivals: list[tuple[float, bytes]] = []
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        arrivals = [(time.monotonic(), chunk) for chunk in r.iter_raw()]

    assert len(arrivals) > 1, "the SSE stream arrived in one piece"
    assert arrivals[-1][0] > arrivals[0][0]
    events = [json.loads(d) for d in _sse_data(b"".join(c for _, c in arrivals))]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert text.strip()
    assert events[-1]["choices"][0]["finish_reason"] == "length"

    (req,) = proxy.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.json == body
    assert req.headers["content-type"] == "application/json"


def test_proxy_forwards_each_event_as_it_arrives() -> None:
    def slow(_: RecordedRequest):
        def events() -> Iterator[str]:
            for i in range(3):
                yield f'data: {{"n": {i}}}\n\n'
                time.sleep(0.2)

        return sse_response(events())

    with Recorder({("POST", "/v1/chat/completions"): slow}) as upstream, RecordingProxy(upstream.url) as proxy:
        started = time.monotonic()
        with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json={}) as r:
            lines = r.iter_lines()
            first = next(lines)
            first_at = time.monotonic() - started
            rest = [line for line in lines if line]
    assert first == 'data: {"n": 0}'
    assert first_at < 0.15, "the proxy buffered the stream"
    assert rest == ['data: {"n": 1}', 'data: {"n": 2}']


def test_serve_is_pinned_to_model_name(proxy: RecordingProxy, serve: TransformersServe) -> None:
    models = httpx.get(f"{proxy.url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == [serve.model_name]
    msg = {"messages": USER_ONLY, "max_tokens": 2}
    wrong = httpx.post(f"{proxy.url}/v1/chat/completions", json={**msg, "model": "dummy"})
    assert wrong.status_code == 400
    assert "pinned" in wrong.text
    missing = httpx.post(f"{proxy.url}/v1/chat/completions", json=msg)
    assert missing.status_code == 200


def test_fail_next_then_recover(proxy: RecordingProxy) -> None:
    proxy.fail_next(status=429, body='{"error": "slow down"}', headers={"Retry-After": "1"})
    failed = httpx.get(f"{proxy.url}/v1/models")
    assert failed.status_code == 429
    assert failed.headers["retry-after"] == "1"
    assert failed.json() == {"error": "slow down"}
    assert httpx.get(f"{proxy.url}/v1/models").status_code == 200
    assert [r.path for r in proxy.requests] == ["/v1/models", "/v1/models"]


def test_cut_stream_after(proxy: RecordingProxy, serve: TransformersServe) -> None:
    proxy.cut_stream_after(2)
    body = {"model": serve.model_name, "messages": USER_ONLY, "max_tokens": 50, "stream": True}
    got: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body) as r,
    ):
        got.extend(line for line in r.iter_lines() if line)
    assert len(got) == 2


def test_delay_trips_read_timeout(proxy: RecordingProxy) -> None:
    proxy.delay(1.0)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{proxy.url}/v1/models", timeout=httpx.Timeout(5, read=0.2))
    proxy.delay(0)
    assert httpx.get(f"{proxy.url}/v1/models").status_code == 200


@pytest.mark.slow  # a restart costs a few seconds
def test_killed_server_gives_502_then_restarts(proxy: RecordingProxy, serve: TransformersServe) -> None:
    pid = serve.proc.pid if serve.proc else -1
    serve.stop()
    assert not serve.alive
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert httpx.get(f"{proxy.url}/v1/models").status_code == 502
    serve.restart()
    assert httpx.get(f"{proxy.url}/health").json() == {"status": "ok"}


# ------------------------------------------------------ Inference Providers route


def test_named_provider_route_hits_recorder(hub_recorder: Recorder) -> None:
    from huggingface_hub import InferenceClient

    mapping = provider_mapping_response("org/model", "together", "together/model-x")
    hub_recorder.route("GET", "/api/models/org/model", json_response(mapping))
    hub_recorder.route("POST", "/together/v1/chat/completions", chat_route_handler("Hi from P"))

    client = InferenceClient(provider="together", api_key="hf_test_sentinel")
    stream = client.chat_completion(messages=USER_ONLY, model="org/model", stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)

    assert text == "Hi from P"
    hub_call, chat_call = hub_recorder.requests
    assert (hub_call.method, hub_call.path) == ("GET", "/api/models/org/model")
    assert hub_call.query == {"expand": ["inferenceProviderMapping"]}
    assert (chat_call.method, chat_call.path) == ("POST", "/together/v1/chat/completions")
    assert chat_call.headers["authorization"] == "Bearer hf_test_sentinel"
    assert chat_call.json["model"] == "together/model-x"
    assert chat_call.json["stream"] is True


def test_reasoning_stream_helper() -> None:
    events = sse_reasoning_stream("Let me think.", "Answer.")
    assert events[-1] == "data: [DONE]\n\n"
    deltas = [json.loads(e[6:])["choices"][0]["delta"] for e in events[:-1]]
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "Let me think."
    assert "".join(d.get("content", "") for d in deltas) == "Answer."
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all("reasoning_content" not in d for d in deltas[first_content:])
