"""The server log of `python app.py`: each warning once, no library chatter, our own flags.

The Hub here is reachable but answers 503, so huggingface_hub retries (as it should: a
reachable server that is briefly down is what retries are for) and warns on every try.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from gradio_client import Client

from hfchat.logs import KERNELS_EXPLAINED, KERNELS_HINT, KERNELS_LOGGER
from hfchat.reply import answer_text
from hfchat.updates import ERROR_MARK
from tests.fixtures.browser import AppProcess

pytestmark = pytest.mark.timeout(300)

REPO = "hfchat-test/flaky"


def test_each_warning_once_no_library_noise_and_the_share_hint_names_our_flag(
    tmp_path: Path, launch_app: Callable[..., AppProcess]
) -> None:
    app = AppProcess("--backend", "local", "--model", REPO, "--device", "cpu", env={"HF_HOME": str(tmp_path)})
    app.hub.route("HEAD", f"/{REPO}/", (503, {}, b"down for maintenance"))
    app.start()
    try:
        client = Client(app.url, verbose=False)
        shown = answer_text(client.predict(message={"text": "Hi", "files": []}, api_name="/chat"))
        log = app.log_text()
    finally:
        app.stop()
    assert shown.startswith(ERROR_MARK), shown
    tries = [r for r in app.hub.requests if r.method == "HEAD" and r.path.endswith("/config.json")]
    assert len(tries) >= 6, "huggingface_hub still retries a reachable Hub's 503 (1 try + 5 retries)"
    retry_lines = [line for line in log.splitlines() if "Retrying in 1s [Retry 1/5]" in line]
    assert len(retry_lines) == 1, "each warning is printed once:\n" + "\n".join(retry_lines)
    assert re.match(r"^\d{4}-\d\d-\d\d .* WARNING huggingface_hub", retry_lines[0]), "through our formatted handler"
    assert "share=True" not in log and "--share for a public link" in log, log[-3000:]
    assert not [line for line in log.splitlines() if " INFO httpx" in line or " INFO gradio" in line], log[-3000:]


def test_bitsandbytes_kernels_hint_becomes_one_explained_info_line() -> None:
    """bitsandbytes warns "pip install kernels" on AVX512-BF16 CPUs (not this test machine's,
    so the record is made here as bitsandbytes makes it, on its own logger)."""
    record = logging.getLogger(KERNELS_LOGGER).makeRecord(
        KERNELS_LOGGER,
        logging.WARNING,
        "ops.py",
        252,
        "Failed to load CPU gemm_4bit_forward from kernels-community: %s. Please make sure you already "
        "`pip install kernels` and the kernels >= 0.11.1",
        ("No module named 'kernels'",),
        None,
    )
    assert KERNELS_HINT.filter(record)
    assert record.levelno == logging.INFO and record.getMessage() == KERNELS_EXPLAINED
    other = logging.getLogger(KERNELS_LOGGER).makeRecord(KERNELS_LOGGER, logging.WARNING, "x", 1, "other", (), None)
    assert KERNELS_HINT.filter(other) and other.levelno == logging.WARNING
