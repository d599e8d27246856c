"""History conversion: Gradio's formats in, alternating LangChain messages out."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from hfchat.errors import AuthError, HFChatError, InputError, internal_error
from hfchat.images import IMAGE_TASK, MAX_IMAGES, to_data_url
from hfchat.messages import (
    MessageKind,
    build_messages,
    content_text,
    fit_history,
    fold_system_prompt,
    history_to_messages,
    message_kind,
    sent_text,
    trim_notice,
    upgrade_legacy,
)
from hfchat.ui.render import to_messages
from hfchat.updates import (
    ERROR_MARK,
    FAILED_ID,
    FOOTER_ID,
    INTERRUPTED_ID,
    LOADING_ID,
    LOADING_MARK,
    NOTICE_ID,
    NOTICE_MARK,
    SPEED_MARK,
    STOPPED_MARK,
    THINKING_ID,
    Answer,
    Failed,
    Footer,
    Loading,
    Notice,
    ReplyView,
    Thinking,
)


def blocks(text: str) -> list[dict[str, str]]:
    return [{"type": "text", "text": text}]


def test_content_text_reads_every_gradio_shape() -> None:
    assert content_text("hi") == "hi"
    assert content_text(blocks("hi")) == "hi"
    assert content_text({"text": "hi", "files": ["/tmp/x.png"]}) == "hi"
    assert content_text([{"type": "text", "text": "a"}, {"type": "file", "file": {"path": "x"}}, "b"]) == "a\nb"
    assert content_text(None) == ""


def test_system_history_and_new_message_in_order() -> None:
    history = [
        {"role": "user", "content": blocks("Hello")},
        {"role": "assistant", "content": blocks("Hi!")},
    ]
    messages = build_messages("How are you?", history, "Be brief.")
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage, AIMessage, HumanMessage]
    assert [m.content for m in messages] == ["Be brief.", "Hello", "Hi!", "How are you?"]


def test_no_system_message_when_prompt_is_blank() -> None:
    assert [type(m) for m in build_messages("hi", [], "   ")] == [HumanMessage]


def failed(error: HFChatError | None = None) -> dict[str, Any]:
    """A failure as the chat window shows it."""
    return to_messages(((error or AuthError("bad token", "fix it")).failed(),))[0]


def test_error_replies_and_their_questions_never_reach_the_model() -> None:
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "broken"},
        failed(),
    ]
    assert [m.content for m in build_messages("again", history, "")] == ["first", "answer", "again"]


def test_partial_reply_keeps_its_text_but_not_the_error_notice() -> None:
    view: ReplyView = (Answer("partial words"), AuthError("stream cut", "retry").failed())
    history = [{"role": "user", "content": "q"}, *to_messages(view)]
    assert [m.content for m in history_to_messages(history)] == ["q", "partial words"]


def test_a_loading_notice_left_by_stop_is_not_a_reply() -> None:
    history = [{"role": "user", "content": "q"}, *to_messages((Notice("✂️ *trimmed*"), Loading("m")))]
    assert [m.content for m in build_messages("again", history, "")] == ["again"]


def test_what_a_message_is_comes_from_its_metadata_never_its_text() -> None:
    """A model may well write text that looks like the app's notices: it is still its answer."""
    lookalike = "⚠️ **Careful.** this is the model's own answer\n\n⏱ and so is this"
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": lookalike}]
    assert [m.content for m in build_messages("next", history, "")] == ["q", lookalike, "next"]
    kinds = {
        LOADING_ID: MessageKind.LOADING,
        NOTICE_ID: MessageKind.NOTICE,
        THINKING_ID: MessageKind.THINKING,
        FOOTER_ID: MessageKind.FOOTER,
        FAILED_ID: MessageKind.FAILED,
        INTERRUPTED_ID: MessageKind.ANSWER,
    }
    for kind_id, kind in kinds.items():
        assert message_kind({"role": "assistant", "content": "plain words", "metadata": {"id": kind_id}}) is kind
    assert message_kind({"role": "assistant", "content": "⏳ Loading"}) is MessageKind.ANSWER
    assert (
        message_kind({"role": "assistant", "content": "x", "metadata": {"title": "Tool log"}}) is MessageKind.THINKING
    )


def test_thinking_and_status_messages_are_skipped() -> None:
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "pondering", "metadata": {"title": "Thinking"}},
        {"role": "assistant", "content": "a"},
    ]
    assert [m.content for m in history_to_messages(history)] == ["q", "a"]


def test_unanswered_question_is_replaced_by_the_new_one() -> None:
    history = [{"role": "user", "content": "stopped before any token"}]
    assert [m.content for m in build_messages("new", history, "")] == ["new"]


def test_fold_system_prompt_into_first_user_turn() -> None:
    folded = fold_system_prompt([SystemMessage("rules"), HumanMessage("q"), AIMessage("a"), HumanMessage("q2")])
    assert [type(m) for m in folded] == [HumanMessage, AIMessage, HumanMessage]
    assert folded[0].content == "rules\n\nq"
    assert fold_system_prompt([HumanMessage("q")])[0].content == "q"


roles = st.sampled_from(["user", "assistant"])
texts = st.text(min_size=1, max_size=20).filter(lambda t: t.strip())
contents = st.one_of(texts, texts.map(blocks))
history_items = st.lists(st.fixed_dictionaries({"role": roles, "content": contents}), max_size=12)


@given(history=history_items, message=texts, system=st.text(max_size=10))
def test_property_messages_alternate_and_end_with_the_question(
    history: list[dict[str, Any]], message: str, system: str
) -> None:
    messages = build_messages(message, history, system)
    body = messages[1:] if isinstance(messages[0], SystemMessage) else messages
    assert isinstance(body[-1], HumanMessage) and body[-1].content == message
    assert isinstance(body[0], HumanMessage)
    for before, after in itertools.pairwise(body):
        assert type(before) is not type(after), "roles must alternate"
    assert all(isinstance(m.content, str) for m in messages)


def image_file(tmp_path: Path, name: str, color: tuple[int, int, int]) -> str:
    from PIL import Image

    path = tmp_path / name
    Image.new("RGB", (4, 4), color).save(path)
    return str(path)


def image_urls(message: Any) -> list[str]:
    return [p["image_url"]["url"] for p in message.content if isinstance(p, dict) and p["type"] == "image_url"]


def test_images_become_image_url_parts_on_the_image_task(tmp_path: Path) -> None:
    red = image_file(tmp_path, "red.png", (255, 0, 0))
    messages = build_messages({"text": "What is it?", "files": [red]}, [], "Be brief.", IMAGE_TASK)
    question = messages[-1]
    assert question.content[-1] == {"type": "text", "text": "What is it?"}
    assert image_urls(question) == [to_data_url(red)]
    assert image_urls(question)[0].startswith("data:image/png;base64,")
    text_only = build_messages({"text": "hi", "files": []}, [], "", IMAGE_TASK)
    assert text_only[-1].content == "hi", "no images: plain text, which every template reads"


def test_a_text_task_refuses_a_new_image_but_reads_the_text_of_old_ones(tmp_path: Path) -> None:
    red = image_file(tmp_path, "red.png", (255, 0, 0))
    with pytest.raises(InputError, match="text-only"):
        build_messages({"text": "What is it?", "files": [red]}, [], "", "text-generation")
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": red}}, {"type": "text", "text": "look"}]},
        {"role": "assistant", "content": "a red square"},
    ]
    assert [m.content for m in build_messages("and?", history, "", "text-generation")] == [
        "look",
        "a red square",
        "and?",
    ]


def test_history_images_in_both_gradio_shapes_reach_the_model(tmp_path: Path) -> None:
    red = image_file(tmp_path, "red.png", (255, 0, 0))
    blue = image_file(tmp_path, "blue.png", (0, 0, 255))
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": red}}, {"type": "text", "text": "one"}]},
        {"role": "assistant", "content": "red"},
        {"role": "user", "content": [{"path": blue}, "two"]},  # the API's own history
        {"role": "assistant", "content": "blue"},
    ]
    messages = build_messages("compare", history, "", IMAGE_TASK)
    assert [image_urls(m) for m in messages if isinstance(m, HumanMessage)][:2] == [
        [to_data_url(red)],
        [to_data_url(blue)],
    ]


def test_only_the_latest_images_are_kept_and_unreadable_old_ones_are_skipped(tmp_path: Path) -> None:
    files = [image_file(tmp_path, f"{i}.png", (i * 40, 0, 0)) for i in range(MAX_IMAGES + 1)]
    history: list[dict[str, Any]] = []
    for i, path in enumerate(files):
        history += [{"role": "user", "content": [{"path": path}, f"q{i}"]}, {"role": "assistant", "content": f"a{i}"}]
    history[0]["content"].insert(0, {"path": str(tmp_path / "deleted.png")})
    new = image_file(tmp_path, "new.png", (0, 255, 0))
    messages = build_messages({"text": "last", "files": [new]}, history, "", IMAGE_TASK)
    sent = [url for m in messages if isinstance(m.content, list) for url in image_urls(m)]
    assert sent == [to_data_url(p) for p in files[-(MAX_IMAGES - 1) :]] + [to_data_url(new)]
    assert messages[0].content == "q0" and messages[1].content == "a0", "an old turn keeps its text"


def test_too_many_new_images_are_refused(tmp_path: Path) -> None:
    red = image_file(tmp_path, "red.png", (255, 0, 0))
    with pytest.raises(InputError, match="at most"):
        build_messages({"text": "x", "files": [red] * (MAX_IMAGES + 1)}, [], "", IMAGE_TASK)


def test_folding_the_system_prompt_keeps_images(tmp_path: Path) -> None:
    red = image_file(tmp_path, "red.png", (255, 0, 0))
    messages = build_messages({"text": "What?", "files": [red]}, [], "Be brief.", IMAGE_TASK)
    folded = fold_system_prompt(messages)
    assert len(folded) == 1
    assert folded[0].content[0] == {"type": "text", "text": "Be brief."}
    assert image_urls(folded[0]) == [to_data_url(red)] and folded[0].content[-1]["text"] == "What?"


def test_the_browser_shows_an_image_and_its_text_as_two_user_bubbles(tmp_path: Path) -> None:
    red = image_file(tmp_path, "red.png", (255, 0, 0))
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": red}}]},
        {"role": "user", "content": [{"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
    ]
    as_image = build_messages("more?", history, "", IMAGE_TASK)
    assert image_urls(as_image[0]) == [to_data_url(red)] and as_image[0].content[-1]["text"] == "What is it?"
    assert build_messages("more?", history, "", "text-generation")[0].content == "What is it?"


# Properties over every content shape Gradio 6 uses, the app's own messages included.

MARKS = ("⚠️", "⏳", "✂️", "⏱", ERROR_MARK, LOADING_MARK, NOTICE_MARK, SPEED_MARK, STOPPED_MARK)
"""The emoji marks of saved conversations from before typed replies, and the marks of now."""
plain = st.text(min_size=1, max_size=30).filter(lambda t: t.strip() and not any(mark in t for mark in MARKS))
text_block = plain.map(lambda t: {"type": "text", "text": t})
file_block = st.sampled_from(
    [{"type": "file", "file": {"path": "/tmp/a.png"}}, {"path": "/tmp/b.png", "mime_type": "image/png"}]
)
multimodal_box = plain.map(lambda t: {"text": t, "files": []})
gradio_content = st.one_of(
    plain,
    st.lists(text_block, min_size=1, max_size=3),
    st.lists(st.one_of(text_block, file_block, plain), min_size=1, max_size=4).filter(
        lambda parts: any(not isinstance(p, dict) or p.get("type") == "text" for p in parts)
    ),
    multimodal_box,
)

FOOTER = Footer("⏱ m · Local · cached", {"model": "m"})


def reply_views(text: str) -> Any:
    """A reply as `ChatService.respond` leaves it: plain, after a trim notice, with its thinking,
    cut or broken after a partial answer, a lone failure, a lone loading notice."""
    notice = Notice(trim_notice(2, 100))
    cut = Failed("Reply cut short", "cut: the turn took longer than 3 s", "The text above is what arrived.", cut=True)
    return st.sampled_from(
        [
            (Answer(text), FOOTER),
            (notice, Answer(text), FOOTER),
            (Thinking("⏳ pondering (a mark, so a leak shows)", done=True, duration_s=0.5), Answer(text), FOOTER),
            (Answer(text), cut, FOOTER),
            (Answer(text), AuthError("cut", "retry").failed()),
            (notice, AuthError("failed", "fix").failed()),
            (internal_error().failed(),),
            (Loading("m"),),
        ]
    )


text_message = st.one_of(plain, st.lists(text_block, min_size=1, max_size=3), multimodal_box)

history_part = st.one_of(
    st.fixed_dictionaries({"role": st.just("user"), "content": gradio_content}).map(lambda m: [m]),
    st.fixed_dictionaries({"role": st.just("assistant"), "content": gradio_content}).map(lambda m: [m]),
    plain.flatmap(reply_views).map(to_messages),
)
histories = st.lists(history_part, max_size=10).map(lambda parts: [m for part in parts for m in part])


@given(history=histories, message=text_message, system=st.text(max_size=10))
def test_property_any_gradio_history_becomes_alternating_text_without_notices(
    history: list[dict[str, Any]], message: Any, system: str
) -> None:
    messages = build_messages(message, history, system)
    body = messages[1:] if isinstance(messages[0], SystemMessage) else messages
    assert isinstance(body[0], HumanMessage) and isinstance(body[-1], HumanMessage)
    assert body[-1].content == content_text(message)
    for before, after in itertools.pairwise(body):
        assert type(before) is not type(after), "roles must alternate"
    for m in messages:
        assert isinstance(m.content, str), "text tasks send plain strings"
        assert not any(mark in m.content for mark in MARKS), "no notice (nor the thinking) ever reaches the model"


@given(texts=st.lists(st.text(max_size=10), max_size=5))
def test_property_blocks_read_as_their_joined_text(texts: list[str]) -> None:
    blocks_ = [{"type": "text", "text": t} for t in texts]
    expected = "\n".join(t for t in texts if t)
    assert content_text(blocks_) == expected
    assert content_text([*blocks_, {"type": "file", "file": {"path": "x"}}]) == expected, "files add no text"
    assert content_text({"text": expected, "files": ["/tmp/x.png"]}) == expected


@given(history=histories, limit=st.integers(0, 200))
def test_property_fit_history_keeps_the_longest_recent_suffix_that_fits(
    history: list[dict[str, Any]], limit: int
) -> None:
    kept, dropped = fit_history(history, limit)
    assert kept == history[dropped:] and dropped + len(kept) == len(history)

    def size(items: Sequence[Mapping[str, Any]]) -> int:
        return sum(len(sent_text(i)) for i in items)

    assert size(kept) <= limit
    if dropped:
        assert size(history[dropped - 1 :]) > limit, "nothing was dropped that would have fit"


def test_only_what_is_sent_counts_against_the_history_limit() -> None:
    long_thought = to_messages((Thinking("x" * 500, done=True), Answer("short"), FOOTER))
    history = [{"role": "user", "content": "q"}, *long_thought]
    assert fit_history(history, len("q") + len("short")) == (history, 0)
    assert fit_history(history, len("short"))[1] == 1, "the question goes first"


# Conversations saved before replies were typed: upgraded once where they come in.

LEGACY_INTERNAL = "⚠️ Internal error (reference 0a1b2c); the conversation is kept.\n\nThis is a bug in hfchat."
LEGACY = [
    {"role": "user", "content": "q1"},
    {"role": "assistant", "content": "a long think", "metadata": {"title": "Thinking", "status": "done"}},
    {"role": "assistant", "content": [{"type": "text", "text": "a1"}]},
    {"role": "assistant", "content": "⏱ m · Local · cached · stopped: stop", "metadata": {"id": "hfchat-speed"}},
    {"role": "user", "content": "q2"},
    {"role": "assistant", "content": "✂️ *The 2 oldest messages were not sent*\n\na2"},
    {"role": "assistant", "content": "⏱ m · Local · cached"},  # metadata lost: the text said what it was
    {"role": "user", "content": "q3"},
    {"role": "assistant", "content": "partial\n\n⚠️ **Server error.** gone\n\nSend again."},
    {"role": "user", "content": "q4"},
    {"role": "assistant", "content": [{"type": "text", "text": "⚠️ **Not authorized (401).** bad token"}]},
    {"role": "user", "content": "q5"},
    {"role": "assistant", "content": "✂️ *trimmed*\n\n⏳ Loading `m` (first use of this configuration)…"},
    {"role": "user", "content": "q6"},
    {"role": "assistant", "content": LEGACY_INTERNAL},
    {"role": "user", "content": "q7"},
    {"role": "assistant", "content": "⚠️ *Interrupted: the app stopped.*", "metadata": {"id": INTERRUPTED_ID}},
]


def test_a_legacy_conversation_is_upgraded_to_metadata_ids() -> None:
    upgraded = upgrade_legacy(LEGACY)
    kinds = [(m["role"], m["role"] == "user" or message_kind(m).value) for m in upgraded]
    assert [k for _, k in kinds] == [
        True, "thinking", "answer", "footer",
        True, "notice", "answer", "footer",
        True, "answer", "failed",
        True, "failed",
        True, "notice", "loading",
        True, "failed",
        True, "answer",
    ]  # fmt: skip
    assert upgraded[2] == LEGACY[2], "a plain answer is kept exactly as it was (edit and retry work on it)"
    assert [content_text(m["content"]) for m in upgraded[9:11]] == [
        "partial",
        "⚠️ **Server error.** gone\n\nSend again.",
    ]
    assert upgrade_legacy(upgraded) == upgraded, "upgrading twice changes nothing"


def test_a_legacy_conversation_sends_what_it_sent_before() -> None:
    """What the emoji parsing of old sent (the internal error, which it missed, aside)."""
    sent = [m.content for m in build_messages("next", upgrade_legacy(LEGACY), "")]
    assert sent == ["q1", "a1", "q2", "a2", "q3", "partial", "q7", "⚠️ *Interrupted: the app stopped.*", "next"]


@given(text=plain, file=file_block)
def test_property_a_file_in_a_new_text_only_message_is_refused(text: str, file: dict[str, Any]) -> None:
    from hfchat.errors import InputError

    with pytest.raises(InputError):
        build_messages([{"type": "text", "text": text}, file], [], "")
