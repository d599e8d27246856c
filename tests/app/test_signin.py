"""Signing in on a Space: each visitor's own token pays for their calls, never another's.

The app runs as it does on a Space with `hf_oauth: true` (SYSTEM, SPACE_ID and the OAUTH_*
variables the Space sets), with Gradio's real OAuth routes and session middleware. The
Hugging Face login itself cannot happen offline, so each visitor carries the session cookie
Gradio's /login/callback would have set, signed with the same key. Inference Providers calls
go to a loopback recorder that keeps the Authorization header of every request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio.oauth
import pytest
from gradio_client import Client
from itsdangerous import TimestampSigner

from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.cli import parse_options
from hfchat.testing.app import running_app
from hfchat.testing.servers import Recorder, chat_route_handler
from tests.fixtures import SENTINEL_TOKEN

CLIENT_SECRET = "space-oauth-client-secret"
TOKEN_A = SENTINEL_TOKEN + "-visitor-a"
TOKEN_B = SENTINEL_TOKEN + "-visitor-b"
TOKEN_BOX = SENTINEL_TOKEN + "-sidebar-box"
TOKEN_ENV = SENTINEL_TOKEN + "-server-env"


def box(text: str) -> dict[str, Any]:
    """What the multimodal chat box sends."""
    return {"text": text, "files": []}


def session_cookie(access_token: str) -> str:
    """The `session` cookie Gradio's OAuth callback sets (Starlette's SessionMiddleware format,
    signed with the key gradio.oauth derives from the Space's OAuth client secret)."""
    key = hashlib.sha256((CLIENT_SECRET + "-v4").encode()).hexdigest()
    info = {
        "access_token": access_token,
        "token_type": "bearer",
        "scope": "openid profile inference-api",
        "expires_at": int(time.time()) + 3600,
        "userinfo": {"preferred_username": "visitor", "name": "Visitor"},
    }
    data = base64.b64encode(json.dumps({"oauth_info": info}).encode())
    return TimestampSigner(key).sign(data).decode()


@dataclass
class SpaceApp:
    url: str
    service: ChatService

    def visitor(self, oauth_token: str | None = None) -> Client:
        headers = {"Cookie": f"session={session_cookie(oauth_token)}"} if oauth_token else None
        return Client(self.url, headers=headers, verbose=False)


# On a Space, Gradio also starts a code-reload watcher that needs the `spaces` package (present on
# Spaces, not here); its thread fails at once and takes nothing else down.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture
def space_app(hub_recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[SpaceApp]:
    space_env = {
        "SYSTEM": "spaces",
        "SPACE_ID": "someone/hfchat",
        "OAUTH_CLIENT_ID": "space-oauth-client",
        "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
        "OAUTH_SCOPES": "openid profile inference-api",
        "OPENID_PROVIDER_URL": hub_recorder.url,
    }
    for name, value in space_env.items():
        monkeypatch.setenv(name, value)
        if hasattr(gradio.oauth, name):  # gradio.oauth read these when it was imported
            monkeypatch.setattr(gradio.oauth, name, value)
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN_ENV)
    hub_recorder.route("POST", "/v1/chat/completions", chat_route_handler("Hello from the provider"))
    hub_recorder.delay(1.0, path="/v1/chat/completions")  # both visitors' calls are in flight at once
    options = parse_options(
        ["--backend", "providers", "--model", "org/model", "--provider", "auto", "--host", "127.0.0.1"], space_env
    )
    assert options.oauth and options.public, "a Space with hf_oauth: the sign-in button, a public app"
    service = ChatService(cache=ModelCache(8))
    with running_app(options, service) as running:
        yield SpaceApp(running.url, service)


def authorization_by_message(recorder: Recorder) -> dict[str, str]:
    """The last user message of each provider call -> the Authorization header it carried."""
    out: dict[str, str] = {}
    for request in recorder.requests:
        if request.path == "/v1/chat/completions" and isinstance(request.json, dict):
            out[request.json["messages"][-1]["content"]] = request.headers.get("authorization", "")
    return out


def test_each_visitor_pays_with_their_own_token(space_app: SpaceApp, hub_recorder: Recorder) -> None:
    api = Client(space_app.url, verbose=False).view_api(return_format="dict", print_info=False)
    names = [p["parameter_name"] for p in api["named_endpoints"]["/chat"]["parameters"]]
    assert "hf_token" in names and "oauth_token" not in names, "Gradio injects the sign-in; it is no parameter"

    visitors: list[tuple[str, Client, dict[str, Any]]] = [
        ("from A", space_app.visitor(TOKEN_A), {}),
        ("from B", space_app.visitor(TOKEN_B), {}),
        ("from A with a token in the box", space_app.visitor(TOKEN_A), {"hf_token": TOKEN_BOX}),
        ("from someone not signed in", space_app.visitor(None), {}),
    ]
    jobs = [(text, client.submit(message=box(text), api_name="/chat", **extra)) for text, client, extra in visitors]
    replies = {text: job.result(timeout=120) for text, job in jobs}
    for text, reply in replies.items():
        shown_reply = json.dumps(reply)
        assert "Hello from the provider" in shown_reply, (text, reply)
        assert SENTINEL_TOKEN not in shown_reply

    assert authorization_by_message(hub_recorder) == {
        "from A": f"Bearer {TOKEN_A}",
        "from B": f"Bearer {TOKEN_B}",
        "from A with a token in the box": f"Bearer {TOKEN_BOX}",  # the box wins over the sign-in
        "from someone not signed in": f"Bearer {TOKEN_ENV}",  # the server's token comes last
    }
    # Through the cache: one client per token, told apart by fingerprints, never by the token.
    keys = list(space_app.service.cache.cached_keys())
    assert {key.token_fingerprint for key in keys} == {
        space_app.service.fingerprint(t) for t in (TOKEN_A, TOKEN_B, TOKEN_BOX, TOKEN_ENV)
    }
    assert space_app.service.cache.stats.builds == 4
    assert all(SENTINEL_TOKEN not in repr(key) for key in keys)


def test_a_second_turn_reuses_the_visitors_own_client(space_app: SpaceApp, hub_recorder: Recorder) -> None:
    a, b = space_app.visitor(TOKEN_A), space_app.visitor(TOKEN_B)
    jobs = [a.submit(message=box("A1"), api_name="/chat"), b.submit(message=box("B1"), api_name="/chat")]
    for job in jobs:
        job.result(timeout=120)
    builds = space_app.service.cache.stats.builds
    jobs = [b.submit(message=box("B2"), api_name="/chat"), a.submit(message=box("A2"), api_name="/chat")]
    for job in jobs:
        job.result(timeout=120)
    assert space_app.service.cache.stats.builds == builds, "cache hits: no client is rebuilt"
    seen = authorization_by_message(hub_recorder)
    assert seen["A1"] == seen["A2"] == f"Bearer {TOKEN_A}"
    assert seen["B1"] == seen["B2"] == f"Bearer {TOKEN_B}"
