"""Saved conversations, export/import and presets in a real browser against the real app.

The app runs as ``python app.py`` on the tiny local chat model; Debian's Chromium is driven
by Playwright with an empty user-data dir per test, so each test starts with empty local
storage (where conversations and presets live).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures import SENTINEL_TOKEN
from tests.fixtures.servers import free_port

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import BrowserContext, Locator, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
REPLY_TIMEOUT_S = 180.0

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def app_url(tiny_models: dict[str, Path]) -> Iterator[str]:
    """``python app.py`` on the tiny chat model, as the README starts it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_TOKEN", "HUGGINGFACEHUB", "HFCHAT_"))}
    env |= {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    log = Path(tempfile.mkdtemp(prefix="hfchat-convos-")) / "app.log"
    args = ["--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu", "--max-new-tokens", "6"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(url, timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, 180, "the app to start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        assert SENTINEL_TOKEN not in log.read_text(errors="replace"), "the token reached the app's log"


@pytest.fixture
def context() -> Iterator[BrowserContext]:
    """A fresh Chromium with an empty profile: no saved conversations or presets."""
    with tempfile.TemporaryDirectory(prefix="hfchat-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, accept_downloads=True
        )
        try:
            yield ctx
        finally:
            ctx.close()


class UI:
    """The chat page as a visitor uses it (selectors as in the browser harness)."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def open(self) -> UI:
        self.page.goto(self.url, wait_until="domcontentloaded", timeout=60_000)
        self.textbox.wait_for(state="visible", timeout=60_000)
        self.page.locator("#conversation-list").wait_for(state="visible", timeout=60_000)
        return self

    @property
    def textbox(self) -> Locator:
        return self.page.locator("textarea:not(.sidebar textarea)")

    def texts(self, role: str) -> list[str]:
        return [t.strip() for t in self.page.locator(f'[data-testid="{role}"]').all_inner_texts()]

    def idle(self) -> bool:
        page = self.page
        return page.locator('[data-testid="stop-button"]').count() == 0 and (
            page.locator('[data-testid="submit-button"]').count() > 0
        )

    def wait_reply(self) -> str:
        def done() -> bool:
            bots, users = self.texts("bot"), self.texts("user")
            return len(bots) >= len(users) > 0 and bool(bots[-1]) and "⏳" not in bots[-1] and self.idle()

        wait_until(done, REPLY_TIMEOUT_S, "the reply to finish")
        return self.texts("bot")[-1]

    def chat(self, text: str) -> str:
        before = len(self.texts("user"))
        self.textbox.fill(text)
        self.textbox.press("Enter")
        wait_until(lambda: len(self.texts("user")) > before, 60, "the message to appear")
        reply = self.wait_reply()
        assert not reply.startswith("⚠️"), reply
        return reply

    def listing(self) -> list[str]:
        return [t.strip() for t in self.page.locator("#conversation-list label").all_inner_texts()]

    def wait_listing(self, expected: list[str]) -> None:
        wait_until(lambda: self.listing() == expected, 60, f"the conversation list to read {expected}")

    def title(self) -> str:
        return self.page.locator("#conversation-title textarea").input_value()

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    def open_conversation(self, title: str) -> None:
        self.page.locator("#conversation-list label", has_text=title).click()
        wait_until(lambda: self.title() == title, 60, f"conversation {title!r} to open")

    def field(self, label: str) -> Locator:
        return self.page.get_by_label(label, exact=True)

    def choose_preset(self, name: str) -> None:
        box = self.page.locator("#preset-choice input")
        box.click()
        self.page.get_by_role("option", name=name, exact=True).click()
        wait_until(lambda: box.input_value() == name, 30, f"preset {name!r} to be chosen")

    def notice(self, text: str) -> Locator:
        return self.page.get_by_text(text).first

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def test_conversations_are_titled_renamed_switched_deleted_and_kept(context: BrowserContext, app_url: str) -> None:
    ui = UI(context.new_page(), app_url).open()
    first_reply = ui.chat("Hello there")
    ui.wait_listing(["Hello there"])
    assert ui.title() == "Hello there"

    ui.page.locator("#conversation-title textarea").fill("Greetings")
    ui.button("Rename").click()
    ui.wait_listing(["Greetings"])

    ui.button("New conversation").click()
    wait_until(lambda: ui.texts("user") == [] and ui.title() == "", 30, "an empty chat")
    ui.chat("Second question")
    ui.wait_listing(["Second question", "Greetings"])

    ui.open_conversation("Greetings")
    wait_until(lambda: ui.texts("user") == ["Hello there"], 30, "the first conversation to show")
    assert ui.texts("bot") == [first_reply]
    ui.chat("And a follow-up")
    assert ui.texts("user") == ["Hello there", "And a follow-up"]
    ui.wait_listing(["Second question", "Greetings"])  # updated in place, title kept
    ui.screenshot("conversations")

    ui.page.reload()
    ui.open()
    ui.wait_listing(["Second question", "Greetings"])
    ui.open_conversation("Greetings")
    wait_until(lambda: ui.texts("user") == ["Hello there", "And a follow-up"], 30, "the saved turns after a reload")

    ui.button("Delete").click()
    ui.wait_listing(["Second question"])
    assert ui.texts("user") == []
    ui.page.reload()
    ui.open()
    ui.wait_listing(["Second question"])
    assert not ui.errors, ui.errors


def test_retry_and_undo_keep_the_saved_conversation_in_step(context: BrowserContext, app_url: str) -> None:
    ui = UI(context.new_page(), app_url).open()
    ui.chat("One")
    ui.chat("Two")
    ui.wait_listing(["One"])

    ui.page.get_by_role("button", name="Retry").last.click()
    ui.wait_reply()
    assert ui.texts("user") == ["One", "Two"]

    ui.page.get_by_role("button", name="Undo").last.click()
    wait_until(lambda: ui.texts("user") == ["One"], 30, "undo to remove the last turn")

    # What was saved is what is shown: a reload brings back the undone state.
    ui.page.reload()
    ui.open()
    ui.open_conversation("One")
    wait_until(lambda: ui.texts("user") == ["One"], 30, "the saved conversation after undo")
    assert len(ui.texts("bot")) == 1
    ui.chat("Three")
    assert ui.texts("user") == ["One", "Three"]


def exported_files(ui: UI) -> dict[str, str]:
    """Click Export and fetch both files the browser is offered, by extension."""
    ui.button("Export").click()
    links = ui.page.locator("#export-files a")
    wait_until(lambda: links.count() >= 2, 60, "the export links")
    hrefs = links.evaluate_all("els => els.map(e => e.href)")
    return {Path(href.split("?")[0]).suffix: httpx.get(href, timeout=30).text for href in hrefs}


def test_export_then_import_and_continue(context: BrowserContext, app_url: str, tmp_path: Path) -> None:
    ui = UI(context.new_page(), app_url).open()
    token_box = ui.field("HF token (this browser session only)")
    token_box.fill(SENTINEL_TOKEN)
    token_box.blur()
    ui.field("System prompt").fill("Answer briefly.")
    ui.field("System prompt").blur()
    reply = ui.chat("Export me")
    ui.wait_listing(["Export me"])
    ui.page.locator("#conversation-title textarea").fill("Trip plans")
    ui.button("Rename").click()
    ui.wait_listing(["Trip plans"])

    files = exported_files(ui)
    assert set(files) == {".json", ".md"}
    for text in files.values():
        assert SENTINEL_TOKEN not in text and "hf_token" not in text
    data = json.loads(files[".json"])
    assert data["format"] == "hfchat.conversation" and data["version"] == 1 and data["title"] == "Trip plans"
    assert data["settings"]["system_prompt"] == "Answer briefly." and data["settings"]["max_new_tokens"] == 6
    assert [(m["role"], m["text"]) for m in data["messages"]] == [("user", "Export me"), ("assistant", reply)]
    md = files[".md"]
    assert md.startswith("# Trip plans\n") and "### You\n\nExport me" in md and f"### Assistant\n\n{reply}" in md
    assert "| `system_prompt` | Answer briefly. |" in md

    # As in another browser (empty storage), import the file and carry on.
    export_file = tmp_path / "trip.json"
    export_file.write_text(files[".json"])
    ui.page.evaluate("() => localStorage.clear()")
    other = UI(context.new_page(), app_url).open()
    other.wait_listing([])
    other.field("System prompt").fill("something else")
    other.field("System prompt").blur()
    with other.page.expect_file_chooser() as chooser:
        other.button("Import JSON").click()
    chooser.value.set_files(export_file)
    other.wait_listing(["Trip plans"])
    wait_until(lambda: other.texts("user") == ["Export me"], 30, "the imported messages")
    assert other.texts("bot") == [reply]
    wait_until(lambda: other.field("System prompt").input_value() == "Answer briefly.", 30, "imported settings")
    assert other.field("HF token (this browser session only)").input_value() == ""
    other.chat("Continue please")
    assert other.texts("user") == ["Export me", "Continue please"]
    other.page.reload()
    other.open()
    other.open_conversation("Trip plans")
    wait_until(lambda: other.texts("user") == ["Export me", "Continue please"], 30, "the continued import, saved")


def test_a_bad_import_is_refused_and_nothing_changes(context: BrowserContext, app_url: str, tmp_path: Path) -> None:
    ui = UI(context.new_page(), app_url).open()
    ui.chat("Keep me")
    ui.wait_listing(["Keep me"])
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    with ui.page.expect_file_chooser() as chooser:
        ui.button("Import JSON").click()
    chooser.value.set_files(bad)
    ui.notice("not an hfchat conversation export").wait_for(state="visible", timeout=60_000)
    assert ui.texts("user") == ["Keep me"]
    ui.wait_listing(["Keep me"])
    ui.screenshot("import-refused")


def test_presets_apply_save_and_survive_a_reload(context: BrowserContext, app_url: str) -> None:
    ui = UI(context.new_page(), app_url).open()
    ui.page.get_by_text("Presets", exact=True).click()
    model = ui.field("Repo ID or local folder")
    local_model = model.input_value()

    ui.choose_preset("SmolLM2 135M Instruct, local CPU")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == "HuggingFaceTB/SmolLM2-135M-Instruct", 30, "the preset's model")

    ui.choose_preset("DeepSeek-R1 on Inference Providers")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == "deepseek-ai/DeepSeek-R1-0528", 30, "the provider preset")
    wait_until(lambda: ui.field("Inference Providers").is_checked(), 30, "the providers backend")
    wait_until(lambda: not ui.field("Device").is_visible(), 30, "local-only controls to hide")

    # My own: back to the tiny local model with a system prompt, saved under a name.
    ui.field("Local").click()
    model.fill(local_model)
    model.blur()
    ui.field("System prompt").fill("You are terse.")
    ui.field("System prompt").blur()
    ui.page.locator("#preset-name textarea").fill("tiny terse")
    ui.button("Save preset").click()
    wait_until(lambda: ui.page.locator("#preset-choice input").input_value() == "tiny terse", 30, "the saved preset")

    ui.choose_preset("Zephyr 7B beta, local 4-bit (NF4)")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == "HuggingFaceH4/zephyr-7b-beta", 30, "the zephyr preset")
    wait_until(lambda: ui.field("Load in 4-bit (bitsandbytes)").is_checked(), 30, "4-bit on")
    wait_until(lambda: ui.field("System prompt").input_value() == "", 30, "the system prompt cleared")

    ui.page.reload()
    ui.open()
    ui.page.get_by_text("Presets", exact=True).click()
    ui.choose_preset("tiny terse")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == local_model, 30, "my preset after a reload")
    wait_until(lambda: ui.field("System prompt").input_value() == "You are terse.", 30, "my preset's system prompt")
    assert ui.chat("Hi")  # the applied preset chats
    ui.screenshot("presets")

    ui.page.locator("#preset-name textarea").fill("DeepSeek-R1 on Inference Providers")
    ui.button("Save preset").click()
    ui.notice("is a built-in preset").wait_for(state="visible", timeout=60_000)
