"""The model picker over HTTP (issue 16): `/search_models` on a loopback stand-in for the Hub
(`hfchat.testing.fake_hub`, the Hub's real shapes), the provider refusal before any request to
the router, the Hub out of reach within 5 s, local sources on public deployments, and a picked
GGUF file that answers.

Each app runs in this process (`start_app`), its Hub and router moved to one loopback
`Recorder` (`hub_recorder`): what the app sent there is what these tests read.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gradio_client.exceptions import AppError

from hfchat import hub, net
from hfchat.cli import parse_options
from hfchat.config import ModelSpec
from hfchat.settings import Backend
from hfchat.testing.fake_hub import GATED, HUGE, SMALL, STAGING_ONLY, VISION, serve_fake_hub
from hfchat.testing.servers import Recorder, chat_route_handler, free_port, redirect_hub

pytestmark = pytest.mark.timeout(300)

TOKEN = "hf_picker-app-sentinel-not-a-real-token"
QUESTION = "What is the capital of France?"


@pytest.fixture
def fake_hub(hub_recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    net.forget_hub_probe()
    serve_fake_hub(hub_recorder)
    hub_recorder.route("POST", "/together/v1/chat/completions", chat_route_handler("Hello from together"))
    hub_recorder.route("POST", "/v1/chat/completions", chat_route_handler("Hello from auto"))
    return hub_recorder


def searches(recorder: Recorder) -> list[dict[str, list[str]]]:
    return [r.query for r in recorder.requests if r.path == "/api/models"]


def app_with(start_app: Callable[..., Any], *flags: str) -> Any:
    return start_app(parse_options(["--backend", "local", "--model", "acme/start", *flags], environ={}))


def test_search_models_in_the_hubs_shapes(fake_hub: Recorder, start_app: Callable[..., Any]) -> None:
    client = app_with(start_app).client()
    found = {m["id"]: m for m in client.predict(query="", api_name="/search_models")}
    assert set(found) == {GATED, HUGE, VISION, SMALL, STAGING_ONLY}
    llama = found[GATED]
    assert llama["providers"] == ["together"], "live only: novita serves it in staging"
    assert llama["staging_providers"] == ["novita"]
    assert (llama["parameters"], llama["gated"]) == (8_030_261_248, "manual")
    assert llama["capabilities"] == ["tools", "131k context"]
    assert {"bf16", "4bit", "bf16_bytes", "4bit_bytes", "free_bytes", "memory"} <= set(llama["fits_locally"])
    assert found[HUGE]["fits_locally"]["4bit"] is False, "685B fits nowhere here"
    assert "reasoning" in found[HUGE]["capabilities"]
    assert found[VISION]["capabilities"] == ["vision"]
    assert found[SMALL]["providers"] == [] and found[SMALL]["fits_locally"]["bf16"] is True
    assert found[STAGING_ONLY]["providers"] == []
    sent = searches(fake_hub)[-1]
    assert set(sent["expand"]) >= {"inferenceProviderMapping", "safetensors", "gguf", "pipeline_tag", "tags", "gated"}
    hub_calls = [r for r in fake_hub.requests if r.path.startswith("/api/models")]
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub_calls), [r.path for r in hub_calls]

    def ids(**filters: Any) -> list[str]:
        return [m["id"] for m in client.predict(api_name="/search_models", **filters)]

    assert ids(query="llama") == [GATED]
    assert ids(task="vision") == [VISION]
    assert searches(fake_hub)[-1]["pipeline_tag"] == ["image-text-to-text"]
    assert set(ids(served=True)) == {GATED, HUGE, VISION}
    assert ids(provider="together") == [GATED], "staging-only is not served by together"
    assert set(ids(min_params_b=1, max_params_b=10)) == {GATED, VISION, STAGING_ONLY}
    assert searches(fake_hub)[-1]["num_parameters"] == ["min:1B,max:10B"]
    assert ids(sort="downloads")[0] == GATED and searches(fake_hub)[-1]["sort"] == ["downloads"]

    # Cached: the same search again (typing back to it, reopening the picker) asks nobody.
    before = len(searches(fake_hub))
    assert ids(query="llama") == [GATED]
    assert len(searches(fake_hub)) == before


def test_a_staging_provider_is_refused_before_any_request(fake_hub: Recorder, start_app: Callable[..., Any]) -> None:
    client = app_with(start_app).client()
    settings = {"backend": "providers", "model": GATED, "max_new_tokens": 8}
    with pytest.raises(AppError) as refused:
        client.predict(QUESTION, api_name="/ask", provider="novita", **settings)
    said = str(refused.value)
    assert f"novita serves {GATED} only in staging, not live." in said, said
    assert "Pick one that serves it live: together" in said, said
    assert [r for r in fake_hub.requests if r.method == "POST"] == [], "nothing reached the router"
    with pytest.raises(AppError, match=f"novita does not serve {STAGING_ONLY}.*No provider serves it live"):
        client.predict(QUESTION, api_name="/ask", provider="novita", **{**settings, "model": STAGING_ONLY})
    assert [r for r in fake_hub.requests if r.method == "POST"] == []

    assert client.predict(QUESTION, api_name="/ask", provider="together", **settings)[0] == "Hello from together"
    assert client.predict(QUESTION, api_name="/ask", provider="auto", **settings)[0] == "Hello from auto"
    posts = [r.path for r in fake_hub.requests if r.method == "POST"]
    assert posts == ["/together/v1/chat/completions", "/v1/chat/completions"], "auto keeps huggingface_hub's choice"


def test_the_provider_check_costs_one_hub_call_per_ttl(fake_hub: Recorder) -> None:
    hub.MAPPINGS.clear()
    spec = ModelSpec(backend=Backend.PROVIDERS, model=GATED, provider="together")
    for _ in range(5):
        hub.check_provider(spec, TOKEN)
    assert len([r for r in fake_hub.requests if r.path == f"/api/models/{GATED}"]) == 1


def test_an_unreachable_hub_is_said_within_5_s_and_refuses_nothing(
    monkeypatch: pytest.MonkeyPatch, start_app: Callable[..., Any], recorder: Recorder
) -> None:
    # A Hub that accepts the connection, then never answers: the probe passes, the deadline cuts.
    recorder.delay(60)
    redirect_hub(monkeypatch, recorder.url)
    net.forget_hub_probe()
    client = app_with(start_app).client()
    started = time.monotonic()
    with pytest.raises(AppError, match=r"Hub did not answer"):
        client.predict(query="slow", api_name="/search_models")
    # The app's deadline is 5 s; the rest is gradio_client's round trip (7.9 s once in CI, on a loaded machine).
    assert time.monotonic() - started < 5 + 3.5, "said within 5 s (plus the client's own round trip)"

    # No Hub at all (nothing listens): said at once, and the provider check lets the call go.
    redirect_hub(monkeypatch, f"http://127.0.0.1:{free_port()}")
    net.forget_hub_probe()
    started = time.monotonic()
    with pytest.raises(AppError, match=r"can't be reached"):
        client.predict(query="offline", api_name="/search_models")
    assert time.monotonic() - started < 5
    spec = ModelSpec(backend=Backend.PROVIDERS, model=STAGING_ONLY, provider="together")
    assert hub.check_provider(spec, TOKEN) is None, "the Hub can't tell: the call goes as today"
    net.forget_hub_probe()


def test_local_sources_only_where_local_models_are_allowed(
    fake_hub: Recorder, start_app: Callable[..., Any], tiny_models: dict[str, Path]
) -> None:
    folder = str(tiny_models["chat"].parent)
    private = app_with(start_app, "--local-dirs", folder).client()
    local = [m for m in private.predict(query="chat", api_name="/search_models") if m["source"] != "hub"]
    assert [m["model"] for m in local] == [str(tiny_models["chat"])]
    public = app_with(start_app, "--local-dirs", folder, "--public").client()
    assert [m["source"] for m in public.predict(query="chat", api_name="/search_models")] == []
    allowed = app_with(start_app, "--local-dirs", folder, "--public", "--local-models", str(tiny_models["chat"]))
    assert any(m["source"] == "folder" for m in allowed.client().predict(query="chat", api_name="/search_models"))


def test_readme_search_snippet_runs(fake_hub: Recorder, start_app: Callable[..., Any]) -> None:
    from tests.app.test_api_client import run_readme

    app = app_with(start_app)
    lines = run_readme("HFCHAT_URL", app.url, 'api_name="/search_models"')
    (line,) = lines[1:]
    repo, providers, params, fits, *badges = line.split()
    assert (repo, providers, params, badges) == (GATED, "together", "8030261248", ["tools", "131k", "context"])
    assert fits in ("True", "False")


def test_a_picked_gguf_file_answers_paris(
    fake_hub: Recorder, start_app: Callable[..., Any], smollm2_gguf: Path, tmp_path: Path
) -> None:
    """The picker lists the GGUF under --local-dirs with its quantization; the settings its
    result gives load it (the local backend's own GGUF test covers the load itself)."""
    shelf = tmp_path / "models"
    shelf.mkdir()
    shutil.copyfile(smollm2_gguf, shelf / smollm2_gguf.name)  # a link out of --local-dirs is refused
    (shelf / "elsewhere.Q8_0.gguf").symlink_to(smollm2_gguf)
    client = app_with(start_app, "--local-dirs", str(shelf)).client()
    (found,) = [m for m in client.predict(query="gguf", api_name="/search_models") if m["source"] == "gguf"]
    assert found["quantization"] == "Q4_1" and found["model"] == str(shelf / smollm2_gguf.name)
    assert found["id"] == smollm2_gguf.name, "the link that leads out of --local-dirs is not offered"
    assert found["fits_locally"]["bf16"] is True
    greedy = {"device": "cpu", "do_sample": False, "max_new_tokens": 16}
    answer = client.predict(QUESTION, api_name="/ask", backend="local", model=found["model"], **greedy)[0]
    assert "Paris" in answer, answer
