"""The app in a real Chromium, started as the README says; every scenario asserts on the DOM.

Screenshots under test-output/screenshots/ are evidence for people, not assertions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hfchat.testing.servers import RecordingProxy, json_response
from hfchat.updates import ERROR_MARK, LOADING_MARK
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until

pytestmark = pytest.mark.timeout(600)


# huggingface_hub refreshes its agent-harness list (for the User-Agent) from the Hub once a day,
# before its first HTTP call of a process, whatever the URL: not a call the app makes.
_HUB_HOUSEKEEPING = "/api/agent-harnesses"


def hub_calls(app: AppProcess) -> list[str]:
    """Paths the app requested from the (recorded) Hub, less huggingface_hub's own housekeeping."""
    return [r.target for r in app.hub.requests if r.path != _HUB_HOUSEKEEPING]


def _assert_clean(tab: BrowserPage, app: AppProcess) -> None:
    """No console errors, nothing requested off loopback, no Hub call from the app."""
    assert tab.console_errors == []
    assert tab.foreign_requests == []
    assert hub_calls(app) == []


def test_reply_streams_in_pieces(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    assert ui.bot_messages() == []
    ui.open_sidebar(False)
    assert not ui.sidebar_open()
    browser_page.screenshot("empty")
    ui.open_sidebar()
    assert ui.sidebar_open() and ui.field("model").is_visible()
    browser_page.screenshot("sidebar-open")
    ui.open_sidebar(False)

    ui.watch_last_bot()
    final = ui.chat("Hello there")
    browser_page.screenshot("finished")
    assert final and not final.startswith((ERROR_MARK, LOADING_MARK))
    partial = [r for r in ui.renders() if r != final and final.startswith(r)]
    assert len(partial) >= 2, f"expected at least two partial renders before {final!r}, saw {ui.renders()}"
    assert ui.user_messages() == ["Hello there"]
    _assert_clean(browser_page, local_app)


def test_stop_mid_reply_then_the_app_still_answers(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    ui.chat("warm up")  # the first turn may load the model; Stop is about generation
    ui.set_number("max_new_tokens", 4000)
    ui.watch_last_bot()
    ui.send("Tell me a very long story")
    wait_until(lambda: len(ui.renders()) >= 4 and ui.generating(), 120, "the long reply to stream")
    browser_page.screenshot("streaming")
    ui.stop_button.click()
    wait_until(lambda: not ui.generating(), 30, "Stop to end the reply")
    stopped = ui.last_bot_text()
    time.sleep(2)  # nothing should arrive after Stop: the text must stay as it was
    assert ui.last_bot_text() == stopped
    assert 0 < len(stopped.split()) < 1000, "stopped well before 4000 tokens"

    ui.set_number("max_new_tokens", 8)
    after = ui.chat("Still there?")
    assert after and not after.startswith(ERROR_MARK)
    assert len(ui.bot_messages()) == 3
    _assert_clean(browser_page, local_app)


def test_retry_undo_and_edit(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    first = ui.chat("Hello")
    ui.watch_last_bot()
    ui.retry()
    wait_until(lambda: len(ui.renders()) >= 2, 60, "the retried reply to stream")
    assert ui.wait_reply() == first, "greedy: a retried reply is generated again, the same"
    assert ui.user_messages() == ["Hello"] and len(ui.bot_messages()) == 1

    ui.undo()
    wait_until(lambda: not ui.bot_messages() and not ui.user_messages(), 30, "undo to remove the exchange")
    assert ui.textbox.input_value() == "Hello", "undo puts the message back in the chat box"

    ui.textbox.fill("")
    ui.chat("First question")
    ui.chat("Second question")
    ui.edit(0, "Edited question")
    wait_until(lambda: ui.user_messages() == ["Edited question"], 30, "the edit to replace the history")
    edited = ui.wait_reply(count=1)
    assert len(ui.bot_messages()) == 1 and not edited.startswith(ERROR_MARK)
    _assert_clean(browser_page, local_app)


def test_switching_model_and_backend_in_the_sidebar(
    local_app: AppProcess, browser_page: BrowserPage, tiny_models: dict[str, Path], proxy: RecordingProxy
) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    on_chat = ui.chat("Hello")

    ui.clear()
    ui.set_text("model", str(tiny_models["plain"]))
    ui.watch_last_bot()
    on_plain = ui.chat("Hello")
    assert ui.renders()[0].startswith(f"{LOADING_MARK} Loading") and "plain" in ui.renders()[0], "a new model loads"
    assert on_plain != on_chat, "the reply comes from the other model"
    assert "loaded in" in wait_until(lambda: ui.speed_footers()[-1:], 30, "the speed line")[0], "a load is reported"

    ui.clear()
    ui.set_text("model", str(tiny_models["chat"]))
    ui.watch_last_bot()
    assert ui.chat("Hello") == on_chat, "back on the first model: the same greedy reply"
    assert not any(r.startswith(LOADING_MARK) for r in ui.renders()), "switching back hits the cache: no loading notice"
    footer = wait_until(lambda: ui.speed_footers()[-1:], 30, "the speed line")[0]
    assert "cached" in footer and "loaded in" not in footer, "the app reports the cache hit under the reply"
    assert f"The local model {tiny_models['chat']}, cache hit" in local_app.log_text()

    ui.clear()
    ui.choose("backend", "Custom endpoint")
    ui.set_text("endpoint_url", proxy.url)
    browser_page.screenshot("sidebar-endpoint")
    reply = ui.chat("Hello endpoint")
    assert reply and not reply.startswith(ERROR_MARK)
    sent = [r.json for r in proxy.requests if r.path.endswith("/chat/completions")]
    assert sent and sent[-1]["messages"][-1]["content"] == "Hello endpoint", "the reply came from the endpoint"
    _assert_clean(browser_page, local_app)


def test_bad_repo_id_shows_a_readable_error(local_app: AppProcess, browser_page: BrowserPage) -> None:
    hub_headers = {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}
    not_found = json_response({"error": "Repository not found"}, 404, hub_headers)
    for method in ("GET", "HEAD"):  # as huggingface.co answers for a repo that does not exist
        local_app.hub.route(method, "/api/models/nobody/no-such-model", not_found)
        local_app.hub.route(method, "/nobody/no-such-model/", not_found)
    ui = ChatUI(browser_page.page).open(local_app.url)
    ui.set_text("model", "not a repo/../x")
    error = ui.chat("Hello")
    browser_page.screenshot("error")
    assert error.startswith(f"{ERROR_MARK} Invalid setting.") and "model" in error
    assert "Traceback" not in error and 'File "' not in error

    ui.set_text("model", "nobody/no-such-model")
    missing = ui.chat("Hello again")
    assert missing.startswith(f"{ERROR_MARK} Model not found (404).") and "nobody/no-such-model" in missing, missing
    assert "Traceback" not in missing and 'File "' not in missing
    assert any("no-such-model" in path for path in hub_calls(local_app)), "the lookup went to the recorder"
    local_app.hub.clear()

    ui.set_text("model", local_app.args[local_app.args.index("--model") + 1])
    assert not ui.chat("And now?").startswith(ERROR_MARK), "the next message works"
    assert tab_errors(browser_page) == []


def test_4bit_toggle_loads_in_4bit_and_says_so(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    ui.set_checked("load_in_4bit", True)
    ui.watch_last_bot()
    reply = ui.chat("Hello in 4-bit")
    assert ui.renders()[0].startswith(f"{LOADING_MARK} Loading") and "in 4-bit nf4" in ui.renders()[0]
    assert reply and not reply.startswith(ERROR_MARK)
    assert "in 4-bit nf4: is_loaded_in_4bit=True" in local_app.log_text()
    _assert_clean(browser_page, local_app)


def tab_errors(tab: BrowserPage) -> list[str]:
    return tab.console_errors + tab.foreign_requests


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_on_a_space_the_sidebar_offers_sign_in(
    launch_app: Callable[..., AppProcess], browser_page: BrowserPage, local_app: AppProcess
) -> None:
    space = {
        "SYSTEM": "spaces",
        "SPACE_ID": "someone/hfchat",
        "OAUTH_CLIENT_ID": "space-oauth-client",
        "OAUTH_CLIENT_SECRET": "space-oauth-secret",
        "OAUTH_SCOPES": "openid profile inference-api",
        "OPENID_PROVIDER_URL": "http://127.0.0.1:9",  # only reached when someone clicks
    }
    app = launch_app("--host", "127.0.0.1", "--backend", "endpoint", env=space)
    ui = ChatUI(browser_page.page).open(app.url)
    ui.open_sidebar()
    sign_in = browser_page.page.get_by_role("button", name=re.compile("Sign in with Hugging Face"))
    sign_in.wait_for(state="visible", timeout=30_000)
    browser_page.screenshot("sidebar-sign-in")
    # Gradio's own page in Space mode (not framed by huggingface.co) links Google Fonts
    # stylesheets and asks the Hub about its Space; those are the only requests allowed off
    # loopback here, and their failures (offline) the only console errors. Nothing of ours.
    gradio_space_mode = ("https://fonts.googleapis.com/css2?", "https://huggingface.co/api/spaces/someone/hfchat")
    assert [url for url in browser_page.foreign_requests if not url.startswith(gradio_space_mode)] == []
    offline = (*gradio_space_mode, "Space not found @ ")  # the frontend's words when that lookup fails
    assert [e for e in browser_page.console_errors if not any(u in e for u in offline)] == []

    local = browser_page.page.context.new_page()  # off a Space there is no sign-in button
    ChatUI(local).open(local_app.url)
    assert local.get_by_role("button", name=re.compile("Sign in")).count() == 0
    local.close()
