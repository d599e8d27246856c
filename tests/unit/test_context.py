"""The context meter's pure parts: trimming by tokens at the exact edges (a counter whose
counts are known), reading context lengths out of configs and /v1/models entries, and the
meter's wording."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from hfchat.context import (
    ContextUse,
    ContextWindow,
    EstimateCounter,
    fit_to_window,
    history_turns,
    lowered_notice,
    reply_room,
    token_trim_notice,
    window_of_config,
    window_of_models,
    window_of_models_entry,
    window_of_tokenizer,
)
from hfchat.errors import InputError


class WordCounter:
    """One token per word, plus one per message: counts the test can add up by hand."""

    exact = True

    def text(self, text: str) -> int:
        return len(text.split())

    def messages(self, messages: Sequence[BaseMessage]) -> int:
        self.calls = getattr(self, "calls", 0) + 1
        return sum(self.text(str(m.content)) + 1 for m in messages)


SYSTEM = SystemMessage("be brief")  # 3
OLD_Q, OLD_A = HumanMessage("one two three"), AIMessage("four five")  # 4, 3
MID_Q = HumanMessage("six")  # 2
MID_CALL = AIMessage("", tool_calls=[{"name": "calc", "args": {}, "id": "c1", "type": "tool_call"}])  # 1
MID_TOOL = ToolMessage("7", tool_call_id="c1", name="calc")  # 2
MID_A = AIMessage("eight nine")  # 3
NOW = HumanMessage("what now")  # 3
TURN = [SYSTEM, OLD_Q, OLD_A, MID_Q, MID_CALL, MID_TOOL, MID_A, NOW]
TOTAL = 3 + 4 + 3 + 2 + 1 + 2 + 3 + 3  # 21


def test_the_fake_counter_adds_up_as_the_tests_assume() -> None:
    assert WordCounter().messages(TURN) == TOTAL


def test_exactly_full_fits_and_keeps_everything() -> None:
    fitted = fit_to_window(TURN, ContextWindow(TOTAL + 10), 10, WordCounter())
    assert fitted.messages == TURN
    assert (fitted.dropped, fitted.prompt_tokens, fitted.reserved, fitted.used) == (0, TOTAL, 10, TOTAL + 10)


def test_one_token_over_drops_the_oldest_whole_turn() -> None:
    fitted = fit_to_window(TURN, ContextWindow(TOTAL + 10 - 1), 10, WordCounter())
    assert fitted.messages == [SYSTEM, MID_Q, MID_CALL, MID_TOOL, MID_A, NOW]
    assert fitted.dropped == 2
    assert fitted.prompt_tokens == TOTAL - 7


def test_a_turn_with_tool_calls_goes_whole_and_roles_still_alternate() -> None:
    # room for the system prompt and the current turn only, plus one token: the middle turn
    # (question, call, result, answer: 8 tokens) can't stay, and none of it is kept
    fitted = fit_to_window(TURN, ContextWindow(3 + 3 + 10 + 7), 10, WordCounter())
    assert fitted.messages == [SYSTEM, NOW]
    assert fitted.dropped == 6
    kept = fit_to_window(TURN, ContextWindow(3 + 3 + 10 + 8), 10, WordCounter())
    assert kept.messages == [SYSTEM, MID_Q, MID_CALL, MID_TOOL, MID_A, NOW]
    assert kept.prompt_tokens == 3 + 8 + 3


def test_history_turns_start_at_each_question() -> None:
    assert history_turns(TURN[1:-1]) == [[OLD_Q, OLD_A], [MID_Q, MID_CALL, MID_TOOL, MID_A]]
    assert history_turns([OLD_A, OLD_Q]) == [[OLD_A], [OLD_Q]]  # a leading reply: a turn of its own


def test_system_prompt_and_current_turn_exactly_full_fit_one_over_is_refused() -> None:
    fitted = fit_to_window(TURN, ContextWindow(3 + 3 + 10), 10, WordCounter())
    assert fitted.messages == [SYSTEM, NOW] and fitted.used == 16
    with pytest.raises(InputError) as caught:
        fit_to_window(TURN, ContextWindow(3 + 3 + 10 - 1), 10, WordCounter())
    error = caught.value
    assert "6 tokens" in error.message and "10 (max_new_tokens)" in error.message and "15 tokens" in error.message
    assert "lower max_new_tokens" in error.hint and "bigger context" in error.hint and "Shorten" in error.hint


def test_without_a_system_prompt_the_first_question_may_go() -> None:
    fitted = fit_to_window(TURN[1:], ContextWindow(TOTAL - 3 + 5 - 1), 5, WordCounter())
    assert fitted.messages[0] == MID_Q and fitted.messages[-1] == NOW


def test_an_unknown_window_keeps_everything() -> None:
    fitted = fit_to_window(TURN, ContextWindow(None), 10_000, WordCounter())
    assert fitted.messages == TURN and fitted.dropped == 0


def test_many_turns_are_counted_a_few_times_not_once_per_turn() -> None:
    many: list[BaseMessage] = [SYSTEM]
    for i in range(64):
        many += [HumanMessage(f"question {i}"), AIMessage(f"answer {i}")]
    many.append(NOW)
    counter = WordCounter()
    fitted = fit_to_window(many, ContextWindow(3 + 3 + 10 * 6 + 1), 1, counter)
    assert fitted.dropped == 2 * (64 - 10)  # ten turns of six tokens each stay
    assert counter.calls <= 10  # a bisection: log2(64) + the first and the last


def test_the_trim_notice_names_the_count_and_the_window() -> None:
    assert token_trim_notice(0, ContextWindow(8192)) == ""
    notice = token_trim_notice(3, ContextWindow(8192))
    assert "3 oldest messages" in notice and "8,192 tokens" in notice


@pytest.mark.parametrize(
    ("config", "tokens"),
    [
        ({"max_position_embeddings": 8192}, 8192),
        ({"n_positions": 1024}, 1024),
        ({"max_seq_len": 2048}, 2048),
        ({"text_config": {"max_position_embeddings": 32768}}, 32768),
        ({"max_position_embeddings": 1e30}, None),
        ({"hidden_size": 64}, None),
    ],
)
def test_window_of_config(config: dict[str, object], tokens: int | None) -> None:
    assert window_of_config(config) == tokens


@pytest.mark.parametrize(
    ("entry", "tokens"),
    [
        ({"id": "m", "object": "model", "max_model_len": 4096}, 4096),  # vLLM, SGLang
        ({"id": "m", "meta": {"n_ctx_train": 8192, "n_vocab": 49152}}, 8192),  # llama.cpp
        ({"id": "m", "meta": {"n_ctx": 2048, "n_ctx_train": 8192}}, 2048),
        ({"id": "m", "context_length": 131072}, 131072),  # OpenRouter, Together
        (
            {"id": "m", "object": "model", "owned_by": "local", "status": {"value": "loaded"}},
            None,
        ),  # transformers serve
    ],
)
def test_window_of_models_entry(entry: dict[str, object], tokens: int | None) -> None:
    assert window_of_models_entry(entry) == tokens


def test_window_of_models_picks_the_served_entry() -> None:
    models = [{"id": "a", "max_model_len": 1000}, {"id": "b", "max_model_len": 2000}]
    assert window_of_models(models, "b") == 2000
    assert window_of_models(models, None) is None  # several, none named
    assert window_of_models(models[:1], None) == 1000


def test_a_placeholder_model_max_length_is_not_a_window() -> None:
    class Tokenizer:
        model_max_length = int(1e30)

    assert window_of_tokenizer(Tokenizer()) is None
    Tokenizer.model_max_length = 2048
    assert window_of_tokenizer(Tokenizer()) == 2048


def test_the_meter_reads_as_asked() -> None:
    exact = ContextUse(1100, 134, ContextWindow(8192, "config.json"), exact=True)
    assert exact.label() == "1,234 / 8,192 tokens" and exact.fits and exact.warning() == ""
    assert "134 reserved for the reply (max_new_tokens)" in exact.title() and "config.json" in exact.title()
    estimated = ContextUse(1100, 134, ContextWindow(8192, "config.json"), exact=False)
    assert estimated.label() == "≈1,234 / 8,192 tokens (estimated)"
    unknown = ContextUse(1100, 134, ContextWindow(), exact=True)
    assert unknown.label() == "1,234 tokens" and unknown.fits
    full = ContextUse(8192 - 134, 134, ContextWindow(8192), exact=True)
    over = ContextUse(8192 - 133, 134, ContextWindow(8192), exact=True)
    assert full.fits and not over.fits
    assert over.warning() == "won't fit: the oldest messages will be left out"
    hopeless = ContextUse(9000, 134, ContextWindow(8192), exact=True, minimal_fits=False)
    assert hopeless.warning() == "won't fit: the reply gets less than max_new_tokens"


def test_the_estimate_counts_markup_per_message() -> None:
    counter = EstimateCounter()
    assert not counter.exact
    one = counter.messages([HumanMessage("hello")])
    assert counter.messages([HumanMessage("hello"), AIMessage("hello")]) > one > counter.text("hello")


def test_the_reply_gets_the_room_the_message_leaves_and_only_a_full_prompt_is_refused() -> None:
    """System prompt + current message = 6 tokens: a reply asking for more than the rest of the
    window gets the rest (at the edge exactly), and only a window they fill alone refuses."""
    counter = WordCounter()
    assert reply_room(TURN, ContextWindow(100), 50, counter) == 50, "room enough: as asked"
    assert reply_room(TURN, ContextWindow(56), 50, counter) == 50, "exactly the room left"
    assert reply_room(TURN, ContextWindow(55), 50, counter) == 49, "one token short: one less"
    assert reply_room(TURN, ContextWindow(), 50, counter) == 50, "unknown window: as asked"
    with pytest.raises(InputError, match="over the model's context of 6 tokens"):
        reply_room(TURN, ContextWindow(6), 50, counter)
    assert reply_room(TURN, ContextWindow(7), 50, counter) == 1
    assert "may use 1 token, not 50 (max_new_tokens)" in lowered_notice(1, 50, ContextWindow(7))
    assert lowered_notice(50, 50, ContextWindow(7)) == ""
