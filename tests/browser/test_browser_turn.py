"""The turn as it streams, in a real Chromium: Stop for every generation (send, retry, edit),
the stopped reply's footer, loading progress, and Retry's new sample.

Settings are found by element id (`settings-<name>`), never by label. The app's default is
sampling; tests that need the long greedy reply of the tiny model set greedy themselves.
"""

from __future__ import annotations

import re

import pytest

from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, wait_until

pytestmark = pytest.mark.timeout(600)


def _long_greedy(ui: ChatUI) -> None:
    """The tiny model's greedy reply runs to max_new_tokens: long enough to watch it stream."""
    ui.set_setting_checked("do_sample", False)
    ui.set_setting_number("max_new_tokens", 4000)


COUNTER = re.compile(r"processing|queue|\d+(\.\d+)?\s*s\b")
"""Gradio's progress counter on an event's outputs ("processing | 1.5s", "queue: 1/1 | 0.5s")."""


def _assert_stop_shown_while_streaming(ui: ChatUI, tab: BrowserPage, shot: str) -> None:
    """From within a second of the action until the user stops it, the box shows Stop (never
    the submit arrow), and never a progress counter. Call after ``ui.watch_box()`` and the action."""
    wait_until(lambda: len(ui.renders()) >= 3, 120, "the reply to stream")
    tab.screenshot(shot)
    assert ui.stop_button.is_visible(), "Stop is shown while the reply streams"
    states = ui.box_states()
    ui.stop_button.click()
    wait_until(lambda: not ui.generating(), 30, "Stop to end the reply")
    acted = ui.box_marked_at()
    first_stop = next((i for i, (_, stop, _, _) in enumerate(states) if stop), None)
    assert first_stop is not None and states[first_stop][0] - acted < 1000, f"Stop within 1 s of {acted}: {states}"
    late = [s for s in states[first_stop:] if not s[1] or s[2]]
    assert late == [], f"the submit arrow came back (or Stop went) while the reply streamed: {states}"
    counters = [s for s in states if COUNTER.search(s[3])]
    assert counters == [], f"a progress counter in the chat box: {counters}"


def test_stop_is_shown_while_an_edited_message_and_a_retry_are_answered(
    local_app: AppProcess, browser_page: BrowserPage
) -> None:
    ui = ChatUI(browser_page.page).open(local_app.url)
    ui.chat("warm up")  # loads the model: Stop is about generation here
    _long_greedy(ui)

    ui.watch_last_bot()
    ui.watch_box()
    ui.edit(0, "Tell me a very long story", before_submit=ui.mark_box)
    _assert_stop_shown_while_streaming(ui, browser_page, "reply-edit-streaming")

    ui.watch_last_bot()
    ui.watch_box()
    ui.mark_box()
    ui.retry()
    _assert_stop_shown_while_streaming(ui, browser_page, "reply-retry-streaming")
    browser_page.page.reload()
