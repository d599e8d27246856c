"""Saved conversations, export/import and presets in a real browser against the real app.

Uses the browser harness (``tests/fixtures/browser.py``): ``python app.py`` on the tiny local
chat model, Debian's Chromium through Playwright. Conversations and presets live in the
browser's local storage, so each test starts by clearing it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator

from hfchat.updates import ERROR_MARK, FOOTER_ID
from tests.fixtures import SENTINEL_TOKEN
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until
from tests.fixtures.pytest_fixtures import local_app_args


class ConvoUI(ChatUI):
    """The chat page plus the sidebar's Conversations and Presets panels."""

    def fresh(self, url: str) -> ConvoUI:
        """Open the app with nothing saved in this browser."""
        self.open(url)
        self.page.evaluate("() => localStorage.clear()")
        return self.reopen()

    def reopen(self) -> ConvoUI:
        self.page.reload(wait_until="domcontentloaded")
        self.textbox.wait_for(state="visible", timeout=60_000)
        self.page.locator("#conversation-list").wait_for(state="visible", timeout=60_000)
        return self

    def reply(self, text: str) -> list[str]:
        """Send `text`; the bot messages of the finished reply (answer, and thinking or speed line where shown)."""
        before, saved = len(self.bot_messages()), self.stored()
        answer = self.chat(text)
        assert not answer.startswith(ERROR_MARK), answer
        self.saved_after(saved, "the conversation to be saved")
        return self.bot_messages()[before:]

    def stored(self) -> str:
        """The saved list as kept in local storage (encrypted), to see that a save happened."""
        return str(self.page.evaluate("() => localStorage.getItem('hfchat-conversations')"))

    def saved_after(self, before: str, what: str, quiet_s: float = 1.5) -> str:
        """Wait until the saved list differs from `before` and then stays the same for
        `quiet_s`: a turn saves more than once (the question as it is sent, then the whole
        turn), and the first change is not the last."""
        wait_until(lambda: self.stored() != before, 60, what)
        last, since = self.stored(), time.monotonic()
        while time.monotonic() - since < quiet_s:
            time.sleep(0.1)
            now = self.stored()
            if now != last:
                last, since = now, time.monotonic()
        return last

    def items(self) -> Locator:
        """The conversation list's items, top to bottom (those search hides too)."""
        return self.page.locator("#conversation-list li.item")

    def item(self, title: str) -> Locator:
        return self.items().filter(has=self.page.locator("button.open", has_text=title)).first

    def listing(self) -> list[str]:
        """The titles in the conversation list, top to bottom."""
        return [str(t) for t in self.items().evaluate_all("(items) => items.map((li) => li.dataset.title)")]

    def shown_listing(self) -> list[str]:
        """The titles the list shows now (search hides the others)."""
        return [
            t.strip() for t in self.page.locator("#conversation-list li.item:not([hidden]) .open").all_inner_texts()
        ]

    def headings(self) -> list[str]:
        return [
            t.strip() for t in self.page.locator("#conversation-list section.day:not([hidden]) h3").all_inner_texts()
        ]

    def wait_listing(self, expected: list[str]) -> None:
        wait_until(lambda: self.listing() == expected, 60, f"the conversation list to read {expected}")

    def title(self) -> str:
        """The open conversation's title, as the list marks it ("" for a new one)."""
        title = self.page.locator("#conversation-title")
        return title.inner_text().strip() if title.count() else ""

    def button(self, name: str) -> Locator:
        return self.page.get_by_role("button", name=name, exact=True)

    def new_chat(self) -> None:
        self.page.locator("#new-chat").click()
        wait_until(lambda: self.user_messages() == [] and self.title() == "", 30, "an empty chat")

    def open_conversation(self, title: str) -> None:
        self.item(title).locator("button.open").click()
        wait_until(lambda: self.title() == title, 60, f"conversation {title!r} to open")

    def rename(self, title: str, new_title: str) -> None:
        """The item's pencil, the new title typed in place, Enter."""
        item = self.item(title)
        item.hover()
        item.locator("button.rename").click()
        box = self.page.locator("#conversation-list input.rename-box")
        box.fill(new_title)
        box.press("Enter")

    def delete(self, title: str) -> None:
        """The item's trash, then Delete in the confirm that replaces it."""
        item = self.item(title)
        item.hover()
        item.locator("button.delete").click()
        self.page.locator("#conversation-list button.confirm-delete").click()

    def import_file(self, path: Path) -> None:
        with self.page.expect_file_chooser() as chooser:
            self.page.locator("#import-conversation").click()
        chooser.value.set_files(path)

    def choose_preset(self, name: str) -> None:
        box = self.page.locator("#preset-choice input")
        box.click()
        self.page.get_by_role("option", name=name, exact=True).click()
        wait_until(lambda: box.input_value() == name, 30, f"preset {name!r} to be chosen")

    def notice(self, text: str) -> Locator:
        return self.page.get_by_text(text).first


def test_conversations_are_titled_renamed_switched_deleted_and_kept(
    browser_page: BrowserPage, local_app: AppProcess
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("Hello there")
    first_bots = ui.bot_messages()
    ui.wait_listing(["Hello there"])
    assert ui.title() == "Hello there"

    ui.rename("Hello there", "Greetings")
    ui.wait_listing(["Greetings"])

    ui.new_chat()
    ui.reply("Second question")
    ui.wait_listing(["Second question", "Greetings"])

    ui.open_conversation("Greetings")
    wait_until(lambda: ui.user_messages() == ["Hello there"], 30, "the first conversation to show")
    assert ui.bot_messages() == first_bots
    ui.reply("And a follow-up")
    assert ui.user_messages() == ["Hello there", "And a follow-up"]
    ui.wait_listing(["Greetings", "Second question"])  # newest first, the renamed title kept
    browser_page.screenshot("conversations", full_page=True)

    ui.reopen()
    ui.wait_listing(["Greetings", "Second question"])
    ui.open_conversation("Greetings")
    wait_until(lambda: ui.user_messages() == ["Hello there", "And a follow-up"], 30, "the saved turns after a reload")

    ui.delete("Greetings")
    ui.wait_listing(["Second question"])
    assert ui.user_messages() == []
    ui.reopen()
    ui.wait_listing(["Second question"])
    assert not browser_page.console_errors, browser_page.console_errors
    assert not browser_page.foreign_requests


def test_retry_undo_and_clear_keep_the_saved_conversation_in_step(
    browser_page: BrowserPage, local_app: AppProcess
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("One")
    ui.reply("Two")
    ui.wait_listing(["One"])

    saved = ui.stored()
    ui.page.get_by_role("button", name="Retry").last.click()
    wait_until(lambda: len(ui.user_messages()) == 2, 30, "the retried question")
    ui.wait_reply()
    ui.saved_after(saved, "the retried reply to be saved")
    assert ui.user_messages() == ["One", "Two"]

    saved = ui.stored()
    ui.page.get_by_role("button", name="Undo").last.click()
    wait_until(lambda: ui.user_messages() == ["One"], 30, "undo to remove the last turn")
    ui.saved_after(saved, "the undo to be saved")
    bots = ui.bot_messages()

    # What was saved is what is shown: a reload brings back the undone state, and it goes on.
    ui.reopen()
    ui.open_conversation("One")
    wait_until(lambda: ui.user_messages() == ["One"], 30, "the saved conversation after undo")
    assert ui.bot_messages() == bots
    ui.reply("Three")
    assert ui.user_messages() == ["One", "Three"]

    # The chat's own trash button deletes the conversation, as in Gradio.
    ui.page.get_by_role("button", name="Clear").first.click()
    ui.wait_listing([])
    ui.reopen()
    ui.wait_listing([])


def exported_files(ui: ConvoUI) -> dict[str, tuple[str, str]]:
    """Click Export, then download both files it offers: {extension: (file name, text)}."""
    ui.page.locator("#export-conversation").click()
    files = {}
    for button in (ui.page.locator("#export-json"), ui.page.locator("#export-markdown")):
        button.wait_for(state="visible", timeout=60_000)
        with ui.page.expect_download(timeout=60_000) as download:
            button.click()
        name = download.value.suggested_filename
        files[Path(name).suffix] = (name, Path(download.value.path()).read_text(encoding="utf-8"))
    return files


def test_export_then_import_and_continue(browser_page: BrowserPage, local_app: AppProcess, tmp_path: Path) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.set_text("hf_token", SENTINEL_TOKEN)
    ui.set_text("system_prompt", "Answer briefly.")
    ui.set_number("max_new_tokens", 5)
    shown = ui.reply("Export me")
    ui.wait_listing(["Export me"])
    ui.rename("Export me", "Trip plans")
    ui.wait_listing(["Trip plans"])
    ui.set_text("system_prompt", "Changed after the reply.")

    downloads = exported_files(ui)  # the settings the reply was made with, not the sidebar's now
    assert {name for name, _ in downloads.values()} == {"Trip-plans.json", "Trip-plans.md"}, "named after the title"
    files = {suffix: text for suffix, (_, text) in downloads.items()}
    for text in files.values():
        assert SENTINEL_TOKEN not in text and "hf_token" not in text
    data = json.loads(files[".json"])
    assert data["format"] == "hfchat.conversation" and data["version"] == 2 and data["title"] == "Trip plans"
    assert data["settings"]["system_prompt"] == "Answer briefly." and data["settings"]["max_new_tokens"] == 5
    assert [m["text"] for m in data["messages"] if m["role"] == "user"] == ["Export me"]
    replies = [m for m in data["messages"] if m["role"] == "assistant"]
    answer = next(m["text"] for m in replies if "metadata" not in m)  # thinking and speed line carry metadata
    assert " ".join(answer.split()) in " ".join(" ".join(shown).split()), "the answer as shown"
    footers = [" ".join(f.split()) for f in ui.speed_footers()]
    assert footers, "the speed line is shown under the reply"
    in_file = [m["text"] for m in replies if m.get("metadata", {}).get("id") == FOOTER_ID]
    assert [" ".join(text.split()) for text in in_file] == footers, "marked as the footer"
    md = files[".md"]
    assert md.startswith("# Trip plans\n") and "### You\n\nExport me" in md and f"### Assistant\n\n{answer}" in md
    assert "| `system_prompt` | Answer briefly. |" in md and "| `max_new_tokens` | 5 |" in md
    assert all(f"*{text.strip()}*" in md for text in in_file)

    # As in another browser (empty storage): import the file and carry on.
    export_file = tmp_path / "trip.json"
    export_file.write_text(files[".json"])
    ui.fresh(local_app.url)
    ui.wait_listing([])
    ui.set_text("system_prompt", "something else")
    ui.import_file(export_file)
    ui.wait_listing(["Trip plans"])
    wait_until(lambda: ui.user_messages() == ["Export me"], 30, "the imported messages")
    assert ui.bot_messages() == shown
    wait_until(lambda: ui.field("system_prompt").input_value() == "Answer briefly.", 30, "the imported settings")
    assert ui.field("hf_token").input_value() == ""
    ui.reply("Continue please")
    assert ui.user_messages() == ["Export me", "Continue please"]
    ui.reopen()
    ui.open_conversation("Trip plans")
    wait_until(lambda: ui.user_messages() == ["Export me", "Continue please"], 30, "the continued import, saved")
    assert SENTINEL_TOKEN not in local_app.log_text()


def test_a_bad_import_is_refused_and_nothing_changes(
    browser_page: BrowserPage, local_app: AppProcess, tmp_path: Path
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("Keep me")
    ui.wait_listing(["Keep me"])
    bots = ui.bot_messages()
    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    ui.import_file(bad)
    ui.notice("not an hfchat conversation export").wait_for(state="visible", timeout=60_000)
    browser_page.screenshot("import-refused")
    assert ui.user_messages() == ["Keep me"] and ui.bot_messages() == bots
    ui.wait_listing(["Keep me"])
    assert ui.reply("Still here")


def test_presets_apply_save_and_survive_a_reload(browser_page: BrowserPage, local_app: AppProcess) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.page.get_by_text("Presets", exact=True).click()
    model = ui.field("model")
    local_model = model.input_value()

    ui.choose_preset("SmolLM2 135M Instruct, local CPU")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == "HuggingFaceTB/SmolLM2-135M-Instruct", 30, "the preset's model")

    ui.choose_preset("DeepSeek-R1 on Inference Providers")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == "deepseek-ai/DeepSeek-R1-0528", 30, "the provider preset")
    wait_until(
        lambda: ui.control("backend").get_by_label("Inference Providers", exact=True).is_checked(),
        30,
        "the providers backend",
    )
    wait_until(lambda: not ui.page.locator("#settings-device").is_visible(), 30, "local-only controls to hide")

    # My own: back to the tiny local model with a system prompt, saved under a name.
    ui.choose("backend", "Local")
    ui.set_text("model", local_model)
    ui.set_text("system_prompt", "You are terse.")
    ui.page.locator("#preset-name textarea").fill("tiny terse")
    ui.button("Save preset").click()
    wait_until(lambda: ui.page.locator("#preset-choice input").input_value() == "tiny terse", 30, "the saved preset")

    ui.choose_preset("Zephyr 7B beta, local 4-bit (NF4)")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == "HuggingFaceH4/zephyr-7b-beta", 30, "the zephyr preset")
    wait_until(lambda: ui.field("load_in_4bit").is_checked(), 30, "4-bit on")
    wait_until(lambda: ui.field("system_prompt").input_value() == "", 30, "the system prompt cleared")

    ui.reopen()
    ui.page.get_by_text("Presets", exact=True).click()
    ui.choose_preset("tiny terse")
    ui.button("Apply preset").click()
    wait_until(lambda: model.input_value() == local_model, 30, "my preset after a reload")
    wait_until(lambda: ui.field("system_prompt").input_value() == "You are terse.", 30, "my preset's system prompt")
    assert ui.reply("Hi")  # the applied preset chats
    browser_page.screenshot("presets", full_page=True)

    ui.page.locator("#preset-name textarea").fill("DeepSeek-R1 on Inference Providers")
    ui.button("Save preset").click()
    ui.notice("is a built-in preset").wait_for(state="visible", timeout=60_000)


def test_conversations_survive_a_server_restart(
    browser_page: BrowserPage, launch_app: Callable[..., AppProcess], tiny_models: dict[str, Path]
) -> None:
    """The stored list is encrypted with a fixed key, so a restarted server still reads it
    (Gradio's default key is new at every start)."""
    app = launch_app(*local_app_args(tiny_models, max_new_tokens=4))
    ui = ConvoUI(browser_page.page).fresh(app.url)
    ui.reply("Before the restart")
    ui.wait_listing(["Before the restart"])
    bots = ui.bot_messages()
    app.stop()
    app.start()  # same port, so the same origin and local storage
    ui.reopen()
    ui.wait_listing(["Before the restart"])
    ui.open_conversation("Before the restart")
    wait_until(lambda: ui.user_messages() == ["Before the restart"], 30, "the conversation after a restart")
    assert ui.bot_messages() == bots


def test_an_edited_question_is_saved(browser_page: BrowserPage, local_app: AppProcess) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("First")
    ui.reply("Secnd")
    ui.wait_listing(["First"])
    before = ui.stored()
    ui.page.get_by_role("button", name="Edit").last.click()
    ui.page.locator("textarea.edit-textarea").fill("Second")
    ui.page.locator('button[aria-label="Submit"]:not([data-testid="submit-button"])').click()
    wait_until(lambda: ui.user_messages() == ["First", "Second"], 60, "the edited question")
    ui.wait_reply()
    ui.saved_after(before, "the edited conversation to be saved")
    bots = ui.bot_messages()
    ui.reopen()
    ui.open_conversation("First")
    wait_until(lambda: ui.user_messages() == ["First", "Second"], 30, "the edit, saved")
    assert ui.bot_messages() == bots


def gradio_calls(urls: list[str]) -> list[str]:
    """The page's calls to the app's server (queue joins, runs, cancels, uploads, streams),
    as method-less paths; static assets and the page itself are left out."""
    return [url.split("?")[0].split("/gradio_api/", 1)[1] for url in urls if "/gradio_api/" in url]


def test_one_turn_costs_five_server_requests_and_the_meters_redraws(
    browser_page: BrowserPage, local_app: AppProcess
) -> None:
    """A turn sends the question, streams the reply, stores the question once as its reply
    begins (`write_begun`), then draws the box, the list and the meter and stores the finished
    turn: five requests to the server, no chain of small events, no write-back loop. (The
    stream carries no BrowserState and neither the box nor the list, which Gradio would
    rebuild on each update: issue 14.) The context meter's own redraws, as the box is sent and
    cleared, add up to two unqueued requests."""
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("Warm up")  # the page's own start-up calls (config, heartbeat) are behind us
    ui.wait_listing(["Warm up"])
    ui.textbox.fill("Count my requests")  # the context meter counts what is typed: its requests go first
    time.sleep(1.0)
    before = len(browser_page.requests)
    saved = ui.stored()
    ui.textbox.press("Enter")
    assert not ui.wait_reply(count=2).startswith(ERROR_MARK)
    ui.saved_after(saved, "the conversation to be saved")
    ui.wait_listing(["Warm up"])
    time.sleep(1.0)  # a late follow-up request would show here
    calls = gradio_calls(browser_page.requests[before:])
    print(f"one turn: {len(calls)} server requests: {calls}")
    assert calls.count("queue/join") == 1, calls  # one streamed event
    assert calls.count("run/predict") <= 5, calls  # begin, write_begun, settle; up to two for the meter
    assert len(calls) <= 7, calls
    assert ui.user_messages() == ["Warm up", "Count my requests"]
