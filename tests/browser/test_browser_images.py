"""Images in a real Chromium: upload a picture to the tiny local Llava and get a reply; a
text-only configuration refuses it with a message and keeps going.

Screenshots under test-output/screenshots/ are evidence for people, not assertions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from hfchat.updates import ERROR_MARK, LOADING_MARK
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def red_png(tmp_path: Path) -> str:
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(path)
    return str(path)


def attach(ui: ChatUI, path: str) -> None:
    """Upload through the chat box's file input and wait for its thumbnail (upload done)."""
    before = ui.page.locator("img.thumbnail-image").count()
    ui.page.locator('input[type="file"]:not(.sidebar input)').set_input_files(path)  # not Import JSON's
    wait_until(lambda: ui.page.locator("img.thumbnail-image").count() > before, 60, "the upload's thumbnail")


def test_an_uploaded_image_gets_a_reply_from_the_local_vision_model(
    launch_app: Callable[..., AppProcess], tiny_models: dict[str, Path], browser_page: BrowserPage, red_png: str
) -> None:
    app = launch_app(
        "--backend", "local", "--model", str(tiny_models["vlm"]), "--task", "image-text-to-text",
        "--device", "cpu", "--max-new-tokens", "8",
    )  # fmt: skip
    ui = ChatUI(browser_page.page).open(app.url)
    attach(ui, red_png)
    ui.send("What is in this picture?")
    # Gradio shows the image and the text as two user bubbles; one reply answers both.
    reply = ui.wait_reply(count=1)
    assert reply and not reply.startswith((ERROR_MARK, LOADING_MARK)), reply
    assert ui.page.locator(f"{ChatUI.USER} img").count() >= 1, "the picture is shown in the chat"
    browser_page.screenshot("image-reply")
    ui.send("And what color is it?")
    follow_up = ui.wait_reply(count=2)
    assert follow_up and not follow_up.startswith(ERROR_MARK), "the history, image included, goes back to the model"
    turns = [line for line in app.log_text().splitlines() if "hfchat.chat: turn:" in line]
    assert [line.rsplit(", ", 1)[-1] for line in turns] == ["1 image(s)", "1 image(s)"], (
        "the follow-up sends the picture from the browser's history"
    )
    assert browser_page.console_errors == [] and browser_page.foreign_requests == []


def test_a_text_only_configuration_refuses_an_image_and_keeps_the_chat(
    local_app: AppProcess, browser_page: BrowserPage, red_png: str
) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    first = ui.chat("Hello there")
    attach(ui, red_png)
    ui.send("What is in this picture?")
    refused = ui.wait_reply(count=2)
    assert refused.startswith(ERROR_MARK) and "text-only" in refused and "image-text-to-text" in refused
    browser_page.screenshot("image-refused")
    assert ui.bot_messages()[0] == first, "the earlier turn is still there"
    ui.send("Still there?")
    after = ui.wait_reply(count=3)
    assert after and not after.startswith(ERROR_MARK), "the next message works"
    assert browser_page.console_errors == [] and browser_page.foreign_requests == []
