"""Endpoint backends against a real `transformers serve`, with a recording proxy in front.

What reached the server is asserted on the wire: the stack's silent drops (temperature
0.8, no top_p, no seed, no penalty, model "dummy") each have a test here.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from huggingface_hub.errors import HfHubHTTPError
from langchain_core.messages import HumanMessage, SystemMessage

from hfchat.backends import backend_for
from hfchat.backends.endpoint import ENDPOINT
from hfchat.backends.providers import PROVIDERS
from hfchat.backends.types import joined_text
from hfchat.config import Backend, ChatSettings, GenerationSettings, ModelSpec, RetryPolicy
from hfchat.errors import ConfigError
from hfchat.images import IMAGE_TASK
from hfchat.settings import TASKS
from hfchat.testing.servers import (
    Recorder,
    RecordingProxy,
    TransformersServe,
    chat_route_handler,
    json_response,
    provider_mapping_response,
)

MESSAGES = [SystemMessage("Be brief."), HumanMessage("Hello there")]


def endpoint_settings(url: str, served: str | None = None, **gen: Any) -> ChatSettings:
    spec = ModelSpec(backend=Backend.ENDPOINT, endpoint_url=url)
    generation = GenerationSettings(**{"do_sample": False, **gen})  # greedy unless asked
    return ChatSettings(spec=spec, generation=generation, served_model=served)


def run(settings: ChatSettings, token: str | None = None, messages: Any = MESSAGES) -> str:
    backend = backend_for(settings.spec.backend)
    chat = backend.build(settings.spec, token)
    return joined_text(backend.stream(chat, messages, settings, threading.Event()))


def chat_bodies(proxy: RecordingProxy | Recorder) -> list[dict[str, Any]]:
    return [r.json for r in proxy.requests if r.path.endswith("/chat/completions")]


def test_greedy_is_greedy_on_the_wire_and_repeatable(proxy: RecordingProxy, serve: TransformersServe) -> None:
    """Defect 2: ChatHuggingFace sends temperature 0.8 and drops do_sample=False."""
    settings = endpoint_settings(proxy.url, max_new_tokens=16)
    first, second = run(settings), run(settings)
    assert first and first == second
    bodies = chat_bodies(proxy)
    assert len(bodies) == 2, f"one chat request per reply: {[r.path for r in proxy.requests]}"
    for body in bodies:
        assert body["temperature"] == 0.0
        assert "top_p" not in body
        assert body["max_tokens"] == 16
        assert body["stream"] is True


def test_sampling_sends_temperature_top_p_and_seed(proxy: RecordingProxy) -> None:
    """Defect 4: top_p and seed never reached the endpoint."""
    settings = endpoint_settings(proxy.url, max_new_tokens=12, do_sample=True, temperature=0.9, top_p=0.5, seed=3)
    assert run(settings) == run(settings), "a fixed seed makes sampling repeatable on the server"
    body = chat_bodies(proxy)[0]
    assert (body["temperature"], body["top_p"], body["seed"]) == (0.9, 0.5, 3)


def test_penalty_is_sent_on_the_endpoints_own_scale(proxy: RecordingProxy) -> None:
    """Defect 3: repetition_penalty was copied into frequency_penalty, then not sent at all."""
    run(endpoint_settings(proxy.url, max_new_tokens=8, repetition_penalty=1.3))
    assert "frequency_penalty" not in chat_bodies(proxy)[0], "a local-scale penalty must not leak to an endpoint"
    assert "repetition_penalty" not in chat_bodies(proxy)[0]
    proxy.clear()
    neutral = run(endpoint_settings(proxy.url, max_new_tokens=40))
    penalised = run(endpoint_settings(proxy.url, max_new_tokens=40, frequency_penalty=1.5))
    assert chat_bodies(proxy)[1]["frequency_penalty"] == 1.5
    assert neutral != penalised, "the server must have applied the penalty"


def test_served_model_name_is_sent(proxy: RecordingProxy, serve: TransformersServe) -> None:
    """Defect 5: with endpoint_url the request said model='dummy'; pinned servers answer 400."""
    assert run(endpoint_settings(proxy.url, served=serve.model_name, max_new_tokens=6))
    assert chat_bodies(proxy)[0]["model"] == serve.model_name


def test_served_model_name_is_discovered_when_empty(proxy: RecordingProxy, serve: TransformersServe) -> None:
    assert run(endpoint_settings(proxy.url, max_new_tokens=6))
    assert any(r.path == "/v1/models" for r in proxy.requests)
    assert chat_bodies(proxy)[0]["model"] == serve.model_name


def test_a_wrong_served_name_gets_a_readable_error(proxy: RecordingProxy) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    from hfchat.errors import RequestRejectedError, translate

    with pytest.raises(HfHubHTTPError) as info:
        run(endpoint_settings(proxy.url, served="no-such-model", max_new_tokens=4))
    error = translate(info.value, "The endpoint")
    assert isinstance(error, RequestRejectedError)
    assert "no-such-model" in error.message, "the server's own words are shown"
    assert "Served model name" in error.hint


def test_custom_endpoint_works_with_hf_hub_offline(proxy: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 8: HF_HUB_OFFLINE=1 made huggingface_hub refuse even a loopback endpoint."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert constants.is_offline_mode()
    assert run(endpoint_settings(proxy.url, max_new_tokens=6))
    # The Hub itself stays blocked: offline mode keeps its meaning.
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    with pytest.raises(OfflineModeIsEnabled):
        HfApi(endpoint="http://127.0.0.1:9").model_info("org/model")


def test_named_provider_route_gets_the_token_and_the_url_hub_builds(hub_recorder: Recorder) -> None:
    """The provider route can't be reached from here; its URL is sent to a loopback recorder."""
    hub_recorder.route(
        "GET",
        "/api/models/org/model",
        json_response(provider_mapping_response("org/model", "together", "together/org-model")),
    )
    hub_recorder.route("POST", "/together/v1/chat/completions", chat_route_handler("Hello from together"))
    spec = ModelSpec(backend=Backend.PROVIDERS, model="org/model", provider="together")
    settings = ChatSettings(
        spec=spec, generation=GenerationSettings(max_new_tokens=9, do_sample=True, top_p=0.7, seed=5)
    )
    assert run(settings, token="hf_sentinel_token") == "Hello from together"
    call = next(r for r in hub_recorder.requests if r.path == "/together/v1/chat/completions")
    assert call.headers.get("authorization") == "Bearer hf_sentinel_token"
    assert call.json["model"] == "together/org-model"
    assert (call.json["max_tokens"], call.json["top_p"], call.json["seed"]) == (9, 0.7, 5)


def test_auto_provider_route(hub_recorder: Recorder) -> None:
    hub_recorder.route("POST", "/v1/chat/completions", chat_route_handler("auto says hi"))
    spec = ModelSpec(backend=Backend.PROVIDERS, model="deepseek-ai/DeepSeek-R1-0528", provider="auto")
    greedy = ChatSettings(spec=spec, generation=GenerationSettings(do_sample=False))  # the app samples by default
    assert run(greedy, token="hf_sentinel_token") == "auto says hi"
    call = chat_bodies(hub_recorder)[0]
    assert call["model"] == "deepseek-ai/DeepSeek-R1-0528"
    assert call["temperature"] == 0.0


def test_call_kwargs_per_backend() -> None:
    settings = endpoint_settings("http://127.0.0.1:1", served="m", max_new_tokens=5, frequency_penalty=-0.5)
    common = {"max_tokens": 5, "temperature": 0.0, "frequency_penalty": -0.5}
    assert ENDPOINT.call_kwargs(settings) == {**common, "model": "m"}
    assert PROVIDERS.call_kwargs(settings) == common, "only the endpoint's hook sends the served name"
    spec = ModelSpec(backend=Backend.PROVIDERS, model="org/m", provider="auto")
    sampled = ChatSettings(spec=spec, generation=GenerationSettings(do_sample=True, temperature=0.3, top_p=0.4, seed=2))
    assert PROVIDERS.call_kwargs(sampled) == {"max_tokens": 512, "temperature": 0.3, "top_p": 0.4, "seed": 2}


def test_every_pair_the_settings_allow_has_a_backend_and_others_list_the_valid_pairs() -> None:
    for backend, task in itertools.product(Backend, TASKS):
        assert backend_for(backend, task) is not None
    assert backend_for(Backend.ENDPOINT, IMAGE_TASK) is ENDPOINT
    assert backend_for(Backend.PROVIDERS) is PROVIDERS
    with pytest.raises(ConfigError) as info:
        backend_for(Backend.LOCAL, "summarization")
    assert "summarization" in info.value.message and info.value.field == "task"
    assert "local/image-text-to-text" in info.value.hint and "endpoint/text-generation" in info.value.hint


def test_server_template_refusing_the_system_role_still_chats(serve_nosystem: TransformersServe) -> None:
    """Defect 6 on an endpoint: the server's template raises on the system role."""
    with RecordingProxy(serve_nosystem.url) as proxy:
        settings = endpoint_settings(proxy.url, max_new_tokens=6)
        chat = ENDPOINT.build(settings.spec, None)
        assert joined_text(ENDPOINT.stream(chat, MESSAGES, settings, threading.Event()))
        assert chat.fold_system, "the cached client remembers to fold"
        refused, folded = chat_bodies(proxy)
        assert refused["messages"][0]["role"] == "system"
        assert [m["role"] for m in folded["messages"]] == ["user"]
        assert folded["messages"][0]["content"] == "Be brief.\n\nHello there"
        proxy.clear()
        assert joined_text(ENDPOINT.stream(chat, MESSAGES, settings, threading.Event()))
        assert len(chat_bodies(proxy)) == 1, "no failed attempt once the fold is known"


# Retries: 429 and 503 before the first token, with backoff; counted on the wire and timed.

QUESTION = [HumanMessage("Hello there")]


def timed_run(settings: ChatSettings, cancel: threading.Event | None = None) -> tuple[str | BaseException, float]:
    """The reply (or the error raised), and how long the call took."""
    backend = backend_for(settings.spec.backend)
    chat = backend.build(settings.spec, None)
    started = time.monotonic()
    try:
        result: str | BaseException = joined_text(backend.stream(chat, QUESTION, settings, cancel or threading.Event()))
    except HfHubHTTPError as exc:
        result = exc
    return result, time.monotonic() - started


def retrying(url: str, **policy: Any) -> ChatSettings:
    return endpoint_settings(url, max_new_tokens=6).model_copy(update={"retry": RetryPolicy(**policy)})


def test_429_waits_for_retry_after_then_succeeds(proxy: RecordingProxy) -> None:
    # backoff 5 s: had Retry-After been ignored, two waits would take 15 s.
    proxy.fail_next(429, headers={"Retry-After": "1"}, times=2, path="/v1/chat/completions")
    reply, elapsed = timed_run(retrying(proxy.url, retries=2, backoff=5, max_wait=2))
    assert isinstance(reply, str) and reply
    assert len(chat_bodies(proxy)) == 3, "two refused attempts, then the one that streamed"
    assert 2.0 <= elapsed < 8, elapsed


def test_503_backs_off_exponentially_then_succeeds(proxy: RecordingProxy) -> None:
    proxy.fail_next(503, body='{"error": "Model is loading"}', times=2, path="/v1/chat/completions")
    reply, elapsed = timed_run(retrying(proxy.url, retries=3, backoff=0.3, max_wait=5))
    assert isinstance(reply, str) and reply
    assert len(chat_bodies(proxy)) == 3
    assert elapsed >= 0.3 + 0.6, "waits of 0.3 s then 0.6 s"


def test_retries_are_bounded(proxy: RecordingProxy) -> None:
    proxy.fail_next(503, times=None, path="/v1/chat/completions")
    error, elapsed = timed_run(retrying(proxy.url, retries=2, backoff=0.1, max_wait=0.15))
    assert isinstance(error, HfHubHTTPError) and error.response.status_code == 503
    assert len(chat_bodies(proxy)) == 3, "the first attempt and two retries, no more"
    assert 0.1 + 0.15 <= elapsed < 10, "the second wait is capped at max_wait"


def test_a_retry_after_beyond_the_cap_is_shown_not_waited_for(proxy: RecordingProxy) -> None:
    from hfchat.errors import RateLimitError, translate

    proxy.fail_next(429, headers={"Retry-After": "120"}, times=None, path="/v1/chat/completions")
    error, elapsed = timed_run(retrying(proxy.url, retries=3, backoff=0.1, max_wait=2))
    assert isinstance(error, HfHubHTTPError)
    assert len(chat_bodies(proxy)) == 1 and elapsed < 2
    shown = translate(error, "The endpoint")
    assert isinstance(shown, RateLimitError) and "Try again in 120 s" in shown.hint


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 500, 502])
def test_other_errors_are_never_retried(proxy: RecordingProxy, status: int) -> None:
    proxy.fail_next(status, headers={"Retry-After": "0"}, times=None, path="/v1/chat/completions")
    error, _ = timed_run(retrying(proxy.url, retries=3, backoff=0.05))
    assert isinstance(error, HfHubHTTPError) and error.response.status_code == status
    assert len(chat_bodies(proxy)) == 1


def test_a_started_stream_is_never_retried(proxy: RecordingProxy) -> None:
    import httpx

    proxy.cut_stream_after(3, times=None, path="/v1/chat/completions")
    settings = retrying(proxy.url, retries=3, backoff=0.05).model_copy(
        update={"generation": GenerationSettings(max_new_tokens=40, do_sample=False)}
    )
    backend = backend_for(settings.spec.backend)
    chat = backend.build(settings.spec, None)
    got: list[str] = []
    with pytest.raises(httpx.HTTPError):
        got.extend(backend.stream(chat, QUESTION, settings, threading.Event()))
    assert got, "tokens arrived before the cut"
    assert len(chat_bodies(proxy)) == 1


def test_stop_during_a_retry_wait_ends_the_turn_at_once(proxy: RecordingProxy) -> None:
    proxy.fail_next(503, times=None, path="/v1/chat/completions")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    error, elapsed = timed_run(retrying(proxy.url, retries=5, backoff=30, max_wait=30), cancel)
    assert isinstance(error, HfHubHTTPError)
    assert elapsed < 10 and len(chat_bodies(proxy)) == 1


def _slow_models(delay_s: float, served: str = "pinned-model") -> Recorder:
    """An endpoint whose GET /v1/models answers after `delay_s`; chat answers at once."""

    def models(_req: Any) -> Any:
        time.sleep(delay_s)
        return json_response({"object": "list", "data": [{"id": served, "object": "model"}]})

    return Recorder({("GET", "/v1/models"): models, ("POST", "/v1/chat/completions"): chat_route_handler("Hi.")})


def test_a_slow_model_list_within_the_turns_timeout_is_waited_for() -> None:
    """Issue 14: discovery had a fixed 3 s timeout, so a server taking 5 s failed every turn.
    It now has the turn's own timeout."""
    with _slow_models(3.5) as server:
        spec = ModelSpec(backend=Backend.ENDPOINT, endpoint_url=server.url, timeout=20)
        settings = ChatSettings(spec=spec, generation=GenerationSettings(do_sample=False, max_new_tokens=4))
        assert run(settings) == "Hi."
        assert chat_bodies(server)[0]["model"] == "pinned-model"


def test_a_model_list_slower_than_the_timeout_never_fails_the_turn() -> None:
    """Past the timeout the turn goes on without a discovered name (a configured one wins anyway)."""
    with _slow_models(4) as server:
        spec = ModelSpec(backend=Backend.ENDPOINT, endpoint_url=server.url, timeout=1)
        settings = ChatSettings(spec=spec, generation=GenerationSettings(do_sample=False, max_new_tokens=4))
        started = time.monotonic()
        assert run(settings) == "Hi."
        assert time.monotonic() - started < 4, "the turn did not wait for the whole slow list"
        assert chat_bodies(server)[0]["model"] != "pinned-model"
        named = ChatSettings(spec=spec, generation=settings.generation, served_model="named")
        assert run(named) == "Hi." and chat_bodies(server)[-1]["model"] == "named"
