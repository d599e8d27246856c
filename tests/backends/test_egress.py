"""Where requests go and what they carry (hfchat.net): the token rule, DNS pinning,
redirects and credential-free logs, on the wire of real loopback servers.

"Public" hosts are names served by a stand-in resolver (tests/fixtures/fakedns.py): they
resolve to a public address whose connections are rewritten to a loopback recorder, so the
app's own checks see a public internet host while every packet stays on this machine.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from hfchat import net
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.reply import answer_text
from hfchat.testing.servers import RecordedRequest, Recorder, chat_route_handler, json_response
from tests.fixtures import SENTINEL_TOKEN
from tests.fixtures.browser import AppProcess
from tests.fixtures.fakedns import ENV_VAR, PUBLIC_ADDRESS, FakeDNS

DNS_SITE = str(Path(__file__).resolve().parents[1] / "fixtures" / "dns_site")
REPLY = "hello from the endpoint"


def chat_fn(*flags: str) -> Any:
    options = parse_options(["--backend", "endpoint", *flags], {})
    service = ChatService(policy=options.deployment_policy, endpoint_api_key=options.endpoint_api_key)
    return make_chat_fn(service, options)


def last_text(fn: Any, message: str = "Hello", **values: Any) -> str:
    return answer_text(list(fn({"text": message, "files": []}, [], **values))[-1])


def authorizations(recorder: Recorder) -> list[str | None]:
    return [r.headers.get("authorization") for r in recorder.requests]


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    """An OpenAI-compatible endpoint on loopback that answers every chat."""
    with Recorder() as recorder:
        recorder.route("POST", "/v1/chat/completions", chat_route_handler(REPLY))
        yield recorder


@pytest.fixture
def internal() -> Iterator[Recorder]:
    """A service on the server's own network that no visitor may reach."""
    with Recorder() as recorder:
        recorder.route("POST", "/v1/chat/completions", chat_route_handler("the internal service's secret"))
        recorder.route("GET", "/", json_response({"secret": "internal"}))
        yield recorder


# ------------------------------------------------------------------ the token rule


@pytest.mark.parametrize(
    ("url", "hf"),
    [
        ("https://huggingface.co/api/models", True),
        ("https://router.huggingface.co/v1/chat/completions", True),
        ("http://router.huggingface.co/v1", False),  # not over TLS
        ("https://huggingface.co.evil.example/v1", False),
        ("https://huggingface.co@evil.example/v1", False),  # userinfo, not the host
        ("https://evilhuggingface.co/v1", False),
        ("https://someone-demo.hf.space/v1", False),  # a Space is someone's app
        ("https://x.endpoints.huggingface.cloud/v1", False),  # only when the operator configured it
        ("http://127.0.0.1:8000/v1", False),
        ("http://[::1]:80000/v1", False),  # a bad port matches nothing, and does not raise
    ],
)
def test_only_hugging_face_services_count_as_hugging_face(url: str, hf: bool) -> None:
    assert net.is_hf_service(url) is hf


def test_the_hub_endpoint_in_use_counts_as_hugging_face(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:4567")
    assert net.is_hf_service("http://127.0.0.1:4567/api/models/x")
    assert not net.is_hf_service("http://127.0.0.1:4568/api/models/x")


def test_which_key_an_endpoint_gets() -> None:
    hf, op = SENTINEL_TOKEN, "https://x.endpoints.huggingface.cloud"
    key = net.endpoint_key
    assert key("http://127.0.0.1:8000/v1", hf_token=hf) is None, "the owner's token never goes to a custom host"
    assert key("https://demo.hf.space/v1", hf_token=hf) is None, "nor to a Space a visitor typed"
    assert key(op + "/v1", hf_token=hf) is None, "nor to an Inference Endpoint the operator did not configure"
    assert key(op + "/v1", hf_token=hf, operator_url=op) == hf, "the operator's own Inference Endpoint"
    assert key("https://router.huggingface.co/v1", hf_token=hf) == hf
    assert key("http://10.0.0.5:8000/v1", hf_token=hf, operator_url="http://10.0.0.5:8000", operator_key="op") == "op"
    assert key("http://10.0.0.5:8000/v1", hf_token=hf, operator_url="http://10.0.0.5:8000") is None
    assert key("http://1.2.3.4/v1", hf_token=hf, operator_url="http://10.0.0.5:8000", operator_key="op") is None
    assert key("http://1.2.3.4/v1", hf_token=hf, visitor_key=" mine ") == "mine"


def test_the_request_hook_drops_a_hugging_face_token_bound_for_any_other_host() -> None:
    """The backstop behind the explicit keys: even a registered HF token stays home."""
    net.register_endpoint("http://127.0.0.1:1", SENTINEL_TOKEN)
    for value in (f"Bearer {SENTINEL_TOKEN}", f"Bearer {net.NO_CREDENTIALS}", "Bearer unregistered-key"):
        request = httpx.Request("POST", "http://127.0.0.1:1/v1/chat/completions", headers={"Authorization": value})
        net.EGRESS.on_request(request)
        assert "authorization" not in request.headers, value
    net.register_endpoint("http://127.0.0.1:1", "operator-key")
    request = httpx.Request("POST", "http://127.0.0.1:1/v1", headers={"Authorization": "Bearer operator-key"})
    net.EGRESS.on_request(request)
    assert request.headers["authorization"] == "Bearer operator-key"


@pytest.mark.parametrize("source", ["HF_TOKEN", "login file"])
def test_the_machines_token_never_reaches_a_custom_endpoint(
    source: str, endpoint: Recorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Break 1: huggingface_hub's get_token() fallback sent HF_TOKEN, or the token `hf auth
    login` saved, to the operator's own loopback endpoint."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    token_file = tmp_path / "token"
    if source == "HF_TOKEN":
        monkeypatch.setenv("HF_TOKEN", SENTINEL_TOKEN)
    else:
        token_file.write_text(SENTINEL_TOKEN)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    from huggingface_hub import get_token

    assert get_token() == SENTINEL_TOKEN, "the machine does hold a token"
    fn = chat_fn("--endpoint-url", endpoint.url)
    assert last_text(fn) == REPLY
    posted = [r for r in endpoint.requests if r.method == "POST"]
    assert posted and len(endpoint.requests) >= 2, "the model list and the chat were both requested"
    assert authorizations(endpoint) == [None] * len(endpoint.requests)
    assert all(SENTINEL_TOKEN not in str(r.headers) + r.body.decode() for r in endpoint.requests)


def test_operator_and_visitor_keys_reach_only_their_endpoint(endpoint: Recorder) -> None:
    fn = chat_fn("--endpoint-url", endpoint.url, "--endpoint-api-key", "operator-key")
    assert last_text(fn, hf_token=SENTINEL_TOKEN) == REPLY
    assert set(authorizations(endpoint)) == {"Bearer operator-key"}
    endpoint.clear()
    assert last_text(fn, hf_token=SENTINEL_TOKEN, endpoint_api_key="visitor-key") == REPLY
    assert set(authorizations(endpoint)) == {"Bearer visitor-key"}
    with Recorder() as other:
        other.route("POST", "/v1/chat/completions", chat_route_handler(REPLY))
        assert last_text(fn, endpoint_url=other.url, hf_token=SENTINEL_TOKEN) == REPLY
        assert set(authorizations(other)) == {None}, "the operator's key is for the operator's endpoint only"


# ------------------------------------------------------------------ SSRF on a public deployment


def test_a_redirect_from_a_visitors_endpoint_is_not_followed(endpoint: Recorder, internal: Recorder) -> None:
    """Break 2: the visitor's server answered 307 to an internal address, and the app followed."""
    target = f"http://127.0.0.1:{internal.port}/v1/chat/completions"
    endpoint.route("POST", "/v1/chat/completions", (307, {"Location": target}, b""))
    dns = FakeDNS({"visitor.example": [[PUBLIC_ADDRESS]]}, {f"{PUBLIC_ADDRESS}:80": endpoint.port})
    with dns:
        fn = chat_fn("--public")
        text = last_text(fn, endpoint_url="http://visitor.example/v1", hf_token=SENTINEL_TOKEN)
    assert any(r.method == "POST" for r in endpoint.requests), "the visitor's server was asked"
    assert internal.requests == [], "the internal service was never reached"
    assert "Redirect refused" in text and "does not follow redirects" in text, text
    assert "secret" not in text


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused(internal: Recorder) -> None:
    """Break 3: the name was public when checked and 127.0.0.1 when connected."""
    port = internal.port
    # No route for the public answer: only the rebound one could reach anything.
    dns = FakeDNS({"rebind.example": [[PUBLIC_ADDRESS], ["127.0.0.1"]]}, routes={})
    with dns:
        fn = chat_fn("--public")
        text = last_text(fn, endpoint_url=f"http://rebind.example:{port}/v1", hf_token=SENTINEL_TOKEN)
    assert len(dns.lookups) >= 2, "the name was looked up when checked and again when connecting"
    assert internal.requests == [], "no request reached the internal service"
    assert "does not connect to local or private network addresses" in text, text


def test_the_operators_own_loopback_endpoint_still_works_in_public(endpoint: Recorder) -> None:
    fn = chat_fn("--public", "--endpoint-url", endpoint.url)
    assert last_text(fn) == REPLY


# ------------------------------------------------------------------ logs and URLs


def test_credentials_in_an_endpoint_url_stay_out_of_logs_and_off_the_path(
    endpoint: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Break 9: httpx logged user:password and the query in clear, and the model list was
    requested at `...?key=.../v1/models`."""
    caplog.set_level(logging.DEBUG)
    endpoint.route("GET", "/v1/models", json_response({"data": [{"id": "served-name"}]}))
    url = f"http://someone:pw-LEAK1@127.0.0.1:{endpoint.port}/v1?key=LEAK2"
    assert last_text(chat_fn("--endpoint-url", url)) == REPLY
    models = next(r for r in endpoint.requests if r.method == "GET")
    assert models.path == "/v1/models" and models.query == {"key": ["LEAK2"]}, models.target
    assert models.headers.get("authorization", "").startswith("Basic "), "user:password is still the server's login"
    posted = next(r for r in endpoint.requests if r.method == "POST")
    assert posted.json["model"] == "served-name"
    assert "LEAK1" not in caplog.text and "LEAK2" not in caplog.text
    assert f"127.0.0.1:{endpoint.port}/v1" in caplog.text, "the requests were logged, without credentials"


def test_scrub_removes_userinfo_and_query_from_every_url() -> None:
    line = 'HTTP Request: GET http://u:p@h:1/a?k=v "HTTP/1.1 200" then https://x.y/z?q=1#f'
    assert net.scrub(line) == 'HTTP Request: GET http://h:1/a "HTTP/1.1 200" then https://x.y/z#f'


# ------------------------------------------------------------------ the whole app, as a visitor attacks it


def visitor_reply(app: AppProcess, **values: Any) -> str:
    client = Client(app.url, verbose=False)
    return answer_text(client.predict(message={"text": "Hi", "files": []}, api_name="/chat", **values))


@pytest.mark.parametrize("source", ["HF_TOKEN", "login file"])
def test_a_public_app_never_hands_the_owners_token_to_a_visitors_host(
    source: str, endpoint: Recorder, tmp_path: Path
) -> None:
    """Break 1, as reported: `python app.py --public` with the owner's token, and a visitor who
    types `http://<their own host>`. Their host gets no Authorization at all."""
    (tmp_path / "token").write_text(SENTINEL_TOKEN)
    dns = FakeDNS({"visitor.example": [[PUBLIC_ADDRESS]]}, {f"{PUBLIC_ADDRESS}:80": endpoint.port})
    env: dict[str, str | None] = {
        "PYTHONPATH": os.pathsep.join([DNS_SITE, os.environ.get("PYTHONPATH", "")]),
        ENV_VAR: dns.to_env(),
        "HF_HOME": str(tmp_path),
        "HF_TOKEN": SENTINEL_TOKEN if source == "HF_TOKEN" else None,
    }
    app = AppProcess("--public", "--backend", "endpoint", "--endpoint-url", "http://127.0.0.1:9", env=env)
    with app:
        assert visitor_reply(app, endpoint_url="http://visitor.example/v1") == REPLY
        log = app.log_text()
    seen: list[RecordedRequest] = endpoint.requests
    assert seen and authorizations(endpoint) == [None] * len(seen)
    assert all(SENTINEL_TOKEN not in str(r.headers) + r.body.decode() for r in seen)
    assert SENTINEL_TOKEN not in log


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.1", "169.254.169.254", "::1", "::ffff:10.0.0.1", "fe80::1%eth0", "0.0.0.0", "224.0.0.1"],
)
def test_internal_addresses_in_every_spelling_are_internal(address: str) -> None:
    assert net.is_internal(address)


@pytest.mark.parametrize("address", [PUBLIC_ADDRESS, "2606:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_are_not_internal(address: str) -> None:
    assert not net.is_internal(address)


def test_compare_sends_the_visitors_endpoint_key_and_never_the_hf_token(endpoint: Recorder) -> None:
    from hfchat.compare import Side, compare_turn
    from tests.fixtures import sidebar_values

    values = sidebar_values(backend="endpoint", endpoint_url=endpoint.url)
    sides = [Side(history=[], values=values), Side(history=[], values={**values, "max_new_tokens": 9})]
    updates = list(compare_turn(ChatService(), {"text": "Hi", "files": []}, sides, SENTINEL_TOKEN, None, None, "mine"))
    assert [answer_text(side.reply) for side in updates[-1]] == [REPLY, REPLY]
    assert set(authorizations(endpoint)) == {"Bearer mine"}
