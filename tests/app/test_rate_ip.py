"""Break 5 of issue 10: the rate limit counts per client address too, on public deployments.

A gradio_client Client is a new session hash for free, so a per-session limit alone lets a
script through at any rate. These tests drive `python app.py --rate-limit 5/min --public`
with new Clients from one address, and the limiter and the address rule directly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import gradio as gr
import pytest
from gradio_client import Client

from hfchat.chat import ChatService
from hfchat.errors import TooManyMessagesError
from hfchat.limits import ActiveTurns, Rate, RateLimiter, client_address
from hfchat.policy import DeploymentPolicy
from hfchat.reply import answer_text
from hfchat.testing import FakeClock
from hfchat.testing.servers import (
    RecordedRequest,
    Recorder,
    Response,
    chat_route_handler,
    sse_chat_stream,
    sse_response,
)
from tests.fixtures import sidebar_values
from tests.fixtures.browser import AppProcess, wait_until

REPLY = "Hello from the endpoint."


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Recorder]:
    with Recorder({("POST", "/v1/chat/completions"): chat_route_handler(REPLY)}) as server:
        yield server


@pytest.fixture(scope="module")
def public_app(endpoint: Recorder) -> Iterator[AppProcess]:
    flags = ["--backend", "endpoint", "--endpoint-url", endpoint.url, "--rate-limit", "5/min", "--public"]
    with AppProcess(*flags) as app:
        yield app


def ask(client: Client) -> str:
    return answer_text(client.predict(message={"text": "Hi", "files": []}, api_name="/chat"))


def test_new_sessions_from_one_address_share_one_allowance(public_app: AppProcess) -> None:
    replies = [ask(Client(public_app.url, verbose=False)) for _ in range(8)]
    admitted = [r for r in replies if r == REPLY]
    refused = [r for r in replies if "Try again in" in r]
    assert len(admitted) == 5, replies
    assert len(refused) == 3 and all("Your conversation is kept." in r for r in refused), replies
    # Another address (as a reverse proxy on this host reports it, which uvicorn trusts) has its own.
    other = Client(public_app.url, verbose=False, headers={"X-Forwarded-For": "203.0.113.9"})
    assert ask(other) == REPLY


def test_a_new_session_is_not_a_new_allowance() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(2, 60), clock=clock)
    limiter.admit("tab-1", "198.51.100.1")
    limiter.admit("tab-2", "198.51.100.1")
    with pytest.raises(TooManyMessagesError) as caught:
        limiter.admit("tab-3", "198.51.100.1")
    assert caught.value.retry_after == 60
    limiter.admit("tab-3", "198.51.100.2")  # another address: its own allowance
    clock.now += 61
    limiter.admit("tab-4", "198.51.100.1")  # the window slid


def test_a_turn_must_fit_both_allowances_and_a_refusal_counts_against_neither() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Rate(1, 60), clock=clock)
    limiter.admit("tab", "198.51.100.1")
    with pytest.raises(TooManyMessagesError):
        limiter.admit("tab", "198.51.100.2")  # the session is full, the new address is not
    limiter.admit("other-tab", "198.51.100.2")  # so that refusal did not use the address's turn
    limiter.admit("third-tab", None)  # no address known (a private deployment): per session only


def test_on_a_space_the_address_is_the_last_public_one_the_proxies_forwarded() -> None:
    forwarded = "6.6.6.6, 81.2.69.142, 10.16.3.80"  # forged by the visitor, the visitor, an internal hop
    request = gr.Request(headers={"x-forwarded-for": forwarded}, client={"host": "10.16.3.1", "port": 1})
    assert client_address(request, on_space=True) == "81.2.69.142"
    # Off a Space the header is not trusted here: uvicorn already applied it for trusted proxies.
    assert client_address(request, on_space=False) == "10.16.3.1"
    no_header = gr.Request(headers={}, client={"host": "10.16.3.1", "port": 1})
    assert client_address(no_header, on_space=True) == "10.16.3.1"
    assert client_address(gr.Request(headers={"x-forwarded-for": "[2001:db8::1]:443, junk"}), True) is None
    assert client_address(gr.Request(headers={"x-forwarded-for": "8.8.8.8:1234"}), True) == "8.8.8.8"
    assert client_address(None) is None


def test_turns_running_at_once_are_capped_per_address() -> None:
    active = ActiveTurns(2)
    held = [active.acquire("1.2.3.4"), active.acquire("1.2.3.4")]
    with pytest.raises(TooManyMessagesError, match="at most 2 replies at once"):
        active.acquire("1.2.3.4")
    other = active.acquire("5.6.7.8")
    assert active.running("1.2.3.4") == 2 and active.running("5.6.7.8") == 1
    active.release(held[0])
    assert active.acquire("1.2.3.4") == "1.2.3.4", "a finished turn frees its place"
    for h in [held[1], other, "1.2.3.4"]:
        active.release(h)
    assert active.running("1.2.3.4") == 0 and not active._running, "nothing is kept once turns end"
    unlimited = ActiveTurns(0)
    assert [unlimited.acquire("1.2.3.4") for _ in range(50)] == [None] * 50
    assert ActiveTurns(1).acquire(None) is None, "a private deployment passes no address"


def test_a_slow_reply_holds_its_visitors_place_until_it_ends() -> None:
    """One address cannot fill the workers with slow streams: its next turn is refused at
    once while its earlier ones run, and another address is served meanwhile."""
    release = threading.Event()

    def slow(req: RecordedRequest) -> Response:
        def body() -> Iterator[str]:
            events = sse_chat_stream("Slow start and the end.")
            yield events[0]
            release.wait(30)
            yield from events[1:]

        return sse_response(body())

    with Recorder({("POST", "/v1/chat/completions"): slow}) as server:
        service = ChatService(
            policy=DeploymentPolicy.of(public=True, operator_endpoint=server.url), active=ActiveTurns(1)
        )
        values = sidebar_values(backend="endpoint", endpoint_url=server.url)

        def turn(client: str, session: str) -> str:
            updates = service.respond({"text": "Hi", "files": []}, [], values, None, session, client=client)
            return answer_text(list(updates)[-1])

        first = threading.Thread(target=turn, args=("10.9.8.7", "a"))
        first.start()
        posted = lambda: [r for r in server.requests if r.method == "POST"]  # noqa: E731
        wait_until(posted, 30, "the first turn to stream")
        refused = turn("10.9.8.7", "b")
        assert refused.startswith("⚠ **Busy, try again.**") and "at most 1 replies at once" in refused, refused
        assert "conversation is kept" in refused
        assert len(posted()) == 1, "the refused turn sent nothing"
        bystander = threading.Thread(target=turn, args=("10.1.1.1", "c"))
        bystander.start()
        wait_until(lambda: service.active.running("10.1.1.1") == 1, 30, "another address to be served meanwhile")
        release.set()
        first.join(30)
        bystander.join(30)
        assert service.active.running("10.9.8.7") == 0
        again = turn("10.9.8.7", "d")
        assert again and not again.startswith("⚠"), f"its place is free again: {again}"
