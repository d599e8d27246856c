"""An app restart in the middle of a reply (break 13 of the security issue), in a real Chromium.

``python app.py`` streams a slow reply from a loopback endpoint; the app process is killed and
started again on the same port while the reply streams; after a reload the page shows the
conversation with the turn marked interrupted, and the next message goes to the model with
the earlier question in its history (asserted on the endpoint's recorded request).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Error as PlaywrightError

from hfchat import conversations as convos
from hfchat.messages import build_messages
from hfchat.testing.servers import RecordedRequest, Recorder, Response, sse_chat_stream, sse_response
from tests.browser.test_browser_convos import ConvoUI
from tests.fixtures.browser import AppProcess, BrowserPage, wait_until

pytestmark = pytest.mark.timeout(600)

QUESTION = "Remember the number 4217"


def slow_then_quick(req: RecordedRequest) -> Response:
    """The first reply streams one word every half second for a minute; later ones are quick."""
    events = sse_chat_stream("Sure, I will remember it. " + "and " * 120, model="tiny")
    if [str(m.get("content")).strip() for m in (req.json or {}).get("messages", [])[-1:]] != [QUESTION]:
        return sse_response(sse_chat_stream("It was 4217.", model="tiny"))

    def slowly() -> Iterator[str]:
        for event in events:
            time.sleep(0.5)
            yield event

    return sse_response(slowly())


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    with Recorder({("POST", "/v1/chat/completions"): slow_then_quick}) as recorder:
        yield recorder


def reopen_after_restart(ui: ConvoUI, tries: int = 5) -> None:
    """Reload the page once the app is back. Gradio reloads the page by itself when it
    reconnects, and a reload of ours that crosses that one fails in Playwright ("Not
    attached to an active page"): then it is simply tried again."""
    for attempt in range(tries):
        try:
            ui.reopen()
            return
        except PlaywrightError:
            if attempt == tries - 1:
                raise
            time.sleep(1)


def test_a_turn_cut_by_an_app_restart_is_kept_and_the_next_message_has_the_history(
    endpoint: Recorder, browser_page: BrowserPage
) -> None:
    app = AppProcess("--backend", "endpoint", "--endpoint-url", endpoint.url, "--served-model", "tiny")
    with app:
        ui = ConvoUI(browser_page.page).fresh(app.url)
        ui.page.set_viewport_size({"width": 1400, "height": 900})
        ui.watch_last_bot()
        ui.send(QUESTION)
        wait_until(lambda: len(ui.renders()) >= 3, 60, "the slow reply to stream")
        app.stop()  # the app process goes away mid-reply (SIGTERM to its process group)
        app.start()  # same port: same origin, same browser storage
        reopen_after_restart(ui)
        wait_until(lambda: ui.user_messages() == [QUESTION], 60, "the interrupted turn back in the window")
        marked = ui.page.locator(ConvoUI.BOT).filter(has_text="Interrupted")
        wait_until(lambda: marked.count() == 1, 30, "the turn marked interrupted")
        ui.wait_listing([QUESTION])
        browser_page.screenshot("interrupted-turn")

        endpoint.clear()
        ui.send("Which number was it?")
        wait_until(lambda: ui.user_messages() == [QUESTION, "Which number was it?"], 30, "the new message")
        ui.wait_reply(count=1)
        chats = wait_until(
            lambda: [r for r in endpoint.requests if r.path == "/v1/chat/completions"], 60, "the chat request"
        )
        sent = chats[-1].json["messages"]
        texts = [str(m.get("content")) for m in sent if m.get("role") == "user"]
        assert any(QUESTION in t for t in texts), f"the earlier question goes with the history: {sent}"
        assert [m["role"] for m in sent] == ["user", "assistant", "user"], "the interrupted turn, then the new one"
        wait_until(lambda: ui.page.locator(ConvoUI.BOT).filter(has_text="It was 4217.").count() == 1, 30, "reply")
        ui.wait_listing([QUESTION])  # the same conversation, continued, not a new one
        ui.reopen()
        wait_until(lambda: ui.user_messages() == [QUESTION, "Which number was it?"], 60, "the saved conversation")


def test_a_question_is_saved_as_it_is_sent_and_the_reply_replaces_the_note() -> None:
    started = convos.start_turn([], None, [], {"text": QUESTION, "files": []}, make_id=lambda: "c1")
    assert started is not None and started.current == "c1"
    (saved,) = started.conversations
    assert saved.title == QUESTION
    assert [m["role"] for m in saved.messages] == ["user", "assistant"]
    assert saved.messages[1]["content"] == convos.INTERRUPTED_TEXT
    # The next message goes with the interrupted question (a bare unanswered one would be replaced).
    sent = build_messages("Which number?", list(saved.messages), "")
    assert [m.type for m in sent] == ["human", "ai", "human"] and sent[0].content == QUESTION
    # Gradio's save at the end of the turn writes the reply over the note, in the same conversation.
    done = convos.commit(
        started.conversations,
        "c1",
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "OK"}],
        None,
    )
    assert done is not None and [c.id for c in done.conversations] == ["c1"]
    assert done.conversations[0].messages[-1]["content"] == "OK"


def test_a_multimodal_question_keeps_its_files() -> None:
    message = convos.user_message({"text": "What is this?", "files": ["/tmp/a.png", {"path": "/tmp/b.png"}]})
    assert message == {"role": "user", "content": [{"path": "/tmp/a.png"}, {"path": "/tmp/b.png"}, "What is this?"]}
