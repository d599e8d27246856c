"""6. Cold start: `python app.py` (endpoint backend as the default) to the first HTTP 200,
vs a bare `gr.ChatInterface(lambda m, h: m).launch()` started the same way: a fresh
interpreter, the same environment, the port from GRADIO_SERVER_PORT. Also checks that the
app's start-up never loads torch."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    ROOT,
    BenchConfig,
    Notes,
    Row,
    Stats,
    at_most,
    base_env,
    interleaved,
    ratios,
    stop_process,
    wait_http_200,
)
from hfchat.testing.servers import free_port

NAME = "coldstart"
BARE = "import gradio as gr\n\ngr.ChatInterface(lambda m, h: m).launch()\n"


def _start(script: Path, env: dict[str, str]) -> tuple[float, bool]:
    """Seconds from spawning `python SCRIPT` to its first 200, and whether torch was loaded."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={**env, "GRADIO_SERVER_PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_http_200(f"http://127.0.0.1:{port}/", proc=proc)
        torch_loaded = "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
    finally:
        stop_process(proc)
    return ready - started, torch_loaded


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    bare = Path(tempfile.mkdtemp(prefix="hfchat-bench-")) / "bare.py"
    bare.write_text(BARE)
    # The endpoint backend as the default; the URL is never called during start-up.
    app_env = base_env(HFCHAT_BACKEND="endpoint", HFCHAT_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    torch_seen: list[bool] = []

    def app() -> float:
        seconds, torch_loaded = _start(ROOT / "app.py", app_env)
        torch_seen.append(torch_loaded)
        return seconds

    if not cfg.quick:
        _start(bare, base_env())  # warm the OS file cache for both, unmeasured
        app()
    a, b = interleaved(cfg.runs, app, lambda: _start(bare, base_env())[0])
    ratio = ratios(a, b)
    torch_free = not any(torch_seen)
    bench = "6. Cold start"
    return [
        Row(bench, "python app.py to first HTTP 200", Stats.of(a), Stats.of(b), "s", ratio, "≤ 1.2×",
            at_most(ratio, 1.2), "A app.py (endpoint default), B bare gr.ChatInterface", too_small=ratio is None),
        Row(bench, "torch imported at start-up", goal="no", met=torch_free,
            note="no: libtorch never mapped in the app process" if torch_free else "yes: libtorch was mapped"),
    ]  # fmt: skip
