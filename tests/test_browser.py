"""The app in a real Chromium, started as the README says; every scenario asserts on the DOM.

Screenshots under test-output/screenshots/ are evidence for people, not assertions.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until

pytestmark = pytest.mark.timeout(600)


def _assert_clean(tab: BrowserPage, app: AppProcess) -> None:
    """No console errors, nothing requested off loopback, no Hub call from the app."""
    assert tab.console_errors == []
    assert tab.foreign_requests == []
    assert app.hub.requests == []


def test_reply_streams_in_pieces(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    assert ui.bot_messages() == []
    browser_page.screenshot("empty")
    ui.open_sidebar()
    browser_page.screenshot("sidebar-open")
    assert ui.field("Repo ID or local folder").is_visible()
    ui.open_sidebar(False)

    ui.watch_last_bot()
    final = ui.chat("Hello there")
    browser_page.screenshot("finished")
    assert final and not final.startswith(("⚠️", "⏳"))
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
    assert after and not after.startswith("⚠️")
    assert len(ui.bot_messages()) == 3
    _assert_clean(browser_page, local_app)
