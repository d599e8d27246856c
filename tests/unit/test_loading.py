"""The load ticker and progress (`hfchat.loading`), the loading notice's text, the stopped
footer and the status marks, as plain data: a FakeClock moves time, nothing sleeps."""

from __future__ import annotations

import threading

import pytest

from hfchat.chat import loading_progress
from hfchat.loading import WAITING_STAGE, LoadProgress, progress_of, ticking
from hfchat.messages import MessageKind, message_kind, upgrade_legacy
from hfchat.testing import FakeClock
from hfchat.ui.render import stopped_reply, to_messages
from hfchat.updates import (
    ERROR_MARK,
    FOOTER_ID,
    FOOTER_MARKS,
    LOADING_ID,
    LOADING_MARK,
    NOTICE_MARK,
    SPEED_MARK,
    STOPPED_MARK,
    Footer,
    Loading,
    stopped_footer,
)


def _fake_wait(clock: FakeClock, ticks: list[float]) -> object:
    """An Event.wait that moves the fake clock by the timeout instead of sleeping."""

    def wait(event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        clock.advance(timeout)
        ticks.append(clock.now)
        return False

    return wait


def test_the_ticker_shows_the_load_every_second_until_it_returns() -> None:
    clock, ticks, release = FakeClock(), [], threading.Event()
    progress = LoadProgress()

    def load() -> str:
        release.wait(10)
        return "model"

    views = ticking(
        load,
        lambda s: Loading("m", elapsed_s=s, stage=progress.stage, progress=progress.fraction).text,
        threading.Event(),
        clock=clock,
        wait=_fake_wait(clock, ticks),  # type: ignore[arg-type]
    )
    shown = [next(views), next(views)]
    progress.report("downloading model.safetensors", 50, 200)
    shown += [next(views), next(views)]
    release.set()
    with pytest.raises(StopIteration) as done:
        while True:
            shown.append(next(views))
    assert done.value.value == "model"
    head = "◔ Loading `m` (first use of this configuration)…"
    assert shown[:4] == [
        f"{head} 0 s",  # at 0.5 s
        f"{head} 1 s",  # at 1.0 s
        f"{head} 1 s · downloading model.safetensors 25%",  # at 1.5 s: the download moved
        f"{head} 2 s · downloading model.safetensors 25%",  # at 2.0 s
    ]
    assert len(set(shown)) == len(shown), "only changes are shown (every second at least)"
    assert ticks[1] - ticks[0] == 0.5


def test_the_ticker_raises_what_the_load_raised_and_ends_on_cancel() -> None:
    def broken() -> None:
        raise OSError("no such model")

    with pytest.raises(OSError, match="no such model"):
        list(ticking(broken, lambda s: s, threading.Event(), tick_s=0.01))

    clock, ticks, cancel = FakeClock(), [], threading.Event()
    never = threading.Event()
    views = ticking(lambda: never.wait(5), lambda s: s, cancel, clock=clock, wait=_fake_wait(clock, ticks))  # type: ignore[arg-type]
    assert next(views) == 0.5
    cancel.set()
    with pytest.raises(StopIteration) as done:
        next(views)
    assert done.value.value is None, "a cancelled wait returns no turn; the load goes on"
    never.set()


def test_tracking_reports_a_transformers_bar_and_a_download_bar_for_its_key() -> None:
    from transformers.utils import logging as hf_logging

    from hfchat.loading import tracking

    lock = threading.Lock()
    before = hf_logging.set_tqdm_hook(None)
    hf_logging.set_tqdm_hook(before)
    with tracking("spec", lock) as progress:
        assert progress_of("spec") is progress and lock.locked()
        for _ in hf_logging.tqdm(range(4), desc="Loading weights", mininterval=0):
            pass
        assert progress.stage == "loading weights" and progress.fraction == 1.0
        bar = progress.download_bar()(total=1000, desc="model.safetensors", mininterval=0)
        bar.update(250)
        assert (progress.stage, progress.fraction) == ("downloading model.safetensors", 0.25)
        bar.close()
    assert progress_of("spec") is None and not lock.locked()
    assert hf_logging.set_tqdm_hook(before) is before, "the previous hook is back"


def test_a_turn_waiting_for_another_load_says_so() -> None:
    lock, entered = threading.Lock(), threading.Event()
    from hfchat.loading import tracking

    def second() -> None:
        with tracking("b", lock):
            entered.set()

    with lock:
        thread = threading.Thread(target=second)
        thread.start()
        waiting = None
        for _ in range(200):
            waiting = progress_of("b")
            if waiting is not None and waiting.stage == WAITING_STAGE:
                break
            threading.Event().wait(0.01)
        assert waiting is not None and waiting.stage == WAITING_STAGE
        assert not entered.is_set()
    thread.join(5)
    assert entered.is_set()


def test_loading_progress_fills_in_the_notice() -> None:
    base = Loading("SmolLM2", "4-bit nf4")
    assert loading_progress(base, 3.4, None).text.endswith("… 3 s")
    progress = LoadProgress()
    progress.report("loading weights", 30, 120)
    shown = loading_progress(base, 12.6, progress)
    assert (shown.stage, shown.progress, shown.elapsed_s) == ("loading weights", 0.25, 12.6)
    assert (
        shown.text == "◔ Loading `SmolLM2` in 4-bit nf4 (first use of this configuration)… 12 s · loading weights 25%"
    )


def test_status_marks_are_text_symbols_of_standard_fonts() -> None:
    # No emoji presentation: no variation selector 16, and none of the emoji-default code points
    # that rendered as boxes in a browser without an emoji font (⏳ ⏱ and the like).
    for mark in (ERROR_MARK, LOADING_MARK, NOTICE_MARK, SPEED_MARK, STOPPED_MARK):
        assert "\ufe0f" not in mark and len(mark) == 1, repr(mark)
        assert mark in "\u26a0\u25d4\u2702\u25f7\u25a0", f"{mark!r} is not one of DejaVu Sans' symbols"
    assert set(FOOTER_MARKS) == {SPEED_MARK, STOPPED_MARK}


def test_a_stopped_reply_keeps_its_text_under_a_stopped_footer() -> None:
    question = {"role": "user", "content": "Tell me a story"}
    partial = {"role": "assistant", "content": "Once upon a"}
    stopped = stopped_reply([question, partial])
    assert stopped[:2] == [question, partial]
    figures = {"finish_reason": "stopped by user"}
    assert stopped[2] == {
        "role": "assistant",
        "content": "■ stopped by you",
        "metadata": {"id": FOOTER_ID},
        "figures": figures,
    }
    assert message_kind(stopped[2]) is MessageKind.FOOTER
    assert stopped_footer() == Footer("■ stopped by you", {"finish_reason": "stopped by user"}, stopped=True)
    # stopped while loading: the loading notice goes, the footer says it was stopped
    loading = to_messages((Loading("m", elapsed_s=3),))[0]
    assert loading["metadata"] == {"id": LOADING_ID}
    assert stopped_reply([question, loading]) == [question, stopped[2]]
    # a reply that had ended (its footer shown) is left alone
    done = [question, partial, {"role": "assistant", "content": "◷ m", "metadata": {"id": FOOTER_ID}}]
    assert stopped_reply(done) == done


def test_old_saved_messages_with_emoji_marks_still_load() -> None:
    old = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello\n\n⚠️ **Connection failed.** The server went away."},
        {"role": "assistant", "content": "⏱ tiny · Local · cached"},
        {"role": "assistant", "content": "⏳ Loading `tiny` (first use of this configuration)…"},
    ]
    kinds = [message_kind(m) for m in upgrade_legacy(old) if m["role"] == "assistant"]
    assert kinds == [MessageKind.ANSWER, MessageKind.FAILED, MessageKind.FOOTER, MessageKind.LOADING]
