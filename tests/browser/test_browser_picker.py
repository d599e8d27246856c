"""The model picker in a real Chromium (issue 16): search, filter, pick, and the header and
settings follow; then a message goes to the picked provider's route.

The app runs in this process (`start_app`) with the Hub and the Inference Providers router both
moved to one loopback `Recorder` (`hub_recorder`) that serves the canned Hub models of
`hfchat.testing.fake_hub` and answers `/together/v1/chat/completions`.
Set HFCHAT_UPDATE_DOCS=1 to also refresh the README's screenshot (docs/picker.png).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hfchat.cli import parse_options
from hfchat.testing.fake_hub import GATED, HUGE, SMALL, STAGING_ONLY, VISION, serve_fake_hub
from hfchat.testing.servers import Recorder, chat_route_handler
from tests.fixtures.browser import ROOT, BrowserPage, ChatUI, keep_shot, wait_until

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.timeout(600)

DOCS_SCREENSHOT = ROOT / "docs" / "picker.png"
TOKEN = "hf_picker-sentinel-not-a-real-token"  # hf_: the router, not the provider directly


def searches(hub: Recorder) -> list[str]:
    """The `search` of every Hub search the app made."""
    return [(r.query.get("search") or [""])[0] for r in hub.requests if r.path == "/api/models"]


def results(where: ChatUI | Page) -> list[str]:
    page = where.page if isinstance(where, ChatUI) else where
    return [t.strip() for t in page.locator("#picker-results li.result button.name").all_inner_texts()]


def test_search_filter_pick_and_send_to_the_picked_provider(
    hub_recorder: Recorder,
    start_app: Callable[..., object],
    browser_page: BrowserPage,
    tiny_models: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the server's token: pays for the Hub calls and the turn
    serve_fake_hub(hub_recorder)
    hub_recorder.route("POST", "/together/v1/chat/completions", chat_route_handler("Hello from together"))
    options = parse_options(["--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu"], environ={})
    app = start_app(options)
    page = browser_page.page
    page.set_viewport_size({"width": 1400, "height": 1300})
    ui = ChatUI(page).open(app.url)  # type: ignore[attr-defined]

    # The header opens the settings panel and unfolds the picker.
    page.locator("#model-header").click()
    search = page.locator("#picker-search input, #picker-search textarea").first
    search.wait_for(state="visible", timeout=30_000)

    # Typing is debounced: one search for the whole word, not one per key.
    search.press_sequentially("l", delay=60)
    search.press_sequentially("lama", delay=60)
    wait_until(lambda: results(ui) == [GATED], 30, "the search's one result")
    assert searches(hub_recorder) == ["llama"], searches(hub_recorder)
    card = page.locator("#picker-results li.result").first
    text = card.inner_text()
    assert "8.03B" in text and "gated" in text and "tools" in text and "131k context" in text, text
    assert "▶ together" in text and "▶ novita" not in text, "only the live provider is offered"
    assert "staging: novita" in text, text
    assert "fits in" in text or "too big" in text, "the local fit estimate is shown"

    # Filters: every chat model, then only those Inference Providers serve, then vision.
    search.fill("")
    search.press("Enter")
    wait_until(lambda: set(results(ui)) == {GATED, HUGE, VISION, SMALL, STAGING_ONLY}, 30, "all five models")
    assert "too big here" in page.locator(f'#picker-results li[data-result="{HUGE}"]').inner_text()
    assert "no live provider" in page.locator(f'#picker-results li[data-result="{STAGING_ONLY}"]').inner_text()
    page.locator("#model-picker").scroll_into_view_if_needed()
    keep_shot(browser_page.screenshot("picker"))
    if os.environ.get("HFCHAT_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ROOT / "test-output" / "screenshots" / "picker.png", DOCS_SCREENSHOT)
    page.locator("#picker-served input[type=checkbox]").click()
    wait_until(lambda: set(results(ui)) == {GATED, HUGE, VISION}, 30, "only models served live")
    page.locator("#picker-task input").click()
    page.get_by_role("option", name="Vision (images in)").click()
    wait_until(lambda: results(ui) == [VISION], 30, "the vision model")
    assert "vision" in page.locator(f'#picker-results li[data-result="{VISION}"]').inner_text()
    keep_shot(browser_page.screenshot("picker-vision"))

    # Pick: one click on a live provider sets backend, model and provider; the header follows.
    page.locator("#picker-task input").click()
    page.get_by_role("option", name="Any chat model").click()
    search.fill("llama")
    search.press("Enter")
    wait_until(lambda: results(ui) == [GATED], 30, "the llama result again")
    page.locator(f'#picker-results li[data-result="{GATED}"] button.run[data-how="together"]').click()
    header = page.locator("#model-header")
    wait_until(lambda: "Llama-3.1-8B-Instruct · Inference Providers · together" in header.inner_text(), 30, "header")
    assert ui.field("model").input_value() == GATED
    assert ui.control("backend").locator("input[type=radio]:checked").get_attribute("value") == "providers"
    provider = ui.control("provider").locator("input").first.input_value()
    assert provider == "together", provider

    # Send: the request goes to the picked provider's route.
    assert ui.chat("Hello") == "Hello from together"
    calls = [r for r in hub_recorder.requests if r.method == "POST"]
    assert [c.path for c in calls] == ["/together/v1/chat/completions"], [c.path for c in calls]
    assert calls[0].json["model"] == "together/llama-3.1-8b-instruct"
    keep_shot(browser_page.screenshot("picker-sent"))
    assert not browser_page.foreign_requests
    hub_calls = [r for r in hub_recorder.requests if r.path.startswith("/api/models")]
    assert hub_calls and all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub_calls)
    assert TOKEN not in page.content(), "the token is never shown"


def test_an_unreachable_hub_is_said_and_local_models_still_show(
    monkeypatch: pytest.MonkeyPatch,
    start_app: Callable[..., object],
    browser_page: BrowserPage,
    tiny_models: dict[str, Path],
) -> None:
    from hfchat import net
    from hfchat.testing.servers import free_port, redirect_hub

    redirect_hub(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    net.forget_hub_probe()
    folder = str(tiny_models["chat"].parent)
    flags = ["--backend", "local", "--model", str(tiny_models["chat"]), "--local-dirs", folder]
    options = parse_options(flags, environ={})
    app = start_app(options)
    page = browser_page.page
    ChatUI(page).open(app.url)  # type: ignore[attr-defined]
    page.locator("#model-header").click()
    search = page.locator("#picker-search input, #picker-search textarea").first
    search.wait_for(state="visible", timeout=30_000)
    search.fill("chat")
    started = time.monotonic()
    search.press("Enter")
    warning = page.locator("#picker-results .status.warn")
    wait_until(lambda: warning.count() == 1, 10, "the Hub-unreachable message")
    assert time.monotonic() - started < 5, "said within 5 s"
    assert "can't be reached" in warning.inner_text()
    wait_until(lambda: results(page) == ["chat"], 10, "the local folder still listed")
    keep_shot(browser_page.screenshot("picker-offline"))
    net.forget_hub_probe()
