"""Which reply Continue applies to, what the model is sent, and the one footer of a joined reply."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from hfchat.backends.types import Delta, Usage
from hfchat.config import Backend
from hfchat.continuation import (
    CONTINUE_INSTRUCTION,
    Continuation,
    as_instruction,
    can_continue,
    continued_messages,
    continues_reply,
    cut_reply,
)
from hfchat.messages import Message
from hfchat.reply import Reply, ReplySource
from hfchat.testing import FakeClock
from hfchat.ui.render import stopped_reply
from hfchat.updates import FAILED_ID, FIGURES_DATA, FOOTER_ID, THINKING_ID

QUESTION: Message = {"role": "user", "content": "Tell me a story"}
THINKING: Message = {"role": "assistant", "content": "Hmm.", "metadata": {"id": THINKING_ID, "title": "Thinking"}}
ANSWER: Message = {"role": "assistant", "content": "Once upon a"}
SOURCE = ReplySource(Backend.LOCAL, "tiny")


def footer(**figures: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": "◷ …", "metadata": {"id": FOOTER_ID}, FIGURES_DATA: figures}


def test_only_a_reply_that_stopped_for_length_can_be_continued() -> None:
    earlier = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    window = [*earlier, QUESTION, THINKING, ANSWER, footer(finish_reason="length", output_tokens=8)]
    cut = cut_reply(window)
    assert cut is not None and cut.history == earlier and cut.question == QUESTION
    assert cut.continuation == Continuation("Once upon a", {"finish_reason": "length", "output_tokens": 8})
    assert cut.kept == [THINKING], "the thinking stays above the joined answer"
    assert not can_continue([*earlier, QUESTION, ANSWER, footer(finish_reason="stop")])
    assert not can_continue(stopped_reply([QUESTION, ANSWER])), "stopped by the user: Retry, not Continue"
    assert not can_continue(
        [QUESTION, ANSWER, {"role": "assistant", "content": "◷ old", "metadata": {"id": FOOTER_ID}}]
    )
    failed = {"role": "assistant", "content": "⚠ x", "metadata": {"id": FAILED_ID}}
    assert not can_continue([QUESTION, ANSWER, footer(finish_reason="length"), failed])
    assert not can_continue([QUESTION, THINKING, footer(finish_reason="length")]), "no answer to go on from"
    assert not can_continue([*window, {"role": "user", "content": "next"}]), "only the last reply"
    assert not can_continue([])


def test_the_cut_reply_shows_as_it_was_until_the_continuation_answers() -> None:
    cut = cut_reply([QUESTION, THINKING, ANSWER, footer(finish_reason="length")])
    assert cut is not None
    loading: list[Message] = [{"role": "assistant", "content": "◔ Loading", "metadata": {"id": "hfchat-loading"}}]
    assert cut.shown(loading) == [*cut.reply, *loading], "nothing of the first part disappears while it loads"
    joined: list[Message] = [{"role": "assistant", "content": "Once upon a time"}, footer(finish_reason="stop")]
    assert cut.shown(joined) == [THINKING, *joined], "one answer, one footer"


def test_messages_end_in_the_answer_so_far_or_ask_for_the_rest() -> None:
    asked = [HumanMessage("Tell me a story")]
    assert continued_messages(asked, None) == asked and not continues_reply(asked)
    going_on = continued_messages(asked, Continuation("Once upon a"))
    assert going_on == [*asked, AIMessage("Once upon a")] and continues_reply(going_on)
    called = AIMessage("", tool_calls=[{"name": "t", "args": {}, "id": "1", "type": "tool_call"}])
    assert not continues_reply([*asked, called]), "a tool loop's call is followed by its result, not continued"
    assert as_instruction(going_on) == [*going_on, HumanMessage(CONTINUE_INSTRUCTION)]


def test_a_resumed_reply_counts_both_parts_in_one_footer() -> None:
    clock = FakeClock()
    earlier = {"output_tokens": 8, "input_tokens": 20, "total_s": 2.0, "ttft_s": 0.5, "finish_reason": "length"}
    reply = Reply.resumed(SOURCE, "Once upon a", earlier, clock=clock)
    clock.now += 0.25
    reply.add(Delta(text=" time"))
    clock.now += 0.75
    reply.add(Delta(finish_reason="stop", usage=Usage(28, 5, "tokenizer")))
    reply.finish()
    figures = reply.figures()
    assert reply.answer == "Once upon a time"
    assert figures["output_tokens"] == 13 and figures["input_tokens"] == 20, "8 + 5 out; the question's prompt in"
    assert figures["total_s"] == 3.0 and figures["ttft_s"] == 0.5 and figures["finish_reason"] == "stop"
    assert "20 in / 13 out (tokenizer)" in reply.footer() and "stopped: stop" in reply.footer()
    counted = Reply.resumed(SOURCE, "Once", {"output_tokens": 8}, clock=clock)
    counted.add(Delta(text=" more"))
    counted.finish()
    assert counted.figures()["output_tokens"] == 9, "no usage: chunks, the first part's count included"
    assert Reply.resumed(SOURCE, "x", {"output_tokens": "lots", "total_s": -1}).figures()["output_tokens"] is None
