"""`python app.py` as the README says: it starts offline, light, and quiet about tokens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hfchat.testing.servers import Recorder, free_port
from tests.fixtures import SENTINEL_TOKEN

ROOT = Path(__file__).resolve().parents[2]


def test_app_starts_without_network_torch_or_hub_calls(recorder: Recorder, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HF_TOKEN": SENTINEL_TOKEN,  # a token makes Inference Providers the default backend
        "HF_ENDPOINT": recorder.url,  # any Hub call would land here
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    log = tmp_path / "app.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 90
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    status = httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            assert status == 200, log.read_text()[-3000:]
            page = httpx.get(f"http://127.0.0.1:{port}/config").text
            assert "deepseek-ai/DeepSeek-R1-0528" in page, "with a token the default is the seed's model"
            maps = Path(f"/proc/{proc.pid}/maps").read_text()
            assert "libtorch" not in maps, "an endpoint-only start must not import torch"
            assert SENTINEL_TOKEN not in page
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert recorder.requests == [], "no Hub call at import or launch"
    assert SENTINEL_TOKEN not in log.read_text()


def test_help_lists_every_flag_without_importing_torch() -> None:
    code = (
        "import sys, runpy\n"
        "sys.argv = ['app.py', '--help']\n"
        "try:\n    runpy.run_path('app.py', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120).stdout
    for flag in [
        "--host",
        "--port",
        "--share",
        "--backend",
        "--model",
        "--provider",
        "--endpoint-url",
        "--served-model",
        "--task",
        "--load-in-4bit",
        "--cache-size",
    ]:
        assert flag in out
    assert "HFCHAT_" in out
    assert out.strip().endswith("NO-TORCH")
