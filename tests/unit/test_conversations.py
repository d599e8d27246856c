"""Saved conversations as plain data: commit, titles, rename, delete, storage round trip."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from hfchat import conversations as convos
from hfchat.errors import ConfigError
from hfchat.messages import MessageKind, build_messages, history_to_messages, message_kind
from hfchat.presets import ControlValues
from hfchat.ui.conversations import list_html
from hfchat.updates import FAILED_ID, INTERRUPTED_ID, LOADING_ID, THINKING_ID


def turn(question: str, answer: str) -> list[dict]:
    return [
        {"role": "user", "content": [{"type": "text", "text": question}], "metadata": None, "options": None},
        {"role": "assistant", "content": [{"type": "text", "text": answer}], "metadata": None, "options": None},
    ]


def ids() -> itertools.count:
    return itertools.count(1)


def make_id_from(counter: itertools.count):
    return lambda: f"c{next(counter)}"


def test_first_message_creates_a_titled_conversation_at_the_top() -> None:
    make_id = make_id_from(ids())
    first = convos.commit([], None, turn("What is the capital of France?", "Paris."), None, make_id)
    assert first is not None and first.current == "c1"
    second = convos.commit(first.conversations, None, turn("hi", "hello"), None, make_id)
    assert second is not None
    assert [(c.title, c.id) for c in second.conversations] == [("hi", "c2"), ("What is the capital of France?", "c1")]


def test_later_turns_update_in_place_and_keep_a_renamed_title() -> None:
    saved = convos.commit([], None, turn("q1", "a1"), ControlValues(model="a/a"), make_id_from(ids()))
    assert saved is not None
    renamed = convos.rename(saved.conversations, saved.current, "  My   trip ")
    longer = turn("q1", "a1") + turn("q2", "a2")
    updated = convos.commit(renamed, saved.current, longer, ControlValues(model="b/b"), make_id_from(ids()))
    assert updated is not None and updated.current == saved.current
    (only,) = updated.conversations
    assert only.title == "My trip" and len(only.messages) == 4 and only.settings == ControlValues(model="b/b")


def test_a_changed_conversation_moves_to_the_top_stamped() -> None:
    make_id = make_id_from(ids())
    a = convos.commit([], None, turn("a", "1"), None, make_id, now=100.0)
    assert a is not None
    b = convos.commit(a.conversations, None, turn("b", "2"), None, make_id, now=200.0)
    assert b is not None and [c.title for c in b.conversations] == ["b", "a"]
    again = convos.commit(b.conversations, "c1", turn("a", "1") + turn("more", "3"), None, make_id, now=300.0)
    assert again is not None and [(c.title, c.updated_at) for c in again.conversations] == [("a", 300.0), ("b", 200.0)]
    renamed = convos.rename(again.conversations, "c2", "Bee")
    assert [c.title for c in renamed] == ["a", "Bee"] and renamed[1].updated_at == 200.0, "a rename stays in place"


def test_the_title_follows_the_first_message_unless_renamed() -> None:
    saved = convos.commit([], None, turn("Wrong question", "x"), None, make_id_from(ids()))
    assert saved is not None
    edited = convos.commit(saved.conversations, saved.current, turn("Right question", "y"), None)
    assert edited is not None and edited.conversations[0].title == "Right question"
    later = convos.commit(edited.conversations, saved.current, turn("Right question", "y") + turn("q2", "z"), None)
    assert later is not None and later.conversations[0].title == "Right question"
    renamed = convos.rename(later.conversations, saved.current, "Mine")
    kept = convos.commit(renamed, saved.current, turn("Third wording", "w"), None)
    assert kept is not None and kept.conversations[0].title == "Mine"


def test_a_turn_without_an_answer_is_not_saved() -> None:
    """A failure, a refused image, Stop while loading: shown, never saved; an answer, thinking,
    a partial answer that failed later, or the interrupted note are a turn that began."""
    failed = {"role": "assistant", "content": "⚠️ no", "metadata": {"id": FAILED_ID}}
    loading = {"role": "assistant", "content": "Loading…", "metadata": {"id": LOADING_ID}}
    thinking = {"role": "assistant", "content": "hm", "metadata": {"id": THINKING_ID, "title": "Thinking"}}
    question = {"role": "user", "content": "q"}
    assert convos.answered_turns([question, failed]) == []
    assert convos.answered_turns([question]) == [] and convos.answered_turns([question, loading]) == []
    assert convos.answered_turns([*turn("a", "1"), question, failed]) == turn("a", "1")
    assert convos.answered_turns([question, failed, *turn("b", "2")]) == turn("b", "2")
    partial = [question, {"role": "assistant", "content": "part"}, failed]
    assert convos.answered_turns(partial) == partial
    assert convos.answered_turns([question, thinking, failed]) == [question, thinking, failed]
    noted = [question, convos.interrupted_note()]
    assert convos.answered_turns(noted) == noted
    assert convos.commit([], None, convos.answered_turns([question, failed]), None) is None, "no conversation"


def test_day_groups_follow_the_visitors_calendar() -> None:
    """Today / Yesterday / Previous 7 days / Older by the calendar days of the visitor's zone,
    on a fake clock: 00:30 in UTC+2 is still yesterday in UTC."""
    zone = timezone(timedelta(hours=2))
    now = datetime(2026, 3, 10, 0, 30, tzinfo=zone)

    def at(*when: int) -> float:
        return datetime(*when, tzinfo=zone).timestamp()

    cases = {
        at(2026, 3, 10, 0, 5): convos.TODAY,
        at(2026, 3, 10, 0, 40): convos.TODAY,  # a server clock a little ahead
        at(2026, 3, 9, 23, 59): convos.YESTERDAY,
        at(2026, 3, 9, 0, 0): convos.YESTERDAY,
        at(2026, 3, 8, 23, 0): convos.WEEK,
        at(2026, 3, 3, 1, 0): convos.WEEK,
        at(2026, 3, 2, 23, 0): convos.OLDER,
    }
    for stamp, group in cases.items():
        assert convos.day_group(stamp, now) == group, datetime.fromtimestamp(stamp, zone)
    assert convos.day_group(None, now) == convos.OLDER, "saved before stamps existed"
    assert convos.day_group(at(2026, 3, 9, 23, 0), now.astimezone(timezone.utc)) == convos.TODAY, "in UTC it is the 9th"

    made = [
        convos.Conversation(id=str(i), title=f"t{i}", messages=(), updated_at=stamp)
        for i, stamp in enumerate([at(2026, 3, 9, 8, 0), None, at(2026, 3, 10, 0, 10), at(2026, 2, 1, 0, 0)])
    ]
    grouped = [(name, [c.title for c in members]) for name, members in convos.by_day(made, now)]
    assert grouped == [("Today", ["t2"]), ("Yesterday", ["t0"]), ("Older", ["t3", "t1"])], "no empty group"


def test_the_viewers_clock_comes_from_the_browsers_offset() -> None:
    assert convos.viewer_now(120, now=0.0).utcoffset() == timedelta(hours=2)
    assert convos.viewer_now(-330, now=0.0).utcoffset() == timedelta(minutes=-330)
    for junk in (None, "120", 10_000, float("nan")):
        assert convos.viewer_now(junk, now=0.0).utcoffset() == timedelta(0), junk


def test_unchanged_messages_are_not_saved_again() -> None:
    """Loading a conversation syncs the chat state; that must not rewrite it (or its settings)."""
    saved = convos.commit([], None, turn("q", "a"), ControlValues(model="a/a"), make_id_from(ids()))
    assert saved is not None
    assert convos.commit(saved.conversations, saved.current, turn("q", "a"), ControlValues(model="x/x")) is None
    assert convos.commit(saved.conversations, None, [], None) is None


def test_undo_and_retry_shapes_are_saved_as_shown() -> None:
    """Retry and edit first cut the history, then add the new reply; both states are saved."""
    saved = convos.commit([], None, turn("q", "a1") + turn("q2", "b"), None, make_id_from(ids()))
    assert saved is not None
    cut = convos.commit(saved.conversations, saved.current, turn("q", "a1")[:1], None)
    assert cut is not None and len(cut.conversations[0].messages) == 1
    redone = convos.commit(cut.conversations, cut.current, turn("q", "a2"), None)
    assert redone is not None and redone.conversations[0].messages[1]["content"][0]["text"] == "a2"


def test_clearing_the_chat_removes_the_conversation() -> None:
    make_id = make_id_from(ids())
    a = convos.commit([], None, turn("a", "1"), None, make_id)
    assert a is not None
    b = convos.commit(a.conversations, None, turn("b", "2"), None, make_id)
    assert b is not None
    cleared = convos.commit(b.conversations, "c1", [], None)
    assert cleared is not None and cleared.current is None
    assert [c.id for c in cleared.conversations] == ["c2"]


def test_delete_and_rename_errors_are_clear() -> None:
    saved = convos.commit([], None, turn("q", "a"), None, make_id_from(ids()))
    assert saved is not None
    assert convos.delete(saved.conversations, saved.current) == []
    with pytest.raises(ConfigError, match="no saved conversation"):
        convos.delete(saved.conversations, None)
    with pytest.raises(ConfigError, match="not saved yet"):
        convos.rename(saved.conversations, "nope", "x")
    with pytest.raises(ConfigError, match="enter a title"):
        convos.rename(saved.conversations, saved.current, "   ")
    with pytest.raises(ConfigError, match="at most 80"):
        convos.rename(saved.conversations, saved.current, "x" * 81)


@pytest.mark.parametrize(
    ("messages", "title"),
    [
        (turn("  a   long\n" + "x" * 50, "x"), "a long " + "x" * 33 + "…"),
        ([{"role": "user", "content": {"text": "look", "files": ["/tmp/cat.png"]}}], "📎 look"),
        (
            [{"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/cat.png"}}]}],
            "📎",
        ),
        ([{"role": "assistant", "content": "hello first"}], "New conversation"),
        (turn("", "x"), "New conversation"),
    ],
)
def test_default_titles(messages: list[dict], title: str) -> None:
    assert convos.default_title(messages) == title


def test_storage_round_trip_skips_what_does_not_read_back() -> None:
    saved = convos.commit([], None, turn("q", "a"), ControlValues(model="a/a"), make_id_from(ids()))
    assert saved is not None
    stored = convos.dump(saved.conversations)
    junk = [{"id": "x", "title": "", "messages": []}, {"id": "y", "title": "t", "messages": [{"role": "tool"}]}, 3]
    loaded = convos.load([*junk, *stored, *stored])
    assert loaded == saved.conversations
    assert convos.load(None) == [] and convos.load({"not": "a list"}) == []


def test_the_list_is_bounded_by_dropping_the_oldest() -> None:
    make_id = make_id_from(ids())
    conversations: list[convos.Conversation] = []
    for i in range(convos.MAX_CONVERSATIONS + 1):
        saved = convos.commit(conversations, None, turn(f"q{i}", "a"), None, make_id)
        assert saved is not None
        conversations = saved.conversations
    assert len(conversations) == convos.MAX_CONVERSATIONS
    assert conversations[0].title == f"q{convos.MAX_CONVERSATIONS}" and conversations[-1].title == "q1"


def test_only_files_the_app_received_are_shown_again(tmp_path) -> None:
    """A stored conversation comes from the browser: a path elsewhere (or a file gone since a
    restart) must not reach the chat window, which would serve it."""
    uploads = tmp_path / "gradio"
    uploads.mkdir()
    cat = uploads / "cat.png"
    cat.write_bytes(b"png")
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    messages = [
        {"role": "user", "content": [{"type": "file", "file": {"path": str(cat)}}, {"type": "text", "text": "hi"}]},
        {"role": "user", "content": [{"type": "file", "file": {"path": str(secret)}}]},
        {"role": "user", "content": [{"type": "file", "file": {"path": str(uploads / ".." / "secret.txt")}}]},
        {"role": "user", "content": {"path": str(uploads / "gone.png")}},
        {"role": "user", "content": [{"type": "file", "file": {"path": "http://169.254.169.254/latest"}}]},
        {"role": "assistant", "content": "plain text"},
    ]
    shown = convos.keep_available_files(messages, uploads)
    assert shown[0] == messages[0]
    assert shown[1]["content"] == [{"type": "text", "text": "📎 secret.txt (no longer available)"}]
    assert shown[2]["content"] == [{"type": "text", "text": "📎 secret.txt (no longer available)"}]
    assert shown[3]["content"] == {"type": "text", "text": "📎 gone.png (no longer available)"}
    assert shown[4]["content"][0]["type"] == "text"
    assert shown[5] == messages[5]


def test_a_conversation_saved_before_replies_were_typed_is_upgraded_once_on_load() -> None:
    """Old entries (no `layout`) marked a failure with ⚠️ text: it is split off once, on load."""
    legacy = {
        "id": "old",
        "title": "Old one",
        "messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "partial\n\n⚠️ **Server error.** gone"},
            {"role": "assistant", "content": "⏱ m · Local", "metadata": {"id": "hfchat-speed"}},
        ],
    }
    (loaded,) = convos.load([legacy])
    assert [message_kind(m) for m in loaded.messages[1:]] == [
        MessageKind.ANSWER,
        MessageKind.FAILED,
        MessageKind.FOOTER,
    ]
    assert [m.content for m in build_messages("next", loaded.messages, "")] == ["q", "partial", "next"]
    stored = convos.dump([loaded])
    assert stored[0]["layout"] == convos.LAYOUT
    lookalike = {**stored[0], "messages": [{"role": "user", "content": "q"}, legacy["messages"][1]]}
    (again,) = convos.load([lookalike])
    assert again.messages[1] == legacy["messages"][1], "a saved layout-2 answer is never read for emoji"


def test_the_interrupted_note_is_a_reply_by_its_id_so_its_question_is_kept() -> None:
    saved = convos.start_turn([], None, [], "Tell me a story", make_id_from(ids()))
    assert saved is not None
    (conversation,) = saved.conversations
    note = conversation.messages[-1]
    assert note["metadata"] == {"id": INTERRUPTED_ID} and message_kind(note) is MessageKind.ANSWER
    reworded = [*conversation.messages[:-1], {**note, "content": "Interrupted (no mark at all)."}]
    for history in (conversation.messages, reworded):
        sent = [type(m).__name__ for m in history_to_messages(history)]
        assert sent == ["HumanMessage", "AIMessage"], "the question stays in what the model gets next"


def test_the_list_is_rendered_with_every_title_and_id_as_text() -> None:
    """Titles and ids come back from the browser: markup in them is shown, never run."""
    evil = '<img src=x onerror="alert(1)"> ${value} {{value}} & "quoted"'
    made = convos.Conversation(id='x" onclick="alert(2)', title=evil, messages=(), updated_at=1.0)
    rendered = list_html([made], made.id, 0)
    assert "<img" not in rendered and 'onclick="' not in rendered and 'onerror="' not in rendered
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in rendered and "&amp;" in rendered
    assert 'aria-current="true"' in rendered and 'id="conversation-title"' in rendered
    assert "<h3>Older</h3>" in rendered
    assert "No saved conversations" in list_html([], None, 0)
