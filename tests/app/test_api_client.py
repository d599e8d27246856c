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


def readme_snippet(url_variable: str = "HFCHAT_URL", marker: str = 'api_name="/chat"') -> str:
    """A runnable README example: the one Python block that reads `url_variable` and holds `marker`."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    runnable = [b for b in blocks if url_variable in b and marker in b]
    assert len(runnable) == 1, f"the README has one runnable example with {marker}"
    return runnable[0]


def run_readme(url_variable: str, url: str, marker: str) -> list[str]:
    """The README example's printed lines, run as a script against `url`."""
    env = {**os.environ, url_variable: url}
    done = subprocess.run(
        [sys.executable, "-c", readme_snippet(url_variable, marker)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


@pytest.fixture(scope="module")
def app(tiny_models: dict[str, Path]) -> Iterator[AppProcess]:
    with AppProcess(*local_app_args(tiny_models)) as running:
        yield running


def run_snippet(url: str) -> list[str]:
    lines = run_readme("HFCHAT_URL", url, 'api_name="/chat"')
    assert lines[0].startswith("Loaded as API: ")  # gradio_client's own greeting
    return lines[1:]


def test_readme_snippet_runs_with_defaults_and_named_settings(app: AppProcess) -> None:
    printed = run_snippet(app.url)
    assert len(printed) == 2, printed
    default_reply, haiku = printed
    for line in printed:
        assert line.strip() and not line.startswith(("⚠", "◔")), printed
    assert run_snippet(app.url) == printed, "greedy by the flags and a fixed seed: the same output again"
    greedy = answer_text(Client(app.url, verbose=False).predict(message={"text": "Write a haiku"}, api_name="/chat"))
    assert haiku != greedy, "do_sample, seed and max_new_tokens reached the model"
    assert default_reply != haiku
