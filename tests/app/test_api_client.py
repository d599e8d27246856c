"""`/chat` from gradio_client against `python app.py`, by running the README's own snippet."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client

from hfchat.reply import answer_text
from tests.fixtures.browser import AppProcess
from tests.fixtures.pytest_fixtures import local_app_args

ROOT = Path(__file__).resolve().parents[2]


def readme_snippet() -> str:
    """The README's runnable API example: the Python block that reads HFCHAT_URL."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    runnable = [b for b in blocks if "HFCHAT_URL" in b and 'api_name="/chat"' in b]
    assert len(runnable) == 1, "the README has one runnable /chat example"
    return runnable[0]


@pytest.fixture(scope="module")
def app(tiny_models: dict[str, Path]) -> Iterator[AppProcess]:
    with AppProcess(*local_app_args(tiny_models)) as running:
        yield running


def run_snippet(url: str) -> list[str]:
    env = {**os.environ, "HFCHAT_URL": url}
    done = subprocess.run(
        [sys.executable, "-c", readme_snippet()], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Loaded as API: ")  # gradio_client's own greeting
    return lines[1:]


def test_readme_snippet_runs_with_defaults_and_named_settings(app: AppProcess) -> None:
    printed = run_snippet(app.url)
    assert len(printed) == 2, printed
    default_reply, haiku = printed
    for line in printed:
        assert line.strip() and not line.startswith(("⚠", "◔")), printed
    assert run_snippet(app.url) == printed, "greedy by default and a fixed seed: the same output again"
    greedy = answer_text(Client(app.url, verbose=False).predict(message={"text": "Write a haiku"}, api_name="/chat"))
    assert haiku != greedy, "do_sample, seed and max_new_tokens reached the model"
    assert default_reply != haiku
