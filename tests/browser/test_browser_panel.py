"""The conversation panel in a real browser: refusals without Error badges, no conversation for a
turn that never got an answer, import without copies, rename / delete in place, search, day
groups, and titles shown as text (they are visitor text).

Uses the browser harness (``tests/fixtures/browser.py``) and ``ConvoUI`` from
``test_browser_convos``. Some tests put a list straight into the browser's storage, encrypted as
Gradio's BrowserState does it (`stored_value`), to have conversations from several days.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from PIL import Image

from hfchat import conversations as convos
from hfchat.ui.page import BROWSER_STORAGE_SECRET
from hfchat.updates import ERROR_MARK
from tests.browser.test_browser_convos import ConvoUI, exported_files
from tests.fixtures.browser import SCREENSHOTS, AppProcess, BrowserPage, wait_until

SHOTS = Path(os.environ.get("HFCHAT_SHOTS", str(SCREENSHOTS)))
"""Where the panel's screenshots go (the lead's review folder when set)."""

DAY = 24 * 3600.0
INJECTION = '<img src=x onerror="window.__pwned=1"><b>bold</b> ${value} {{value}}'


def stored_value(value: object, secret: str = BROWSER_STORAGE_SECRET) -> str:
    """`value` as Gradio's BrowserState keeps it in localStorage: crypto-js AES with the
    SHA-256 hex of the secret as passphrase (OpenSSL's EVP_BytesToKey, MD5, "Salted__" and an
    8-byte salt; the key and IV come from them), after a base64 IV and ":" that decryption ignores."""
    passphrase, salt = hashlib.sha256(secret.encode()).hexdigest().encode(), os.urandom(8)
    derived, block = b"", b""
    while len(derived) < 48:
        block = hashlib.md5(block + passphrase + salt).digest()
        derived += block
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(value).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[32:48])).encryptor()
    cipher = encryptor.update(plain) + encryptor.finalize()
    return base64.b64encode(os.urandom(16)).decode() + ":" + base64.b64encode(b"Salted__" + salt + cipher).decode()


def seeded(ui: ConvoUI, url: str, conversations: list[convos.Conversation]) -> None:
    """Open the app with exactly `conversations` saved in this browser."""
    ui.open(url)
    ui.page.evaluate(
        "([key, value]) => { localStorage.clear(); localStorage.setItem(key, value); }",
        [convos.STORAGE_KEY, stored_value(convos.dump(conversations))],
    )
    ui.reopen()


def conversation(
    title: str, age_s: float | None, question: str | None = None, at: float | None = None
) -> convos.Conversation:
    """A saved conversation updated `age_s` seconds ago, or `at` a given time (neither: unstamped)."""
    text = question or title
    return convos.Conversation(
        id=convos.new_id(),
        title=title,
        messages=({"role": "user", "content": text}, {"role": "assistant", "content": f"About {text}."}),
        updated_at=at if age_s is None else time.time() - age_s,
    )


TWELVE = [  # (title, calendar days back, seconds before the end of that day)
    ("Plan a trip to Lisbon", 0, None),
    ("Fix my Python import error", 0, None),
    ("Recipe with leftover rice", 0, None),
    ("Explain attention in transformers", 1, 600.0),
    ("Birthday message for Sam", 1, 4000.0),
    ("Budget spreadsheet formulas", 3, 6 * 3600.0),
    ("SQL join question", 4, 6 * 3600.0),
    ("Haiku about autumn", 6, 6 * 3600.0),
    ("Compare two laptops", 12, 6 * 3600.0),
    ("Cover letter draft", 20, 6 * 3600.0),
    ("Learning Rust: ownership", 45, 6 * 3600.0),
    (INJECTION, None, None),
]


def twelve_stamps(ui: ConvoUI) -> list[float | None]:
    """TWELVE's `updated_at` by the browser's calendar, not by "hours ago": at 00:50 "2 hours
    ago" is yesterday (CI failed so at 00:02). Today's three share the time since midnight."""
    midnight = float(ui.page.evaluate("() => { const d = new Date(); d.setHours(0, 0, 0, 0); return d / 1000; }"))
    since = time.time() - midnight
    today = iter([midnight + since * f for f in (0.9, 0.6, 0.3)])
    return [
        None if days is None else next(today) if days == 0 else midnight - (days - 1) * DAY - (before or 0.0)
        for _, days, before in TWELVE
    ]


def error_badges(ui: ConvoUI) -> int:
    """Gradio's red "Error" pills (its status tracker's `.error`) anywhere on the page."""
    return int(ui.page.locator(".error").count())


def toasts(ui: ConvoUI) -> list[str]:
    """The texts of the toasts shown (Gradio stacks those of one kind in one box)."""
    return [t.strip() for t in ui.page.locator('[data-testid="toast-text"]').all_inner_texts()]


def close_toasts(ui: ConvoUI) -> None:
    for close in ui.page.locator('[data-testid="toast-close"]').all():
        close.click()
    wait_until(lambda: not toasts(ui), 30, "the toasts to close")


def test_refusals_show_one_toast_no_error_badge_and_the_chat_still_answers(
    browser_page: BrowserPage, local_app: AppProcess, tmp_path: Path
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    export = ui.page.locator("#export-conversation")
    assert export.is_disabled(), "Export has nothing to export yet"
    ui.reply("Keep me")
    ui.wait_listing(["Keep me"])
    wait_until(export.is_enabled, 30, "Export to be offered")
    bots, stored = ui.bot_messages(), ui.stored()

    bad = tmp_path / "notes.json"
    bad.write_text(json.dumps([{"role": "user", "content": "hi"}]))
    ui.import_file(bad)
    ui.notice("not an hfchat conversation export").wait_for(state="visible", timeout=60_000)
    time.sleep(1.0)  # a late badge would show here
    assert error_badges(ui) == 0 and len(toasts(ui)) == 1, toasts(ui)
    browser_page.screenshot("panel-import-refused")
    close_toasts(ui)

    # A delete of a conversation no longer saved (deleted in another tab): the item's id is stale.
    ui.item("Keep me").evaluate("(li) => { li.dataset.id = 'deleted-elsewhere'; }")
    ui.delete("Keep me")
    ui.notice("no saved conversation to delete").wait_for(state="visible", timeout=60_000)
    time.sleep(1.0)
    assert error_badges(ui) == 0 and len(toasts(ui)) == 1, toasts(ui)
    close_toasts(ui)

    assert ui.stored() == stored and ui.listing() == ["Keep me"]
    assert ui.user_messages() == ["Keep me"] and ui.bot_messages() == bots
    assert ui.reply("Still here")
    assert error_badges(ui) == 0
    assert not browser_page.console_errors, browser_page.console_errors


def test_a_turn_that_never_got_an_answer_saves_no_conversation(
    browser_page: BrowserPage, local_app: AppProcess, tmp_path: Path
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    model = ui.field("model").input_value()
    empty = ui.stored()

    ui.set_text("model", str(tmp_path / "no-such-model"))  # the model does not load: an error, no answer
    failed = ui.chat("Hello?")
    assert failed.startswith(ERROR_MARK), failed
    time.sleep(1.5)  # a save would land by now
    assert ui.listing() == [] and ui.stored() == empty

    ui.set_text("model", model)
    picture = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (255, 0, 0)).save(picture)
    before = ui.page.locator("img.thumbnail-image").count()
    ui.page.locator('input[type="file"]:not(.sidebar input)').set_input_files(str(picture))
    wait_until(lambda: ui.page.locator("img.thumbnail-image").count() > before, 60, "the upload's thumbnail")
    ui.send("What is in this picture?")
    refused = ui.wait_reply(count=2)
    assert "text-only" in refused, refused
    time.sleep(1.5)
    assert ui.listing() == [] and ui.stored() == empty, "a refused image saves nothing either"

    ui.send("A real question")  # the picture and its text were two bubbles: count the replies
    answer = ui.wait_reply(count=3)
    assert answer and not answer.startswith("⚠️"), answer
    ui.wait_listing(["A real question"])  # the first turn with an answer is the conversation
    ui.reopen()
    wait_until(lambda: ui.user_messages() == ["A real question"], 30, "only the answered turn, saved")
    assert not browser_page.console_errors, browser_page.console_errors


def test_importing_the_same_conversation_twice_keeps_one(
    browser_page: BrowserPage, local_app: AppProcess, tmp_path: Path
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("Import me once")
    files = exported_files(ui)
    path = tmp_path / "once.json"
    path.write_text(files[".json"][1])

    ui.import_file(path)  # the conversation it was exported from is here: opened, not copied
    ui.notice("already in your list").wait_for(state="visible", timeout=60_000)
    assert ui.listing() == ["Import me once"]

    ui.fresh(local_app.url)  # another browser: the first import adds it, the second opens it
    ui.import_file(path)
    ui.wait_listing(["Import me once"])
    ui.new_chat()
    ui.import_file(path)
    ui.notice("already in your list").wait_for(state="visible", timeout=60_000)
    wait_until(lambda: ui.title() == "Import me once", 30, "the saved copy opened")
    ui.wait_listing(["Import me once"])
    assert error_badges(ui) == 0


def test_rename_and_delete_in_place_with_escape_cancel_and_confirm(
    browser_page: BrowserPage, local_app: AppProcess
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("First topic")
    ui.new_chat()
    ui.reply("Second topic")
    ui.wait_listing(["Second topic", "First topic"])
    assert ui.page.locator("button", has_text="Delete").count() == 0, "no always-on Delete button"

    item = ui.item("First topic")  # not the open one: renaming it leaves the window as it is
    item.hover()
    item.locator("button.rename").click()
    box = ui.page.locator("#conversation-list input.rename-box")
    box.fill("never saved")
    box.press("Escape")
    assert ui.listing() == ["Second topic", "First topic"]
    ui.rename("First topic", INJECTION)
    ui.wait_listing(["Second topic", " ".join(INJECTION.split())])
    assert ui.user_messages() == ["Second topic"]
    shown = ui.item("bold").locator("button.open").inner_text()
    assert shown.strip() == " ".join(INJECTION.split()), "the title is text, not markup"
    assert ui.page.locator("#conversation-list img, #conversation-list b").count() == 0
    assert ui.page.evaluate("window.__pwned") is None

    ui.item("Second topic").hover()
    ui.item("Second topic").locator("button.delete").click()
    ui.page.locator("#conversation-list button.cancel").click()  # the confirm's Cancel keeps it
    assert ui.listing() == ["Second topic", " ".join(INJECTION.split())]
    ui.delete("Second topic")
    ui.wait_listing([" ".join(INJECTION.split())])
    assert ui.user_messages() == [], "the open conversation deleted: a new chat"
    ui.reopen()
    ui.wait_listing([" ".join(INJECTION.split())])
    assert error_badges(ui) == 0 and not browser_page.console_errors


def edit_first(ui: ConvoUI, text: str) -> None:
    """Edit the first (only) question to `text`, and wait until its new reply is saved."""
    saved = ui.stored()
    ui.edit(0, text)
    wait_until(lambda: ui.user_messages() == [text], 60, "the edited question")
    ui.wait_reply()
    ui.saved_after(saved, "the edit to be saved")


def test_the_title_follows_an_edit_of_the_first_message_unless_renamed(
    browser_page: BrowserPage, local_app: AppProcess
) -> None:
    ui = ConvoUI(browser_page.page).fresh(local_app.url)
    ui.reply("Wrong question")
    ui.wait_listing(["Wrong question"])
    edit_first(ui, "Right question")
    ui.wait_listing(["Right question"])
    assert ui.title() == "Right question"

    ui.rename("Right question", "My name for it")
    ui.wait_listing(["My name for it"])
    edit_first(ui, "Another question")
    ui.wait_listing(["My name for it"])  # renamed by hand: kept


@pytest.mark.parametrize(("width", "height"), [(1400, 900), (390, 844)])
def test_day_groups_search_and_screenshots(
    browser_page: BrowserPage, local_app: AppProcess, width: int, height: int
) -> None:
    ui = ConvoUI(browser_page.page)
    ui.page.set_viewport_size({"width": width, "height": height})
    stamps = twelve_stamps(ui)
    saved = [conversation(title, None, at=at) for (title, _, _), at in zip(TWELVE, stamps, strict=True)]
    seeded(ui, local_app.url, saved)
    titles = [" ".join(title.split()) for title, _, _ in TWELVE]
    ui.wait_listing(titles)  # newest first
    assert ui.headings() == ["Today", "Yesterday", "Previous 7 days", "Older"]
    groups = ui.page.locator("#conversation-list section.day").evaluate_all(
        "(days) => days.map((d) => [...d.querySelectorAll('li.item')].length)"
    )
    assert groups == [3, 2, 3, 4]
    assert ui.page.evaluate("window.__pwned") is None
    assert ui.page.locator("#conversation-list img").count() == 0

    ui.open_sidebar(panel="conversations-panel")  # closed on a phone: the page opens on the chat
    SHOTS.mkdir(parents=True, exist_ok=True)
    ui.open_conversation("Fix my Python import error")
    ui.page.screenshot(path=str(SHOTS / f"convos-panel-{width}x{height}.png"))
    ui.page.locator("#conversation-list").screenshot(path=str(SHOTS / f"convos-list-{width}x{height}.png"))

    search = ui.page.locator("#conversation-list input.search")
    search.fill("py")
    wait_until(lambda: ui.shown_listing() == ["Fix my Python import error"], 30, "search to filter")
    assert ui.headings() == ["Today"]
    ui.page.locator("#conversation-list").screenshot(path=str(SHOTS / f"convos-search-{width}x{height}.png"))
    search.fill("nothing like this")
    wait_until(lambda: ui.shown_listing() == [], 30, "search to hide every item")
    assert ui.page.locator("#conversation-list .no-match").is_visible()
    search.fill("")
    wait_until(lambda: ui.shown_listing() == titles, 30, "every item back")
    search.fill("LAPTOP")
    wait_until(lambda: ui.shown_listing() == ["Compare two laptops"], 30, "search ignores case")
    if width < 768:  # on a phone the open panel covers the chat
        ui.open_sidebar(False, panel="conversations-panel")
    ui.reply("One more")  # the list re-renders: the search still applies
    wait_until(lambda: ui.shown_listing() == ["Compare two laptops"], 30, "the filter after a re-render")
    assert ui.listing()[0] == "Fix my Python import error", "the conversation answered moves to the top"
    assert not browser_page.console_errors, browser_page.console_errors
