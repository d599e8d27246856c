"""The reply model on plain data: thinking split out of the stream, figures, typed updates,
and their rendering as chat messages."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hfchat.backends.types import Delta, Usage, ends_inside_think
from hfchat.config import Backend, ChatSettings, ModelSpec
from hfchat.messages import build_messages, history_to_messages
from hfchat.reply import Reply, ReplySource, answer_text
from hfchat.testing import FakeClock
from hfchat.ui.render import to_messages
from hfchat.updates import (
    FAILED_ID,
    FOOTER_ID,
    THINKING_ID,
    THINKING_TITLE,
    Answer,
    Failed,
    Footer,
    Notice,
    Thinking,
)

SOURCE = ReplySource(Backend.PROVIDERS, "deepseek-ai/DeepSeek-R1-0528", "auto", cached=True)


def fed(*texts: str, source: ReplySource = SOURCE) -> Reply:
    reply = Reply(source)
    for text in texts:
        reply.add(Delta(text=text))
    reply.finish()
    return reply


def test_think_tags_split_across_chunks_are_found() -> None:
    reply = fed("<thi", "nk>Let me ", "see.</th", "ink>\n\nThe answer", " is 4.")
    assert (reply.thinking, reply.answer.strip()) == ("Let me see.", "The answer is 4.")


def test_a_reply_that_starts_inside_an_open_think_block() -> None:
    """DeepSeek-R1's template prefills `<think>`: the output only closes it."""
    reply = fed("Hmm, two ", "and two.</", "think>Four.")
    assert (reply.thinking, reply.answer) == ("Hmm, two and two.", "Four.")


def test_text_that_only_looks_like_a_tag_stays_in_the_answer() -> None:
    reply = fed("a <b> and <thin", "g> x < y")
    assert reply.answer == "a <b> and <thing> x < y" and not reply.thinking


def test_an_unclosed_think_block_is_all_thinking() -> None:
    reply = fed("<think>still going <", "/thi")
    assert reply.thinking == "still going </thi" and reply.answer == ""


@given(st.lists(st.sampled_from(["<think>", "</think>", "<", "think", ">", "/", "a b", "\n"]), max_size=12), st.data())
def test_any_chunking_gives_the_same_split(pieces: list[str], data: st.DataObject) -> None:
    text = "".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    chunks = [text[a:b] for a, b in itertools.pairwise([0, *cuts, len(text)])]
    whole, split = fed(text), fed(*chunks)
    assert (split.thinking, split.answer) == (whole.thinking, whole.answer)
    assert len(whole.thinking) + len(whole.answer) <= len(text)


def test_reasoning_deltas_are_thinking_and_the_block_closes_when_the_answer_begins() -> None:
    clock = FakeClock()
    reply = Reply(SOURCE, clock=clock)
    reply.add(Delta(reasoning="Two plus "))
    clock.now += 1.5
    reply.add(Delta(reasoning="two."))
    pending = reply.view()
    assert pending == (Thinking("Two plus two.", done=False),)
    assert to_messages(pending) == [
        {
            "role": "assistant",
            "content": "Two plus two.",
            "metadata": {"id": THINKING_ID, "title": THINKING_TITLE, "status": "pending"},
        }
    ]
    clock.now += 0.5
    reply.add(Delta(text="\n\n"))  # whitespace is not yet the answer
    assert reply.view() == (Thinking("Two plus two.", done=False),)
    reply.add(Delta(text="Four."))
    clock.now += 3
    reply.add(Delta(finish_reason="stop", usage=Usage(7, 5, "server")))
    reply.finish()
    thinking, answer, footer = reply.view()
    assert thinking == Thinking("Two plus two.", done=True, duration_s=2.0)
    assert answer == Answer("Four.")
    assert isinstance(footer, Footer) and footer.text == reply.footer() and footer.figures == reply.figures()
    shown_thinking, shown_answer, shown_footer = to_messages(reply.view())
    assert shown_thinking["metadata"] == {"id": THINKING_ID, "title": THINKING_TITLE, "status": "done", "duration": 2.0}
    assert shown_answer == {"role": "assistant", "content": "Four."}
    figures = reply.figures()  # as data beside the text: what Continue reads
    assert shown_footer == {
        "role": "assistant",
        "content": reply.footer(),
        "metadata": {"id": FOOTER_ID},
        "figures": figures,
    }
    assert reply.meter.ttft_s == 0.0 and reply.meter.tokens_per_s == pytest.approx(4 / 5.0)


def test_footer_has_model_provider_speed_counts_and_finish_reason() -> None:
    clock = FakeClock()
    reply = Reply(SOURCE, clock=clock)
    clock.now += 0.42
    reply.add(Delta(text="Hi"))
    clock.now += 2.0
    reply.add(Delta(text=" there", finish_reason="length", usage=Usage(12, 201, "server")))
    reply.finish()
    assert reply.footer() == (
        "◷ 0.42 s to first token · 100.0 tok/s · 12 in / 201 out (server) · stopped: length · "
        "deepseek-ai/DeepSeek-R1-0528 · Inference Providers (auto) · cached"
    )
    assert reply.figures()["output_tokens"] == 201 and reply.figures()["counted_by"] == "server"


def test_without_usage_chunks_are_counted_and_marked_approximate() -> None:
    reply = fed("a", "b", "c", source=ReplySource(Backend.ENDPOINT, "served", cached=False, load_s=1.5))
    assert (reply.meter.output_tokens, reply.meter.counted_by) == (3, "chunks")
    assert "~3 out (chunks)" in reply.footer() and "loaded in 1.50 s" in reply.footer()
    assert "Custom endpoint" in reply.footer()


def test_hidden_footer_and_failed_reply() -> None:
    reply = fed("<think>hmm</think>Answer")
    assert [type(u) for u in reply.view(show_speed=False)] == [Thinking, Answer]
    broken = Reply(SOURCE)
    broken.add(Delta(text="<think>hmm</think>Partial <"))
    gone = Failed("Server error", "gone")
    broken.fail(gone)
    thinking, answer, failed = broken.view()
    assert isinstance(thinking, Thinking) and thinking.done
    assert answer == Answer("Partial <") and failed is gone, "what arrived, then the failure; no footer"
    assert to_messages((failed,)) == [
        {"role": "assistant", "content": "⚠ **Server error.** gone", "metadata": {"id": FAILED_ID}}
    ]
    assert (
        answer_text(broken.view()) == answer_text(to_messages(broken.view())) == "Partial <\n\n⚠ **Server error.** gone"
    )


def test_a_cut_reply_keeps_what_arrived_then_says_why_then_the_footer() -> None:
    reply = Reply(SOURCE)
    reply.add(Delta(text="Some words"))
    reply.cut("cut: the turn took longer than 3 s (--turn-timeout).")
    answer, cut, footer = reply.view()
    assert answer == Answer("Some words") and isinstance(footer, Footer) and "stopped: cut" in footer.text
    assert cut == Failed("Reply cut short", "cut: the turn took longer than 3 s (--turn-timeout).", cut.hint, cut=True)
    assert cut.text.startswith("⚠ **Reply cut short.** cut: the turn took longer") and "what arrived" in cut.text


def test_a_notice_comes_first_and_is_its_own_message() -> None:
    reply = Reply(SOURCE, notice="✂️ *two were not sent*")
    reply.add(Delta(text="Hi"))
    reply.finish()
    assert reply.view(show_speed=False) == (Notice("✂️ *two were not sent*"), Answer("Hi"))
    assert answer_text(to_messages(reply.view())) == "✂️ *two were not sent*\n\nHi", "the footer is left out"


def test_nothing_to_show_before_the_first_token() -> None:
    assert Reply(SOURCE).view() == ()


def test_thoughts_and_footers_are_never_sent_back() -> None:
    reply = fed("<think>secret plan</think>Visible answer")
    history = [{"role": "user", "content": "q"}, *to_messages(reply.view())]
    assert [m.content for m in build_messages("next", history, "")] == ["q", "Visible answer", "next"]
    assert all("secret" not in str(m.content) and "tok/s" not in str(m.content) for m in history_to_messages(history))


def test_answer_text_of_a_reply() -> None:
    assert answer_text(fed("<think>x</think>Hello").view()) == "Hello"
    assert answer_text(to_messages(fed("<think>x</think>Hello").view())) == "Hello"


def test_ends_inside_think() -> None:
    assert ends_inside_think("<|im_start|>assistant\n<think>\n")
    assert not ends_inside_think("<think>a</think>\n<|im_start|>assistant\n")


def test_source_names_the_model_as_the_user_knows_it() -> None:
    endpoint = ChatSettings(spec=ModelSpec(backend=Backend.ENDPOINT, endpoint_url="http://u:p@127.0.0.1:9/v1"))
    assert ReplySource.of(endpoint, None, True, 0).model == "http://127.0.0.1:9/v1", "no credentials"
    assert ReplySource.of(endpoint, "served-name", True, 0).model == "served-name"
