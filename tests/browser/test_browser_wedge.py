"""A turn that fails mid-stream leaves the tab usable, in a real Chromium (issue 10, break 6).

`python app.py` on a loopback Recorder endpoint that streams some text and then a malformed
chunk. Before the fix the exception escaped to Gradio: an "Error" badge, the partial reply
gone, the textbox disabled for a minute and Stop useless. Now the partial text and a readable
message appear, no error badge, the textbox is enabled, Stop stops the next (endless) reply,
and the message after that is answered.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator

import pytest

from hfchat.testing.servers import RecordedRequest, Recorder, Response, sse_chat_stream, sse_response
from tests.browser.test_browser_convos import ConvoUI
from tests.fixtures.browser import AppProcess, BrowserPage, wait_until

pytestmark = pytest.mark.timeout(600)

PARTIAL = "one two three"


def _slowly(events: list[str], every_s: float) -> Iterator[str]:
    for event in events:
        yield event
        time.sleep(every_s)


def _endless() -> Iterator[str]:
    """A reply that never ends by itself, a word every 0.2 s: only Stop ends it."""
    head = sse_chat_stream("streaming")[:2]
    yield from head
    for n in itertools.count():
        yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': f' word{n}'}}]})}\n\n"
        time.sleep(0.2)
        if n > 600:
            return


def _scripted() -> Callable[[RecordedRequest], Response]:
    """1st reply: PARTIAL, then a chunk whose delta is a string. 2nd: endless. Then healthy."""
    calls = itertools.count()
    malformed = f"data: {json.dumps({'choices': [{'delta': 'str'}]})}\n\n"

    def handle(req: RecordedRequest) -> Response:
        n = next(calls)
        if n == 0:
            return sse_response(_slowly([*sse_chat_stream(PARTIAL)[:4], malformed], 0.3))
        if n == 1:
            return sse_response(_endless())
        return sse_response(sse_chat_stream("All good now."))

    return handle


def error_badges(tab: BrowserPage) -> list[str]:
    """Gradio's own error displays: an error toast, or a component's status tracker saying Error."""
    page = tab.page
    toasts = page.locator('[data-testid="toast-body"].error, .toast-body.error').all_inner_texts()
    badges = [t for t in page.locator(".error").all_inner_texts() if t.strip() == "Error"]
    return toasts + badges


@pytest.fixture
def endpoint(recorder: Recorder) -> Recorder:
    recorder.route("GET", "/v1/models", (404, {}, b""))
    recorder.route("POST", "/v1/chat/completions", _scripted())
    return recorder


def test_a_malformed_chunk_mid_reply_leaves_the_tab_usable_and_stop_working(
    endpoint: Recorder, launch_app: Callable[..., AppProcess], browser_page: BrowserPage
) -> None:
    app = launch_app("--backend", "endpoint", "--endpoint-url", endpoint.url, "--max-new-tokens", "64")
    ui = ConvoUI(browser_page.page).fresh(app.url)
    ui.open_sidebar(False)

    ui.watch_last_bot()
    ui.send("First message")
    wait_until(lambda: not ui.generating() and ui.bot_messages(), 60, "the failed turn to end")
    *_, kept, shown = ui.bot_messages()
    browser_page.screenshot("wedge-malformed-chunk")
    assert any(PARTIAL in r and "cannot read" not in r for r in ui.renders()), "the partial text streamed first"
    assert kept.startswith(PARTIAL), f"the partial reply is kept, above the failure: {kept!r}"
    assert "sent a reply hfchat cannot read" in shown and PARTIAL not in shown, shown
    assert error_badges(browser_page) == [], "no Gradio error badge or toast"
    assert ui.user_messages() == ["First message"], "the typed message is kept"
    assert ui.textbox.is_enabled() and ui.textbox.is_editable(), "the textbox is usable again"

    ui.watch_last_bot()
    ui.send("Second message")
    wait_until(lambda: len(ui.renders()) >= 3 and ui.generating(), 60, "the endless reply to stream")
    started = time.monotonic()
    ui.stop_button.click()
    wait_until(lambda: not ui.generating(), 15, "Stop to end the reply")
    assert time.monotonic() - started < 15
    stopped = ui.last_bot_text()
    assert stopped.startswith("streaming word0"), stopped
    time.sleep(1)
    assert ui.last_bot_text() == stopped, "nothing arrives after Stop"
    assert ui.textbox.is_enabled() and ui.textbox.is_editable()

    assert ui.chat("Third message") == "All good now.", "the next message is answered"
    assert ui.user_messages() == ["First message", "Second message", "Third message"]
    assert error_badges(browser_page) == []
    assert browser_page.console_errors == []
    assert browser_page.foreign_requests == []

    # The failed turn was saved like any other: after a reload it is all still there.
    ui.reopen()
    ui.wait_listing(["First message"])
    ui.open_conversation("First message")
    wait_until(lambda: len(ui.user_messages()) == 3, 30, "the saved turns after a reload")
    saved = ui.bot_messages()
    assert saved[0].startswith(PARTIAL) and "sent a reply hfchat cannot read" in saved[1], saved
    assert saved[-1] == "All good now."
