"""The chat page's layout and settings panel, in a real Chromium (issue 12, points 2-4, 6, 7,
11 and 14: the page's side). Every assertion is on the DOM; the screenshots (copied to
$HFCHAT_SHOTS when set) are for people to look at.

Two apps: the module's `local_app` (tiny chat model, greedy by its flags) for the panel, and
`python app.py` on a loopback endpoint whose scripted replies carry math, for the reply.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hfchat.testing.servers import RecordedRequest, Recorder, Response, sse_chat_stream, sse_response
from hfchat.updates import SPEED_MARK
from tests.browser.test_browser_convos import ConvoUI
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI, keep_shot, wait_until

pytestmark = pytest.mark.timeout(600)

MATH_REPLY = (
    "Einstein wrote $E = mc^2$, and \\(a^2 + b^2 = c^2\\) holds; in display: $$\\int_0^1 x\\,dx = \\frac{1}{2}$$"
)


def shot(tab: BrowserPage, name: str) -> None:
    keep_shot(tab.screenshot(f"page-{name}"))


def box_of(ui: ChatUI, selector: str) -> dict[str, float]:
    return ui.page.locator(selector).first.bounding_box() or {}


def open_at(tab: BrowserPage, url: str, width: int, height: int) -> ConvoUI:
    tab.page.set_viewport_size({"width": width, "height": height})
    return ConvoUI(tab.page).fresh(url)


@pytest.mark.parametrize("size", [(1400, 900), (1920, 1080)], ids=["1400x900", "1920x1080"])
def test_the_chat_fills_the_window_under_a_model_header(
    local_app: AppProcess, browser_page: BrowserPage, size: tuple[int, int]
) -> None:
    width, height = size
    ui = open_at(browser_page, local_app.url, width, height)
    wait_until(lambda: ui.sidebar_open() and ui.sidebar_open("conversations-panel"), 30, "both panels open")
    window, box = box_of(ui, "#chat-window"), box_of(ui, "#chat-box")
    assert window["height"] >= 0.6 * height, f"message area {window['height']} px of {height}"
    assert height - (box["y"] + box["height"]) <= 150, f"box bottom at {box['y'] + box['height']} of {height}"
    assert box["y"] >= window["y"] + window["height"] - 1, "the box is under the messages"
    assert ui.page.locator("#chat-window [data-testid='block-label']").count() == 0, "no 'Chatbot' label chip"
    assert ui.page.get_by_role("heading", name="hfchat").count() == 0, "no title block"
    header = ui.page.locator("#model-header")
    assert header.inner_text().strip() == "chat · Local", "the header names the model and backend"
    shot(browser_page, f"{width}-empty")
    ui.chat("Hello")
    toolbar = box_of(ui, "#chat-window .top-panel")
    first = box_of(ui, f"#chat-window {ChatUI.USER}")
    assert toolbar["y"] + toolbar["height"] <= first["y"], "the chat's toolbar does not cover a message"
    shot(browser_page, f"{width}-reply")


def test_the_box_stays_in_view_as_replies_pile_up_after_continue_showed(
    local_app: AppProcess, browser_page: BrowserPage
) -> None:
    """Replies cut by length show Continue, and the next turn hides it again. Once it had, the
    window grew with each reply and pushed the box, and Stop, below the fold (a Stop test
    timed out clicking a button that kept moving): the page's column is bounded by the browser's
    window, and only the messages scroll."""
    height = 900
    ui = open_at(browser_page, local_app.url, 1280, height)
    ui.set_number("max_new_tokens", 100)
    initial = box_of(ui, "#chat-window")["height"]
    for text in ("Tell me a story", "Go on with it", "And then?"):
        ui.chat(text)
        box, window = box_of(ui, "#chat-box"), box_of(ui, "#chat-window")
        assert box["y"] + box["height"] <= height, f"after {text!r}: the box ends at {box['y'] + box['height']} px"
        assert window["height"] <= initial + 1, f"after {text!r}: the window is {window['height']} px, was {initial}"
    assert ui.page.evaluate("document.documentElement.scrollHeight") <= height + 40, "the page itself barely scrolls"
    shot(browser_page, "replies-piled-up")


def test_the_header_follows_the_settings_and_opens_them(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = open_at(browser_page, local_app.url, 1400, 900)
    header = ui.page.locator("#model-header")
    ui.set_checked("load_in_4bit", True)
    wait_until(lambda: header.inner_text().strip() == "chat · Local · 4-bit", 30, "the header to say 4-bit")
    ui.choose("backend", "Inference Providers")
    ui.set_text("model", "deepseek-ai/DeepSeek-R1-0528")
    wait_until(lambda: "DeepSeek-R1-0528 · Inference Providers · auto" in header.inner_text(), 30, "providers")
    ui.open_sidebar(False)
    header.click()
    wait_until(ui.sidebar_open, 30, "the header to open the settings panel")
    shot(browser_page, "1400-settings")


def test_on_a_phone_the_page_opens_on_the_chat(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = open_at(browser_page, local_app.url, 390, 844)
    wait_until(lambda: not ui.sidebar_open() and not ui.sidebar_open("conversations-panel"), 30, "both closed")
    time.sleep(0.5)  # the panels slide out (0.3 s)
    box = box_of(ui, "#chat-box")
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844, "box in view"
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    on_top = ui.page.evaluate("([x, y]) => !!document.elementFromPoint(x, y)?.closest('#chat-box')", centre)
    assert on_top, "nothing covers the message box"
    assert ui.page.locator("#model-header").is_visible()
    shot(browser_page, "390-empty")
    ui.chat("Hello")
    shot(browser_page, "390-reply")
    ui.open_sidebar()
    shot(browser_page, "390-settings")


def test_sampling_sliders_are_disabled_while_greedy(local_app: AppProcess, browser_page: BrowserPage) -> None:
    """`local_app` starts greedy (--do-sample false): temperature, top_p and top_k do nothing."""
    ui = open_at(browser_page, local_app.url, 1400, 900)
    sliders = [ui.control(name).locator("input[type=range]") for name in ("temperature", "top_p", "top_k")]
    assert not ui.field("do_sample").is_checked()
    assert all(s.is_disabled() for s in sliders), "greedy: the sampling sliders are disabled"
    ui.set_checked("do_sample", True)
    wait_until(lambda: all(s.is_enabled() for s in sliders), 30, "sampling: the sliders enabled")
    ui.set_checked("do_sample", False)
    wait_until(lambda: all(s.is_disabled() for s in sliders), 30, "greedy again: disabled")


def test_advanced_is_folded_and_4bit_options_show_only_with_4bit(
    local_app: AppProcess, browser_page: BrowserPage
) -> None:
    ui = open_at(browser_page, local_app.url, 1400, 900)
    page = ui.page
    assert page.locator("#settings-group-generation #settings-temperature").is_visible(), "Generation is open"
    assert not page.locator("#settings-top-k").is_visible(), "Advanced starts folded"
    info = page.locator("#settings-max-new-tokens").inner_text()
    assert "Max new tokens" in info and "API: max_new_tokens" in info, "a human label, the API name as help"
    ui.control("load_in_4bit")  # unfolds Advanced
    subs = [page.locator(f"#settings-{n}") for n in ("quant-type", "compute-dtype", "double-quant")]
    assert not any(s.is_visible() for s in subs), "4-bit is off: its options are hidden"
    ui.set_checked("load_in_4bit", True)
    wait_until(lambda: all(s.is_visible() for s in subs), 30, "4-bit on: its options show")
    ui.set_checked("load_in_4bit", False)
    wait_until(lambda: not any(s.is_visible() for s in subs), 30, "4-bit off again: hidden")


def test_the_model_box_brings_the_model_s_own_sampling_defaults(
    local_app: AppProcess, browser_page: BrowserPage, tmp_path: Path
) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": True, "temperature": 0.3, "top_p": 0.8}))
    ui = open_at(browser_page, local_app.url, 1400, 900)
    ui.set_text("model", str(tmp_path))
    wait_until(lambda: ui.field("temperature").input_value() == "0.3", 30, "the model's temperature")
    assert ui.field("top_p").input_value() == "0.8" and ui.field("do_sample").is_checked()


def test_presets_confirm_apply_and_save(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = open_at(browser_page, local_app.url, 1400, 900)
    ui.page.get_by_text("Presets", exact=True).click()
    ui.choose_preset("Seed notes (greedy)")
    ui.button("Apply preset").click()
    ui.notice("Applied the preset “Seed notes (greedy)”").wait_for(state="visible", timeout=30_000)
    wait_until(lambda: not ui.field("do_sample").is_checked(), 30, "the seed notes are greedy")
    assert ui.field("repetition_penalty").input_value() == "1.03"
    choice = ui.page.locator("#preset-choice input")
    arrow = ui.page.locator("#preset-choice .icon-wrap, #preset-choice svg").first
    text_end = choice.evaluate(
        "(e) => { const r = e.getBoundingClientRect(); return r.right - parseFloat(getComputedStyle(e).paddingRight) }"
    )
    assert text_end <= (arrow.bounding_box() or {"x": 1e9})["x"], "the dropdown's text stops before its arrow"
    ui.page.locator("#preset-name textarea").fill("mine")
    ui.button("Save preset").click()
    ui.notice("Saved the current settings as “mine”").wait_for(state="visible", timeout=30_000)


def test_the_settings_panel_closes_while_compare_is_shown(local_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = open_at(browser_page, local_app.url, 1400, 900)
    wait_until(ui.sidebar_open, 30, "the settings panel open on the Chat tab")
    ui.page.get_by_role("tab", name="Compare").click()
    wait_until(lambda: not ui.sidebar_open(), 30, "the settings panel to close on Compare")
    shot(browser_page, "1400-compare")
    ui.page.get_by_role("tab", name="Chat").click()
    wait_until(ui.sidebar_open, 30, "back on Chat: the settings panel as it was (open)")
    ui.page.get_by_role("tab", name="Compare").click()
    wait_until(lambda: not ui.sidebar_open(), 30, "closed again on Compare")
    ui.open_sidebar()  # and still one click away there


# ------------------------------------------------------------------------- the reply


def _math_replies() -> Callable[[RecordedRequest], Response]:
    """Every reply: MATH_REPLY, streamed slowly enough to be caught mid-reply."""

    def slowly(events: list[str]) -> Iterator[str]:
        for event in events:
            yield event
            time.sleep(0.25)

    return lambda req: sse_response(slowly(sse_chat_stream(MATH_REPLY)))


@pytest.fixture
def math_app(recorder: Recorder, launch_app: Callable[..., AppProcess]) -> AppProcess:
    recorder.route("GET", "/v1/models", (404, {}, b""))
    recorder.route("POST", "/v1/chat/completions", _math_replies())
    return launch_app("--backend", "endpoint", "--endpoint-url", recorder.url, "--served-model", "tiny")


def test_math_renders_with_single_dollars_and_parentheses(math_app: AppProcess, browser_page: BrowserPage) -> None:
    ui = open_at(browser_page, math_app.url, 1400, 900)
    assert ui.page.locator("#model-header").inner_text().strip() == "tiny · Custom endpoint · " + math_app_host(
        ui, math_app
    )
    ui.send("Some math, please")
    wait_until(lambda: ui.generating() and ui.bot_messages(), 60, "the reply to start streaming")
    shot(browser_page, "1400-mid-reply")
    ui.wait_reply()
    bot = ui.page.locator(f"#chat-window {ChatUI.BOT}").first
    wait_until(lambda: bot.locator(".katex").count() >= 3, 30, "KaTeX to render $…$, \\(…\\) and $$…$$")
    assert "$E" not in bot.inner_text() and "\\(" not in bot.inner_text(), "no raw delimiters left"
    footer = ui.page.locator(f"#chat-window {ChatUI.BOT}").filter(has_text=SPEED_MARK).last
    wait_until(lambda: footer.count() > 0, 30, "the speed footer")
    text = footer.locator("p").first
    line = text.evaluate("(e) => parseFloat(getComputedStyle(e).lineHeight) || 20")
    assert (text.bounding_box() or {})["height"] <= 1.5 * line, "the speed footer stays on one line at 1400 px"
    shot(browser_page, "1400-math")


def math_app_host(ui: ChatUI, app: AppProcess) -> str:
    """The endpoint's host:port as the header shows it."""
    url = app.args[app.args.index("--endpoint-url") + 1]
    return url.split("://", 1)[1].rstrip("/")
