"""Break 5 of issue 10: the rate limit counts per client address too, on public deployments.

A gradio_client Client is a new session hash for free, so a per-session limit alone lets a
script through at any rate. These tests drive `python app.py --rate-limit 5/min --public`
with new Clients from one address, and the limiter and the address rule directly.
"""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr
import pytest
from gradio_client import Client

from hfchat.errors import TooManyMessagesError
from hfchat.limits import Rate, RateLimiter, client_address
from hfchat.reply import answer_text
from tests.fixtures.browser import AppProcess
from tests.fixtures.servers import Recorder, chat_route_handler

REPLY = "Hello from the endpoint."


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


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
    clock = Clock()
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
    clock = Clock()
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
