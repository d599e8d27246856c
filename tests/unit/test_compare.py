"""Compare mode's gradio-free parts: side titles over the settings schema, who a waiting side
waits for, the checks that refuse a turn, and a waited-for turn's figures."""

from __future__ import annotations

from typing import Any

import pytest

from hfchat.backends.types import Delta
from hfchat.compare import (
    NAMED_BY_VALUE,
    SAME_SETTINGS,
    SIDES,
    Side,
    check_turn,
    shown_value,
    side_titles,
    waiting_for_sides,
)
from hfchat.config import Backend
from hfchat.errors import ConfigError
from hfchat.fairqueue import FairQueue
from hfchat.reply import Reply, ReplySource
from hfchat.settings import SETTINGS, TURN, Setting, Widget, applies
from hfchat.testing import FakeClock
from hfchat.updates import Answer, Failed, Footer, Waiting
from tests.fixtures import sidebar_values


def two_values(setting: Setting) -> tuple[Any, Any]:
    """Two different valid values of a setting, from its declaration alone."""
    widget = setting.control.widget
    if widget is Widget.CHECKBOX:
        return True, False
    if widget is Widget.SLIDER:
        low, high = setting.range
        return low, high
    if widget is Widget.NUMBER:
        return 1, 2
    if widget in (Widget.RADIO, Widget.DROPDOWN):
        choices = [c.value if isinstance(c, Backend) else c for c in (setting.choices or tuple(Backend))]
        return choices[0], choices[1]
    return "first text", "second text"


def backend_for(name: str) -> str:
    """A backend the setting reaches (its control shows there)."""
    return next(b.value for b in (Backend.LOCAL, *Backend) if applies(name, b) or name == "backend")


def switched_on(setting: Setting) -> dict[str, Any]:
    """The switches that make a setting take effect: sampling for the sampling settings,
    4-bit for its sub-options (`Control.sampling`, `Control.shown_when`)."""
    on = {setting.control.shown_when: True} if setting.control.shown_when else {}
    return on | ({"do_sample": True} if setting.control.sampling else {})


@pytest.mark.parametrize("name", [n for n in TURN if n != "backend"])
def test_each_turn_setting_that_differs_is_named_in_both_titles_by_its_label_and_value(name: str) -> None:
    setting = SETTINGS[name]
    first, second = two_values(setting)
    base = {"backend": backend_for(name), **switched_on(setting)}
    a, b = side_titles([sidebar_values(**base, **{name: v}) for v in (first, second)])
    assert a.startswith("A · ") and b.startswith("B · ") and a[1:] != b[1:], (a, b)
    for title, value in ((a, first), (b, second)):
        named = shown_value(name, value)
        expected = named if name in NAMED_BY_VALUE else f"{setting.control.label} {named}"
        assert title.endswith(expected), (title, expected)


def test_the_issues_example_temperature() -> None:
    label = SETTINGS["temperature"].control.label
    titles = side_titles([sidebar_values(do_sample=True, temperature=t) for t in (0.2, 1.5)])
    assert titles == [f"A · {label} 0.2", f"B · {label} 1.5"]


def test_different_models_are_named_by_their_short_name_and_backends_by_their_label() -> None:
    titles = side_titles([sidebar_values(model=m) for m in ("/models/SmolLM2-135M-Instruct", "org/Qwen3-0.6B")])
    assert titles == ["A · SmolLM2-135M-Instruct", "B · Qwen3-0.6B"]
    remote = sidebar_values(backend="endpoint", endpoint_url="http://user:secret@127.0.0.1:8000/v1?key=k")
    a, b = side_titles([sidebar_values(), remote])
    assert a.startswith(f"A · {Backend.LOCAL.label}") and b.startswith(f"B · {Backend.ENDPOINT.label}"), (a, b)
    assert "secret" not in b and "key=" not in b, "no credentials in a title"


def test_identical_sides_say_same_settings() -> None:
    assert side_titles([sidebar_values(), sidebar_values()]) == [f"A · {SAME_SETTINGS}", f"B · {SAME_SETTINGS}"]


def test_values_are_compared_as_the_schema_reads_them() -> None:
    """A slider's 512.0 is 512; -1 is the seed's "random" (None); a bad value is shown as sent."""
    same = side_titles([sidebar_values(max_new_tokens=512, seed=None), sidebar_values(max_new_tokens=512.0, seed=-1)])
    assert same == [f"A · {SAME_SETTINGS}", f"B · {SAME_SETTINGS}"]
    a, b = side_titles([sidebar_values(max_new_tokens=99999), sidebar_values(max_new_tokens=8)])
    assert a.endswith(" 99999") and b.endswith(" 8"), "a title never refuses: it shows the bad value"


def test_several_differences_name_the_first_two_in_the_schemas_order_then_count_the_rest() -> None:
    changed = {"temperature": 0.2, "top_p": 0.5, "seed": 3, "system_prompt": "Be brief."}
    a, b = side_titles([sidebar_values(do_sample=True, **changed), sidebar_values(do_sample=True)])
    names = [n for n in SETTINGS if n in changed]  # the schema's order
    first, second = (SETTINGS[n].control.label for n in names[:2])
    assert a.startswith(f"A · {first} ") and f" · {second} " in a and a.endswith(" +2"), a
    assert b.startswith(f"B · {first} ") and b.endswith(" +2"), b


def test_a_setting_hidden_for_the_backend_never_makes_a_difference() -> None:
    """The provider reaches Inference Providers only: two local sides that differ there are the same."""
    assert not applies("provider", Backend.LOCAL)
    titles = side_titles([sidebar_values(provider="auto"), sidebar_values(provider="together")])
    assert titles == [f"A · {SAME_SETTINGS}", f"B · {SAME_SETTINGS}"]


@pytest.mark.parametrize("name", [n for n in TURN if switched_on(SETTINGS[n])])
def test_a_setting_whose_switch_is_off_on_both_sides_makes_no_difference(name: str) -> None:
    """Temperature while neither side samples, or the 4-bit type while neither loads in 4-bit, does nothing."""
    first, second = two_values(SETTINGS[name])
    off = {switch: False for switch in switched_on(SETTINGS[name])}
    titles = side_titles([sidebar_values(**off, **{name: v}) for v in (first, second)])
    assert titles == [f"A · {SAME_SETTINGS}", f"B · {SAME_SETTINGS}"]
    on = switched_on(SETTINGS[name])
    one_on = side_titles([sidebar_values(**on, **{name: first}), sidebar_values(**off, **{name: second})])
    assert all(SETTINGS[name].control.label in t for t in one_on), "it takes effect on one side: both name it"


def test_a_long_text_is_cut_and_quoted() -> None:
    a, _ = side_titles([sidebar_values(system_prompt="You are a pirate who speaks only in rhymes"), sidebar_values()])
    assert a.endswith("…'") and len(a) < 60, a


# ---------------------------------------------------------------------------------- waiting


def test_a_waiting_side_names_the_local_side_still_running_ahead_of_it() -> None:
    waiting = (Waiting(3.0),)
    running = (Answer("Once upon"),)
    done = (Answer("Done."), Footer("⏱"))
    assert waiting_for_sides([running, waiting], [True, True])[1] == (Waiting(3.0, behind="A"),)
    assert waiting_for_sides([(), waiting], [True, True])[1][-1].behind == "A", "A holds the device before its text"
    assert waiting_for_sides([waiting, running], [True, True])[0][-1].behind == "B"
    assert waiting_for_sides([running, waiting], [False, True])[1] == waiting, "a remote side holds no device"
    assert waiting_for_sides([done, waiting], [True, True])[1] == waiting, "a side that is done holds nothing"
    assert waiting_for_sides([(Failed("x", "y"),), waiting], [True, True])[1] == waiting
    assert "waiting for A…" in Waiting(0.2, "A").text and "3 s" in Waiting(3.4, "A").text
    assert "another reply" in Waiting(0.2).text, "the main chat's wait names no side"


def test_a_ticket_knows_how_long_it_waited_for_its_turn() -> None:
    queue = FairQueue(1)
    first, second = queue.enqueue(), queue.enqueue()
    assert first.waited_s is not None and first.waited_s < 0.5, "granted at once"
    assert second.waited_s is None and second.state == "waiting"
    second.queued_at -= 2.0  # as if it had queued 2 s ago
    first.release()
    assert second.waited_s is not None and second.waited_s >= 2.0


def test_a_reply_that_waited_times_its_first_token_from_when_its_turn_came() -> None:
    clock = FakeClock()
    reply = Reply(ReplySource(Backend.LOCAL, "m"), clock=clock)
    clock.advance(5.0)  # waiting for the device
    reply.add(Delta(waited_s=5.0))
    clock.advance(0.3)
    reply.add(Delta(text="Hi"))
    reply.finish()
    assert reply.meter.ttft_s == pytest.approx(0.3)
    figures = reply.figures()
    assert figures["waited_s"] == 5.0 and figures["ttft_s"] == pytest.approx(0.3)
    assert "0.30 s to first token · waited 5.0 s" in reply.footer()
    plain = Reply(ReplySource(Backend.LOCAL, "m"), clock=clock)
    plain.add(Delta(text="Hi"))
    plain.finish()
    assert plain.figures()["waited_s"] is None and "waited" not in plain.footer()


# ----------------------------------------------------------------------------------- refusals


def test_a_blank_prompt_or_a_sides_bad_setting_is_refused_naming_what_to_fix() -> None:
    good = Side([], sidebar_values(model="org/m"))
    with pytest.raises(ConfigError, match="prompt is empty") as blank:
        check_turn({"text": "  ", "files": []}, [good, good])
    assert blank.value.field == "message"
    for index, side in enumerate(SIDES):
        sides = [good, good]
        sides[index] = Side([], sidebar_values(model="org/m", temperature=7))
        with pytest.raises(ConfigError, match=rf"^{side}'s settings: temperature:") as bad:
            check_turn("Hi", sides)
        assert bad.value.field == "temperature" and f"{side}'s settings" in bad.value.hint
    with pytest.raises(ConfigError, match=r"^A's settings: model:"):
        check_turn("Hi", [Side([], sidebar_values(model="/elsewhere/m")), good], local_dirs=["/models"])
    check_turn("Hi", [good, good])  # nothing to refuse
