"""One chat turn through ChatService.respond against real faults: readable message, history
kept, and the next message works."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from importlib.abc import MetaPathFinder
from pathlib import Path
from typing import Any

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.messages import history_to_messages
from tests.fixtures.servers import RecordingProxy, TransformersServe, free_port

HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def turn(fn: Any, message: str = "Hello there", history: list[dict[str, Any]] | None = None, **kw: Any) -> list[str]:
    """Every update the chat window would show for one turn."""
    history = list(HISTORY if history is None else history)
    before = list(history)
    updates = list(fn(message, history, **kw))
    assert history == before, "a turn never changes the history it was given"
    return updates


@pytest.fixture
def endpoint_chat(proxy: RecordingProxy) -> Iterator[Any]:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url, "--max-new-tokens", "8"], {})
    yield make_chat_fn(ChatService(cache=ModelCache(2), timeout=2), options)


def test_endpoint_reply_streams_in_several_updates(endpoint_chat: Any) -> None:
    updates = turn(endpoint_chat, max_new_tokens=12)
    assert len(updates) >= 2
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(updates))


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (401, "Not authorized"),
        (403, "request access"),
        (404, "Model not found"),
        (422, "rejected the request"),
        (429, "Try again in 2 s"),
        (500, "HTTP 500"),
        (503, "still be loading"),
    ],
)
def test_http_faults_show_a_message_and_the_next_turn_works(
    endpoint_chat: Any, proxy: RecordingProxy, status: int, words: str
) -> None:
    proxy.fail_next(
        status=status, body='{"error": "injected"}', headers={"Retry-After": "2"}, path="/v1/chat/completions"
    )
    shown = turn(endpoint_chat)[-1]
    assert shown.startswith("⚠️") and words in shown
    assert "Traceback" not in shown
    after = turn(endpoint_chat)[-1]
    assert after and not after.startswith("⚠️")


def test_read_timeout(endpoint_chat: Any, proxy: RecordingProxy) -> None:
    proxy.delay(5, times=1, path="/v1/chat/completions")
    shown = turn(endpoint_chat)[-1]
    assert "Timed out" in shown or "did not answer in time" in shown
    proxy.delay(0)
    assert not turn(endpoint_chat)[-1].startswith("⚠️")


def test_server_dies_mid_stream_keeps_the_partial_reply(endpoint_chat: Any, proxy: RecordingProxy) -> None:
    proxy.cut_stream_after(3, path="/v1/chat/completions")
    updates = turn(endpoint_chat, max_new_tokens=40)
    final = updates[-1]
    assert "⚠️" in final and not final.startswith("⚠️"), "the partial reply stays, followed by the notice"
    partial = final.split("\n\n⚠️")[0]
    assert partial and partial in updates[-2]
    history = [{"role": "user", "content": "Hello there"}, {"role": "assistant", "content": final}]
    assert history_to_messages(history)[-1].content == partial, "the notice never reaches the model"
    assert not turn(endpoint_chat)[-1].startswith("⚠️")


def test_killed_server_then_restart(serve: TransformersServe, proxy: RecordingProxy, endpoint_chat: Any) -> None:
    serve.stop()
    shown = turn(endpoint_chat)[-1]
    assert shown.startswith("⚠️")
    serve.restart()
    assert not turn(endpoint_chat)[-1].startswith("⚠️")


def test_refused_connection_and_bad_host() -> None:
    fn = make_chat_fn(ChatService(timeout=2), parse_options([], {}))
    refused = turn(fn, backend="endpoint", endpoint_url=f"http://127.0.0.1:{free_port()}")[-1]
    assert "refused the connection" in refused
    dns = turn(fn, backend="endpoint", endpoint_url="http://no-such-host.invalid:8000")[-1]
    assert "does not resolve" in dns


def test_empty_message_is_refused() -> None:
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    assert "Type a message" in turn(fn, message="   ")[-1]


class _HideBitsandbytes(MetaPathFinder):
    """Makes bitsandbytes look uninstalled, as on a machine without it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "bitsandbytes" or name.startswith("bitsandbytes."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


def test_4bit_without_bitsandbytes_says_how_to_install(
    tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "meta_path", [_HideBitsandbytes(), *sys.meta_path])
    for name in [m for m in sys.modules if m.startswith("bitsandbytes")]:
        monkeypatch.delitem(sys.modules, name)
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    shown = turn(fn, backend="local", model=str(tiny_models["chat"]), load_in_4bit=True, device="cpu")[-1]
    assert "4-bit" in shown and "pip install bitsandbytes" in shown


def test_cuda_asked_for_without_a_gpu(tiny_models: dict[str, Path]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    shown = turn(fn, backend="local", model=str(tiny_models["chat"]), device="cuda")[-1]
    assert "CUDA" in shown and "'cpu'" in shown


def test_local_turn_shows_loading_then_the_reply(tiny_models: dict[str, Path]) -> None:
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    updates = turn(fn, backend="local", model=str(tiny_models["chat"]), device="cpu", max_new_tokens=6)
    assert updates[0].startswith("⏳ Loading")
    assert len(updates) >= 3 and not updates[-1].startswith(("⏳", "⚠️"))
    again = turn(fn, backend="local", model=str(tiny_models["chat"]), device="cpu", max_new_tokens=6)
    assert not again[0].startswith("⏳"), "a cached model needs no loading notice"


def test_each_visitor_token_gets_its_own_client(proxy: RecordingProxy) -> None:
    service = ChatService(cache=ModelCache(4), timeout=5)
    fn = make_chat_fn(service, parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url], {}))
    for token in ("hf_visitor_a", "hf_visitor_b", "hf_visitor_a"):
        assert not turn(fn, hf_token=token, max_new_tokens=3)[-1].startswith("⚠️")
    assert service.cache.stats.builds == 2, "two tokens, two clients; the same token reuses its own"
    assert all("hf_visitor" not in repr(key) for key in service.cache.cached_keys())


def test_an_empty_reply_is_explained(recorder: Any) -> None:
    from tests.fixtures.servers import chat_route_handler

    recorder.route("GET", "/v1/models", (404, {}, b""))
    recorder.route("POST", "/v1/chat/completions", chat_route_handler(""))
    fn = make_chat_fn(
        ChatService(timeout=5), parse_options(["--backend", "endpoint", "--endpoint-url", recorder.url], {})
    )
    shown = turn(fn)[-1]
    assert shown.startswith("⚠️ **Empty reply.**")


def test_offline_mode_blocks_providers_with_a_message_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    fn = make_chat_fn(ChatService(timeout=5), parse_options([], {}))
    shown = turn(fn, backend="providers", model="org/model", provider="together", hf_token="hf_x")[-1]
    assert "HF_HUB_OFFLINE" in shown and shown.startswith("⚠️ **Offline mode.**")
