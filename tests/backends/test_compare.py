"""Compare mode's logic: two streams merged, each side on its own, against real tiny backends."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfchat.backends import local
from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.compare import SIDES, Side, SideView, compare_turn, copy_settings, describe, merge_latest
from hfchat.errors import ConfigError
from hfchat.messages import history_to_messages
from hfchat.reply import answer_text
from hfchat.testing.servers import RecordingProxy, TransformersServe, free_port
from hfchat.ui.render import to_messages
from hfchat.updates import FOOTER_ID, SPEED_MARK, Answer, Failed, Footer, Waiting
from tests.fixtures import sidebar_values


def ticks(name: str, n: int, every: float = 0.0, started: threading.Event | None = None) -> Iterator[str]:
    """A stream of n growing strings, one every `every` seconds."""
    if started is not None:
        started.set()
    text = ""
    for i in range(n):
        time.sleep(every)
        text += f"{name}{i} "
        yield text


def test_merge_yields_every_streams_latest_and_ends_with_both_final() -> None:
    updates = list(merge_latest([ticks("a", 3), ticks("b", 5)]))
    assert updates[-1] == ["a0 a1 a2 ", "b0 b1 b2 b3 b4 "]
    for earlier, later in itertools.pairwise(updates):
        for old, new in zip(earlier, later, strict=True):
            assert old is None or new.startswith(old), "each side only grows"


def test_a_slow_side_does_not_hold_back_the_fast_one() -> None:
    gate = threading.Event()

    def slow() -> Iterator[str]:
        gate.wait(30)
        yield "slow done"

    merged = merge_latest([slow(), ticks("fast", 3)], idle_s=10)
    seen: list[list[str | None]] = []
    for update in merged:
        seen.append(update)
        if update[1] == "fast0 fast1 fast2 ":
            break
    assert seen[-1][0] is None, "the fast side finished while the slow side had nothing yet"
    gate.set()
    rest = list(merged)
    assert rest[-1] == ["slow done", "fast0 fast1 fast2 "]


def test_a_side_that_raises_stops_only_itself_then_the_error_surfaces() -> None:
    def broken() -> Iterator[str]:
        yield "partial"
        raise RuntimeError("boom")

    merged = merge_latest([broken(), ticks("b", 4, every=0.01)])
    updates: list[list[str | None]] = []
    with pytest.raises(RuntimeError, match="boom"):
        for update in merged:
            updates.append(update)
    assert updates[-1] == ["partial", "b0 b1 b2 b3 "], "the other side ran to its end"


def test_closing_the_merge_closes_both_streams() -> None:
    closed: list[str] = []

    def endless(name: str) -> Iterator[str]:
        try:
            while True:
                time.sleep(0.01)
                yield name
        finally:
            closed.append(name)

    merged = merge_latest([endless("a"), endless("b")])
    next(merged)
    merged.close()
    deadline = time.monotonic() + 10
    while len(closed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(closed) == ["a", "b"]


def test_idle_repeats_let_a_waiting_caller_close() -> None:
    gate = threading.Event()

    def stuck() -> Iterator[str]:
        gate.wait(30)
        yield "late"

    merged = merge_latest([stuck(), stuck()], idle_s=0.05)
    started = time.monotonic()
    assert next(merged) == [None, None]
    assert time.monotonic() - started < 5
    merged.close()
    gate.set()


def test_describe_names_each_backend() -> None:
    assert describe({"backend": "local", "model": "org/m", "load_in_4bit": True}) == "Local: org/m (4-bit)"
    assert describe({"backend": "providers", "model": "org/m", "provider": "together"}) == (
        "Inference Providers: org/m via together"
    )
    shown = describe({"backend": "endpoint", "endpoint_url": "http://user:pw@127.0.0.1:8000/v1?key=x"})
    assert shown == "Custom endpoint: http://127.0.0.1:8000/v1", "no credentials in the title"
    assert describe({"backend": "nope"}) == "unknown backend"


def test_copy_settings_keeps_only_the_targets_names() -> None:
    side = {"backend": "local", "model": "org/m", "temperature": 0.3}
    assert copy_settings(side, ["backend", "model", "temperature", "hf_token"]) == side
    assert copy_settings(side, ["model"]) == {"model": "org/m"}


def values(**overrides: Any) -> dict[str, Any]:
    """A full set of sidebar values: greedy, short replies."""
    return sidebar_values(**overrides)


def final_text(view: SideView) -> str:
    """The side's reply so far: its answer (or error), its thinking and speed footer left out."""
    return answer_text(view.reply)


def window(view: SideView) -> list[dict[str, Any]]:
    """The side's chat window, as the Compare tab renders it."""
    return [*view.asked, *to_messages(view.reply)]


def test_local_and_endpoint_side_by_side_share_the_cache(
    tiny_models: dict[str, Path], proxy: RecordingProxy, serve: TransformersServe
) -> None:
    service = ChatService(cache=ModelCache(4), timeout=30)
    a = Side(history=[], values=values(model=str(tiny_models["chat"])))
    b = Side(history=[], values=values(backend="endpoint", endpoint_url=proxy.url, max_new_tokens=6, seed=3))
    updates = list(compare_turn(service, "Hello!", [a, b], None))
    assert updates[0] == [SideView([{"role": "user", "content": "Hello!"}])] * 2, "the prompt shows on both sides first"
    final_a, final_b = updates[-1]
    for view in (final_a, final_b):
        assert view.asked == [{"role": "user", "content": "Hello!"}]
        assert [type(u) for u in view.reply] == [Answer, Footer] and final_text(view).strip()
        shown = window(view)[-1]
        assert shown["metadata"] == {"id": FOOTER_ID} and shown["content"].startswith(SPEED_MARK)
    footers = [view.reply[-1] for view in (final_a, final_b)]
    assert "Local" in footers[0].text and "Custom endpoint" in footers[1].text, "each its own figures"
    assert len(updates) >= 4, "both replies streamed"
    body = next(r.json for r in proxy.requests if r.path.endswith("/chat/completions"))
    assert body["max_tokens"] == 6 and body["seed"] == 3, "B's own settings reached B"
    # Each side continues its own conversation, and the model built for A serves the main chat too.
    sides = [Side(window(final_a), a.values), Side(window(final_b), b.values)]
    follow = list(compare_turn(service, "And?", sides, None))[-1]
    assert history_to_messages(window(follow[0]))[1].content == final_text(final_a).strip()
    assert history_to_messages(window(follow[1]))[1].content == final_text(final_b).strip()
    builds = service.cache.stats.builds
    reply = list(service.respond("Hi", [], a.values, None))[-1]
    assert reply and service.cache.stats.builds == builds, "the main chat reuses the model built for A"


def test_a_failing_side_shows_its_error_and_the_other_answers(tiny_models: dict[str, Path]) -> None:
    service = ChatService(cache=ModelCache(2), timeout=5)
    good = Side(history=[], values=values(model=str(tiny_models["chat"])))
    refused = Side(history=[], values=values(backend="endpoint", endpoint_url=f"http://127.0.0.1:{free_port()}"))
    final = list(compare_turn(service, "Hello!", [good, refused], None))[-1]
    assert not any(isinstance(u, Failed) for u in final[0].reply)
    assert isinstance(final[1].reply[-1], Failed) and "refused the connection" in final_text(final[1])


def test_a_side_with_a_bad_setting_refuses_the_turn_naming_the_side_before_anything_is_sent(
    tiny_models: dict[str, Path],
) -> None:
    """A refusal (the UI shows it as one toast): nothing is sent, neither side's window changes."""
    service = ChatService(cache=ModelCache(2))
    good = Side(history=[], values=values(model=str(tiny_models["chat"])))
    bad = Side(history=[], values=values(model="not a repo/../x"))
    with pytest.raises(ConfigError, match=r"^B's settings: model:") as refused:
        compare_turn(service, "Hello!", [good, bad], None)
    assert "B's settings" in refused.value.hint and refused.value.field == "model"
    with pytest.raises(ConfigError, match=r"^A's settings: max_new_tokens:"):
        compare_turn(service, "Hello!", [Side([], values(max_new_tokens=99999)), good], None)
    assert service.cache.stats.builds == 0, "nothing was loaded for a refused turn"


def test_a_blank_prompt_is_refused() -> None:
    side = Side(history=[{"role": "user", "content": "Hi"}], values=values())
    with pytest.raises(ConfigError, match="prompt is empty"):
        compare_turn(ChatService(), "   ", [side, side], None)


def test_a_side_waiting_for_the_other_says_so_and_its_time_to_first_token_leaves_the_wait_out(
    tiny_models: dict[str, Path],
) -> None:
    """Two local sides take turns on the one CPU (hfchat.fairqueue): the one that waits says
    "waiting for A…" (or B), and its footer's time to first token counts from when its own
    generation began, the wait shown apart ("waited 4.2 s")."""
    service = ChatService(cache=ModelCache(2))
    model = str(tiny_models["chat"])
    long = values(
        model=model, do_sample=False, max_new_tokens=1200
    )  # both: either may get the device first (400 ran 0.6 s in CI)
    list(service.respond("Hi", [], values(model=model, max_new_tokens=2), None))  # loaded: no side's time is a load
    first_text: dict[int, float] = {}
    waits: dict[int, list[str]] = {0: [], 1: []}
    for update in compare_turn(service, "Tell me everything", [Side([], long), Side([], long)], None):
        for index, view in enumerate(update):
            if view.reply and isinstance(view.reply[-1], Waiting):
                waits[index].append(window(view)[-1]["content"])
            if any(isinstance(u, Answer) for u in view.reply):
                first_text.setdefault(index, time.monotonic())
    ahead, behind = sorted(first_text, key=first_text.__getitem__)
    figures = [view.reply[-1].figures for view in update]  # both end with their Footer
    ran_s = figures[ahead]["total_s"]
    assert ran_s > 1, f"the side ahead ran {ran_s:.1f} s: long enough to tell a wait from a first token"
    assert figures[behind]["ttft_s"] < ran_s / 2, (
        f"the waiting side's time to first token ({figures[behind]['ttft_s']:.2f} s) includes its wait "
        f"for the other side ({ran_s:.2f} s)"
    )
    waited_s = figures[behind]["waited_s"]
    assert waited_s == pytest.approx(ran_s, abs=max(1.5, ran_s / 4)), "the wait is what the other side ran"
    assert figures[ahead]["waited_s"] is None, "the side ahead never waited"
    footer = update[behind].reply[-1].text
    assert f"waited {figures[behind]['waited_s']:.1f} s" in footer, footer
    named = SIDES[ahead]
    assert waits[behind] and f"waiting for {named}…" in waits[behind][0], waits
    assert not waits[ahead], "the side ahead never showed a wait"
    if waited_s >= 1.5:  # it says so once a second, with the seconds from 1 s on
        assert len(set(waits[behind])) >= 2, "the wait's seconds count up while it lasts"


def test_stop_ends_the_generating_side_and_the_queued_one(tiny_models: dict[str, Path]) -> None:
    """Two local models on one CPU take turns (hfchat.fairqueue): Stop must end A's
    generation and B's place in the queue, so B never starts after Stop."""

    def generating() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == local.GENERATE_THREAD_NAME]

    service = ChatService(cache=ModelCache(2))
    sides = [
        Side(history=[], values=values(model=str(tiny_models[name]), max_new_tokens=5000)) for name in ("chat", "plain")
    ]
    turn = compare_turn(service, "Tell me everything", sides, None)
    deadline = time.monotonic() + 120
    for update in turn:
        streaming = [bool(v.reply) and isinstance(v.reply[-1], Answer) and len(v.reply[-1].text) > 10 for v in update]
        if any(streaming):
            break
        assert time.monotonic() < deadline, "one side should be streaming by now"
    assert streaming.count(True) == 1, "the other side waits for the device"
    assert len(generating()) == 2, "one generates, the other waits for its turn"
    queue = service.queues.for_device("cpu")
    turn.close()
    deadline = time.monotonic() + 30
    while (generating() or queue.holding or queue.waiting) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not generating(), "Stop must end both generate threads"
    assert (queue.holding, queue.waiting) == (0, 0), "nothing holds or waits for the device after Stop"
