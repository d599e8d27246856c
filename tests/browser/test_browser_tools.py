"""Tool calls in a real browser: `python app.py --backend endpoint --endpoint-url URL --mcp
MCP_URL --tools calculator` (in this process), a loopback OpenAI server scripted to call tools,
and a real MCP server (FastMCP over streamable HTTP). A call is a block above the answer,
pending while it runs, then done with its duration; Stop during a slow tool ends the turn.

Set HFCHAT_UPDATE_DOCS=1 to also refresh the README's screenshot (docs/tools.png).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hfchat.cli import parse_options
from hfchat.testing.mcp_server import MCPServerProcess
from hfchat.testing.servers import Recorder, json_response, tool_model_handler
from tests.fixtures.browser import ROOT, BrowserPage, ChatUI, keep_shot, wait_until

pytestmark = pytest.mark.timeout(600)

DOCS_SCREENSHOT = ROOT / "docs" / "tools.png"


def calls_for(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The scripted model: the calculator for arithmetic, the MCP server's `add` and `slow`."""
    question = str(body["messages"][-1]["content"])
    offered = {t["function"]["name"] for t in body.get("tools", [])}
    if "times" in question and "calculator" in offered:
        return [("calculator", json.dumps({"expression": "6*7"})), ("add", json.dumps({"a": 2, "b": 40}))]
    if "slow" in question:
        return [("slow", json.dumps({"seconds": 60}))]
    return []


def answer_for(messages: list[dict[str, Any]]) -> str:
    results = [m["content"] for m in messages if m.get("role") == "tool"]
    return f"Both tools agree: 6 × 7 = {results[0]}, and 2 + 40 = {results[1]}." if len(results) == 2 else "Done."


@pytest.fixture(scope="module")
def mcp_server() -> Iterator[MCPServerProcess]:
    with MCPServerProcess() as server:
        yield server


@pytest.fixture
def tool_app(start_app: Callable[..., Any], mcp_server: MCPServerProcess) -> Iterator[Any]:
    routes = {
        ("GET", "/v1/models"): json_response({"data": [{"id": "tool-model"}]}),
        ("POST", "/v1/chat/completions"): tool_model_handler(calls_for, answer_for),
    }
    with Recorder(routes) as rec:
        argv = ["--backend", "endpoint", "--endpoint-url", rec.url, "--mcp", mcp_server.url, "--tools", "calculator"]
        yield start_app(parse_options(argv, {}))


def tool_blocks(ui: ChatUI) -> Any:
    return ui.main.locator(ChatUI.BOT).filter(has_text="Tool: ")


def test_tool_calls_show_pending_then_done_above_the_answer(tool_app: Any, browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.set_viewport_size({"width": 1400, "height": 1000})
    ui = ChatUI(page).open(tool_app.url)
    # the Tools section lists the built-in tool and the MCP server's tools
    ui.control("tools").get_by_text("calculator", exact=False).first.wait_for(state="visible", timeout=30_000)
    assert ui.control("tools").locator("input[type=checkbox]").first.is_checked()
    mcp = ui.control("mcp_tools")
    wait_until(lambda: mcp.locator("input[type=checkbox]").count() >= 4, 30, "the MCP server's tools listed")
    status = page.locator("#tools-status")
    wait_until(lambda: "5 tools (add, slow, fail, whoami, picture)" in status.inner_text(), 30, "the status line")
    status.scroll_into_view_if_needed()
    keep_shot(browser_page.screenshot("tools-panel"))
    ui.open_sidebar(False)

    answer = ui.chat("What is 6 times 7?")
    assert answer == "Both tools agree: 6 × 7 = 42, and 2 + 40 = 42."
    blocks = tool_blocks(ui)
    wait_until(lambda: blocks.count() == 2, 30, "two tool blocks")
    titles = [t.splitlines()[0] for t in blocks.all_inner_texts()]
    assert "Tool: calculator · built-in" in titles[0] and "Tool: add · 127.0.0.1" in titles[1], titles
    texts = ui.bot_messages()
    assert texts.index(answer) > max(i for i, t in enumerate(texts) if t.startswith("Tool: ")), "calls above the answer"
    # done blocks fold once the reply ends; unfold the calculator's: its arguments and result
    arguments = blocks.first.get_by_text('"expression": "6*7"')
    wait_until(lambda: not arguments.is_visible(), 15, "the done block to fold")
    blocks.first.get_by_text("Tool: calculator").click()
    arguments.wait_for(state="visible", timeout=10_000)
    blocks.first.get_by_text("Result").wait_for(state="visible", timeout=10_000)
    time.sleep(0.5)
    shot = browser_page.screenshot("tools")
    keep_shot(shot)
    if os.environ.get("HFCHAT_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    assert page.locator(".error, [data-testid='error']").count() == 0


def test_stop_during_a_slow_tool_ends_it_and_the_next_message_works(tool_app: Any, browser_page: BrowserPage) -> None:
    page = browser_page.page
    ui = ChatUI(page).open(tool_app.url)
    ui.send("Call the slow tool")
    pending = tool_blocks(ui).filter(has_text="slow")
    pending.first.wait_for(state="visible", timeout=60_000)
    wait_until(lambda: ui.generating(), 10, "the turn to be running")
    time.sleep(1)  # the tool is running on the MCP server now
    started = time.monotonic()
    ui.stop_button.click()
    wait_until(lambda: not ui.generating(), 10, "Stop to end the turn")
    assert time.monotonic() - started < 10
    wait_until(lambda: any("stopped by you" in f for f in ui.speed_footers()), 10, "the stopped footer")
    wait_until(lambda: "· stopped" in pending.first.inner_text(), 10, "the tool's block to say it was stopped")
    keep_shot(browser_page.screenshot("tools-stopped"))
    assert ui.chat("What is 6 times 7?") == "Both tools agree: 6 × 7 = 42, and 2 + 40 = 42."
