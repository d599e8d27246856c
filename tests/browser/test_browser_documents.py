"""Documents in a real Chromium: attach a PDF, see its chip and the Sources block, ask a
follow-up after a reload, and have a bad file refused with its reason while the chat goes on.

Screenshots under test-output/screenshots/ are evidence for people, not assertions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hfchat.testing import documents as docs
from hfchat.updates import ERROR_MARK
from tests.browser.test_browser_meter import meter_count
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until

pytestmark = pytest.mark.timeout(600)


def attach(ui: ChatUI, path: Path) -> None:
    """Upload through the chat box's file input and wait for its preview (upload done)."""
    box = ui.page.locator("#chat-box .thumbnail-item:not(.thumbnail-add)")
    before = box.count()
    ui.page.locator('#chat-box input[type="file"]').set_input_files(str(path))
    wait_until(lambda: box.count() > before, 60, "the upload's preview in the chat box")


def chips(ui: ChatUI) -> list[str]:
    return [" ".join(t.split()) for t in ui.page.locator("#chat-window .doc-chip").all_inner_texts()]


def test_a_pdf_shows_its_chip_and_sources_and_a_follow_up_after_reload_still_reads_it(
    local_app: AppProcess, browser_page: BrowserPage, tmp_path: Path
) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    wait_until(lambda: meter_count(ui) is not None, 60, "the meter to show on load")
    empty = meter_count(ui) or 0
    attach(ui, docs.three_page_pdf(tmp_path / "report.pdf"))
    ui.send("What is the launch code?")
    reply = ui.wait_reply(count=1)
    assert reply and not reply.startswith(ERROR_MARK), reply
    wait_until(lambda: chips(ui) == ["report.pdf 2.7 KB · 3 pages"], 30, "the chip in the user's message")
    block = ui.page.locator(ChatUI.BOT).filter(has_text="Sources").first
    block.get_by_text("Sources").first.click()  # the folded block opens
    listed = ui.page.locator("#chat-window li", has_text="report.pdf, pages 1–3 (sent whole)")
    wait_until(lambda: listed.count() == 1, 30, "the Sources block's line")
    # the next question is counted with the document, which goes with it again (about 1,650 tokens)
    wait_until(lambda: (meter_count(ui) or 0) > empty + 1000, 30, "the meter to count the document")
    browser_page.screenshot("documents-pdf")

    ui.page.reload()
    ui.page.locator("#conversation-list li.item").first.click()  # the saved conversation, chip and all
    wait_until(lambda: chips(ui) == ["report.pdf 2.7 KB · 3 pages"], 60, "the chip after a reload")
    ui.send("And on which page is it?")
    follow = ui.wait_reply(count=2)
    assert follow and not follow.startswith(ERROR_MARK), follow
    wait_until(lambda: local_app.log_text().count("turn done") >= 2, 30, "the follow-up's turn in the log")
    assert browser_page.console_errors == [] and browser_page.foreign_requests == []


def test_a_pdf_without_text_is_refused_with_its_reason_and_the_chat_goes_on(
    local_app: AppProcess, browser_page: BrowserPage, tmp_path: Path
) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    first = ui.chat("Hello there")
    attach(ui, docs.scanned_pdf(tmp_path / "scan.pdf"))
    ui.send("Read this")
    refused = ui.wait_reply(count=2)
    assert refused.startswith(ERROR_MARK) and "no text layer" in refused, refused
    assert chips(ui) == [], "a refused file shows no chip"
    assert ui.page.locator(".error").count() == 0, "no Gradio error badge"
    browser_page.screenshot("documents-refused")
    assert ui.bot_messages()[0] == first, "the earlier turn is still there"
    ui.send("Still there?")
    after = ui.wait_reply(count=3)
    assert after and not after.startswith(ERROR_MARK), "the next message works"
    assert browser_page.console_errors == []
