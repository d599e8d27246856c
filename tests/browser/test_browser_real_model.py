"""The chat page on the real SmolLM2-135M-Instruct, where what the model says matters: it
answers in the window, the header names it, and no component shows an "Error" badge.

Set HFCHAT_UPDATE_DOCS=1 to also refresh the README's screenshots (docs/chat-empty.png,
docs/chat-reply.png, docs/settings.png, docs/phone.png).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.browser import ROOT, AppProcess, BrowserPage, ChatUI, wait_until

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def real_app(real_model: Path) -> Iterator[AppProcess]:
    """`python app.py` on the real model, local backend, CPU, greedy (the answer is compared)."""
    args = ["--backend", "local", "--model", str(real_model), "--device", "cpu"]
    with AppProcess(*args, "--max-new-tokens", "48", "--do-sample", "false") as app:
        yield app


def _docs(browser_page: BrowserPage, name: str) -> None:
    """A screenshot for the test's output, and with HFCHAT_UPDATE_DOCS=1 for the README too."""
    path = browser_page.screenshot(name)
    if os.environ.get("HFCHAT_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / f"{name}.png")


def badges(ui: ChatUI) -> int:
    return ui.page.locator(".error").count()


def test_the_real_model_answers_in_the_window(real_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = ChatUI(browser_page.page).open(real_app.url)
    header = ui.page.locator("#model-header")
    wait_until(lambda: header.inner_text().strip().startswith("smollm2-135m-instruct · Local"), 30, "the header")
    _docs(browser_page, "chat-empty")

    assert "Paris" in ui.chat("What is the capital of France?")
    ui.send("Write three sentences about the sea.")
    wait_until(lambda: ui.generating() and len(ui.bot_messages()[-1]) > 40, 120, "the reply to stream")
    _docs(browser_page, "chat-reply")
    ui.wait_reply()
    assert badges(ui) == 0

    ui.open_sidebar()
    ui.control("top_k")  # unfolds Advanced, so the picture shows the whole panel
    _docs(browser_page, "settings")
    assert badges(ui) == 0


def test_on_a_phone_the_real_model_answers_in_view(real_app: AppProcess, browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.set_viewport_size({"width": 390, "height": 844})
    ui = ChatUI(page).open(real_app.url)
    wait_until(lambda: not ui.sidebar_open() and not ui.sidebar_open("conversations-panel"), 30, "both panels closed")
    assert "Paris" in ui.chat("What is the capital of France?")
    box = page.locator("#chat-box textarea").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 844, "the message box is in view"
    _docs(browser_page, "phone")
    assert badges(ui) == 0
