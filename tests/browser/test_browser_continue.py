"""Continue a reply cut by length, in a real Chromium: the button shows under the cut reply, the
continuation joins the same message under one footer, Stop mid-continue keeps the text, and
the joined reply is what the saved conversation holds after a reload. On a phone too."""

from __future__ import annotations

import pytest

from hfchat.updates import STOPPED_MARK, STOPPED_TEXT
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, keep_shot, wait_until

pytestmark = pytest.mark.timeout(600)


def shot(tab: BrowserPage, name: str) -> None:
    """A screenshot as evidence: test-output/screenshots/, and $HFCHAT_SHOTS when set."""
    keep_shot(tab.screenshot(name))


def test_continue_joins_a_cut_reply_in_one_message_and_stop_keeps_the_text(
    local_app: AppProcess, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    ui = ChatUI(page).open(local_app.url)
    go_on = ui.main.locator("#chat-continue")
    ui.set_checked("do_sample", False)
    ui.set_number("max_new_tokens", 8)
    first = ui.chat("Tell me a story about a robot")
    assert "stopped: length" in ui.speed_footers()[-1]
    go_on.wait_for(state="visible", timeout=30_000)
    shot(browser_page, "continue-offered")

    footer = ui.speed_footers()[-1]
    go_on.click()
    wait_until(lambda: ui.speed_footers() != [footer] and not ui.generating(), 120, "the continuation")
    joined = ui.last_bot_text()
    assert len(ui.bot_messages()) == 1 and len(ui.speed_footers()) == 1, "one answer, one footer"
    assert joined.startswith(first) and len(joined) > len(first)
    assert "16 out (tokenizer)" in ui.speed_footers()[0] and "stopped: length" in ui.speed_footers()[0]
    go_on.wait_for(state="visible", timeout=30_000)  # 8 more tokens ran out again: it can go on
    shot(browser_page, "continue-joined")

    ui.set_number("max_new_tokens", 4000)
    ui.watch_last_bot()
    go_on.click()
    wait_until(lambda: len(ui.renders()) >= 3, 120, "the continuation to stream")
    assert go_on.is_hidden(), "no Continue while a reply is generated"
    ui.stop_button.click()
    wait_until(lambda: not ui.generating(), 30, "Stop to end the continuation")
    wait_until(lambda: ui.speed_footers() == [f"{STOPPED_MARK} {STOPPED_TEXT}"], 30, "the stopped footer")
    kept = ui.last_bot_text()
    assert len(ui.bot_messages()) == 1 and kept.startswith(joined) and len(kept) > len(joined)
    assert kept in ui.renders(), "the reply keeps the text it showed"
    assert go_on.is_hidden(), "a reply the user stopped is not continued (Retry is)"
    shot(browser_page, "continue-stopped")

    page.reload(wait_until="domcontentloaded")
    ui.textbox.wait_for(state="visible", timeout=60_000)
    wait_until(lambda: ui.bot_messages() == [kept], 30, "the saved conversation, joined")
    page.reload()


def test_continue_on_a_phone(local_app: AppProcess, browser_page: BrowserPage) -> None:
    """On a narrow screen the button sits over the message box, within reach, and works; a
    saved conversation whose last reply was cut offers it again when it reopens."""
    page = browser_page.page
    page.set_viewport_size({"width": 390, "height": 844})
    ui = ChatUI(page).open(local_app.url)
    ui.set_checked("do_sample", False)
    ui.set_number("max_new_tokens", 8)
    ui.open_sidebar(False)
    first = ui.chat("Tell me a story about a robot")
    go_on = ui.main.locator("#chat-continue")
    go_on.wait_for(state="visible", timeout=30_000)
    button, box = go_on.bounding_box(), ui.main.locator("#chat-box").bounding_box()
    assert button is not None and box is not None
    assert button["y"] + button["height"] <= box["y"] + 1, "above the message box"
    assert button["width"] < 390 / 2 and button["height"] >= 24, "a small button, big enough to tap"
    shot(browser_page, "continue-phone")
    go_on.click()
    wait_until(lambda: "16 out" in "".join(ui.speed_footers()) and not ui.generating(), 120, "the continuation")
    assert len(ui.bot_messages()) == 1 and ui.last_bot_text().startswith(first)
    joined = ui.last_bot_text()
    page.reload(wait_until="domcontentloaded")  # the saved conversation reopens, still cut: Continue is offered
    ui.textbox.wait_for(state="visible", timeout=60_000)
    wait_until(lambda: ui.bot_messages() == [joined], 30, "the saved conversation")
    go_on.wait_for(state="visible", timeout=30_000)
    page.reload()
