"""History conversion: Gradio's formats in, alternating LangChain messages out."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from hfchat.errors import AuthError
from hfchat.messages import build_messages, content_text, fold_system_prompt, history_to_messages


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


def test_error_replies_and_their_questions_never_reach_the_model() -> None:
    history = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "broken"},
        {"role": "assistant", "content": AuthError("bad token", "fix it").markdown()},
    ]
    assert [m.content for m in build_messages("again", history, "")] == ["first", "answer", "again"]


def test_partial_reply_keeps_its_text_but_not_the_error_notice() -> None:
    cut = "partial words\n\n" + AuthError("stream cut", "retry").markdown()
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": cut}]
    assert [m.content for m in history_to_messages(history)] == ["q", "partial words"]


def test_a_loading_notice_left_by_stop_is_not_a_reply() -> None:
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "⏳ Loading `m`…"}]
    assert [m.content for m in build_messages("again", history, "")] == ["again"]


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
