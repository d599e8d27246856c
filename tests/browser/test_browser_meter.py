"""The context meter under the chat box, in a real Chromium against `python app.py` on the
tiny local model (its own tokenizer, an 8,192-token window from config.json): it shows on
load, grows as one types, turns to a warning when max_new_tokens leaves no room, and counts
the history after a reply."""

from __future__ import annotations

import re

import pytest

from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, keep_shot, wait_until

pytestmark = pytest.mark.timeout(600)

LABEL = re.compile(r"^([\d,]+) / 8,192 tokens")


def meter_count(ui: ChatUI) -> int | None:
    found = LABEL.match(ui.page.locator("#context-meter").inner_text().strip())
    return int(found.group(1).replace(",", "")) if found else None


def test_the_meter_counts_typing_warns_and_counts_the_reply(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    meter = ui.page.locator("#context-meter")
    wait_until(lambda: meter_count(ui) is not None, 60, "the meter to show on load")
    empty = meter_count(ui)
    assert empty is not None and empty > 24  # the template's markup plus the 24 reserved for the reply
    assert "max_new_tokens" in (meter.locator(".context-meter").get_attribute("title") or "")
    assert "≈" not in meter.inner_text()  # counted with the model's own tokenizer

    ui.textbox.fill("Tell me everything about the sea, the ships on it and the people who sail them.")
    wait_until(lambda: (meter_count(ui) or 0) > empty + 10, 30, "the meter to grow as one types")
    typed = meter_count(ui)
    keep_shot(browser_page.screenshot("meter-typing"))

    ui.set_number("max_new_tokens", 8190)
    wait_until(lambda: "won't fit" in meter.inner_text(), 30, "the warning when it would not fit")
    assert meter.locator(".meter-over").count() == 1
    keep_shot(browser_page.screenshot("meter-over"))
    ui.set_number("max_new_tokens", 24)
    wait_until(lambda: meter_count(ui) == typed, 30, "the meter to count 24 reserved again")
    assert "won't fit" not in meter.inner_text()

    ui.textbox.fill("")
    wait_until(lambda: meter_count(ui) == empty, 30, "the meter back at the empty box's count")
    ui.chat("hello there")
    wait_until(lambda: (meter_count(ui) or 0) > empty + 3, 30, "the meter to count the history after the reply")
    keep_shot(browser_page.screenshot("meter-after-reply"))
