"""Compare mode in a real browser against the real app: A (a local tiny model) and B (a real
`transformers serve` behind a recording proxy) answer one prompt side by side.

Set HFCHAT_UPDATE_DOCS=1 to also refresh the README's screenshot (docs/compare.png).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page

from hfchat.testing.servers import RecordingProxy, TransformersServe
from hfchat.updates import ERROR_MARK, LOADING_MARK, SPEED_MARK
from tests.fixtures.browser import ROOT, AppProcess, BrowserPage, ChatUI, wait_until
from tests.fixtures.pytest_fixtures import local_app_args

DOCS_SCREENSHOT = ROOT / "docs" / "compare.png"


class CompareUI:
    """The Compare tab: a settings panel and a chat window per side, one prompt box."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def open(self) -> CompareUI:
        self.page.get_by_role("tab", name="Compare").click()
        self.prompt.wait_for(state="visible", timeout=60_000)
        return self

    @property
    def prompt(self) -> Locator:
        return self.page.locator("#compare-prompt textarea")

    def control(self, side: str, name: str) -> Locator:
        return self.page.locator(f"#compare-{side.lower()}-{name.replace('_', '-')}")

    def settings(self, side: str, open_: bool = True) -> None:
        """Open (or close) the side's settings panel."""
        self.page.locator(f"#compare-{side.lower()}-settings").get_by_role("button").first.click()
        self.control(side, "backend").wait_for(state="visible" if open_ else "hidden", timeout=30_000)

    def set_text(self, side: str, name: str, value: str) -> None:
        box = self.control(side, name).locator("textarea, input").first
        box.fill(value)
        box.blur()

    def set_number(self, side: str, name: str, value: float) -> None:
        box = self.control(side, name).locator("input[type=number]")
        box.fill(str(value))
        box.press("Enter")
        box.blur()

    def bot_texts(self, side: str) -> list[str]:
        chat = self.page.locator(f"#compare-{side.lower()}-chat")
        return [t.strip() for t in chat.locator(ChatUI.BOT).all_inner_texts()]

    def bots(self, side: str) -> list[str]:
        """The side's bot messages, speed footers left out."""
        return [t for t in self.bot_texts(side) if not t.startswith(SPEED_MARK)]

    def footers(self, side: str) -> list[str]:
        return [t for t in self.bot_texts(side) if t.startswith(SPEED_MARK)]

    def users(self, side: str) -> list[str]:
        chat = self.page.locator(f"#compare-{side.lower()}-chat")
        return [t.strip() for t in chat.locator(ChatUI.USER).all_inner_texts()]

    def status(self) -> str:
        return self.page.locator("#compare-status").inner_text().strip()

    def watch(self) -> None:
        """Record every distinct text of each side's last bot message (proves streaming)."""
        self.page.evaluate(
            """([bot, speed]) => {
                window.__sides = {a: [], b: []};
                const record = () => {
                    for (const side of ['a', 'b']) {
                        const bots = [...document.querySelectorAll(`#compare-${side}-chat ${bot}`)]
                            .filter(el => !el.innerText.trim().startsWith(speed));
                        if (!bots.length) continue;
                        const text = bots[bots.length - 1].innerText.trim();
                        const seen = window.__sides[side];
                        if (text && seen[seen.length - 1] !== text) seen.push(text);
                    }
                };
                new MutationObserver(record).observe(document.body,
                    {subtree: true, childList: true, characterData: true});
            }""",
            [ChatUI.BOT, SPEED_MARK],
        )

    def renders(self, side: str) -> list[str]:
        return list(self.page.evaluate(f"window.__sides.{side.lower()}"))


def test_compare_two_configurations_side_by_side_and_copy_one_to_the_main_chat(
    tiny_models: dict[str, Path],
    launch_app: Callable[..., AppProcess],
    browser_page: BrowserPage,
    proxy: RecordingProxy,
    serve: TransformersServe,
) -> None:
    app: AppProcess = launch_app(*local_app_args(tiny_models, max_new_tokens=24))
    page = browser_page.page
    ChatUI(page).open(app.url)
    ui = CompareUI(page).open()

    # A: another local model, shorter replies. B: the endpoint, with its own seed and length.
    plain = str(tiny_models["plain"])
    ui.settings("A")
    ui.set_text("A", "model", plain)
    ui.set_number("A", "max_new_tokens", 12)
    ui.settings("B")
    ui.control("B", "backend").get_by_label("Custom endpoint", exact=True).click()
    ui.control("B", "endpoint_url").wait_for(state="visible", timeout=30_000)
    ui.set_text("B", "endpoint_url", proxy.url)
    ui.set_number("B", "max_new_tokens", 16)
    ui.set_number("B", "seed", 7)
    wait_until(lambda: "Custom endpoint" in page.locator("#compare-b-settings").inner_text(), 30, "B's title")

    ui.watch()
    ui.prompt.fill("Hello!")
    page.locator("#compare-send").click()
    wait_until(lambda: ui.status() == "Both replies are in.", 240, "both replies")
    replies = {side: ui.bots(side) for side in "AB"}
    for side in "AB":
        assert ui.users(side) == ["Hello!"], f"the prompt shows on side {side}"
        assert replies[side] and replies[side][0], f"side {side} has its reply"
        assert not replies[side][0].startswith((ERROR_MARK, LOADING_MARK)), replies[side][0]
        streamed = [text for text in ui.renders(side) if not text.startswith(LOADING_MARK)]
        assert len(streamed) >= 2, f"side {side} streamed in pieces, not at once: {streamed}"
        footers = ui.footers(side)
        assert len(footers) == 1 and "tok" in footers[0], f"side {side} shows its own speed figures: {footers}"
    assert "Local" in ui.footers("A")[0] and "Custom endpoint" in ui.footers("B")[0]
    body = next(r.json for r in proxy.requests if r.path.endswith("/chat/completions"))
    assert body["max_tokens"] == 16 and body["seed"] == 7, "B's own settings reached B"
    assert body["messages"][-1]["content"] == "Hello!"
    for side in "AB":  # panels closed, so both windows and their titles show
        ui.settings(side, open_=False)
    page.evaluate("window.scrollTo(0, 0)")
    browser_page.screenshot("compare")
    if os.environ.get("HFCHAT_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ROOT / "test-output" / "screenshots" / "compare.png", DOCS_SCREENSHOT)

    # Copy A into the main chat: the sidebar takes A's settings and the Chat tab opens.
    page.locator("#compare-copy-a").click()
    wait_until(lambda: page.locator("#settings-model textarea").input_value() == plain, 30, "the main model")
    assert page.locator("#settings-max-new-tokens input[type=number]").input_value() == "12"
    assert page.get_by_role("tab", name="Chat").get_attribute("aria-selected") == "true"
    # Same model, settings and prompt, greedy: the main chat answers as A did, from the shared cache.
    # (The Compare tab stays in the page, so the chat is found inside its own tab.)
    box = page.locator("#chat-tab textarea")
    box.fill("Hello!")
    box.press("Enter")
    bots = page.locator(f"#chat-tab {ChatUI.BOT}")

    def answered() -> str:
        texts = [t.strip() for t in bots.all_inner_texts()]
        done = texts and texts[0] and not texts[0].startswith(LOADING_MARK)
        return texts[0] if done and page.locator("#chat-tab button.stop-button").count() == 0 else ""

    assert wait_until(answered, 120, "the main chat's reply") == replies["A"][0]
    turns = [line for line in app.log_text().splitlines() if f"turn: The local model {plain}," in line]
    assert len(turns) == 2 and "cache miss" in turns[0] and "cache hit" in turns[1], turns
