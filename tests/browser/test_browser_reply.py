"""The reasoning display and the speed footer in a real browser, on the tiny think model
(its template opens `<think>`; it always thinks "Let us think about it", then answers).

Set HFCHAT_UPDATE_DOCS=1 to also refresh the README's screenshot (docs/reasoning.png).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from hfchat.updates import SPEED_MARK
from tests.fixtures.browser import ROOT, AppProcess, BrowserPage, ChatUI, wait_until

DOCS_SCREENSHOT = ROOT / "docs" / "reasoning.png"


def test_thinking_block_answer_and_speed_footer(
    local_app: AppProcess, browser_page: BrowserPage, tiny_models: dict[str, Path]
) -> None:
    page = browser_page.page
    ui = ChatUI(page).open(local_app.url)
    ui.set_text("model", str(tiny_models["think"]))
    answer = ui.chat("What is the capital of France?")
    assert answer == "Paris is the capital of France."
    wait_until(lambda: len(ui.speed_footers()) == 1, 30, "the speed footer")
    footer = ui.speed_footers()[0]
    assert (
        footer.startswith(f"{SPEED_MARK} ")
        and " · think · Local · " in footer
        and "out (tokenizer)" in footer
        and "stopped: stop" in footer
    )
    thought = page.locator(ChatUI.BOT).filter(has_text="Thinking").first
    thought.wait_for(state="visible", timeout=30_000)
    title = re.compile(r"Thinking\s*\(\d+(\.\d+)?\s*m?s\)")
    wait_until(lambda: title.search(thought.inner_text()), 30, "the thinking title to show its duration")
    # Done thinking: the block collapses. Gradio folds it after the last update, so wait for
    # that state rather than sample it once (sampled, this failed 2 runs in 4).
    thought.get_by_text("Let us think about it").wait_for(state="hidden", timeout=15_000)
    thought.get_by_text("Thinking").first.click()
    thought.get_by_text("Let us think about it").wait_for(state="visible", timeout=30_000)
    browser_page.screenshot("reasoning")
    if os.environ.get("HFCHAT_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(ROOT / "test-output" / "screenshots" / "reasoning.png", DOCS_SCREENSHOT)

    ui.set_checked("show_speed", False)  # the control sits in a folded section: set_checked unfolds it
    ui.chat("And of Italy?")
    assert len(ui.speed_footers()) == 1, "hidden: no footer under the second reply"
    assert ui.bot_messages()[-1] == "Paris is the capital of France."
    page.reload()
