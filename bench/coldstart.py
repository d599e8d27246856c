"""6. Cold start and idle cost: `python app.py` (endpoint backend as the default) (A) vs the
Chatbot Space template (B, `bench/peers/chatbot_template.py`) vs a bare
`gr.ChatInterface(lambda m, h: m).launch()` (C), each from a fresh interpreter in the same
environment, to its first HTTP 200, interleaved. Once up, each sits idle with no visitor:
its resident memory (RSS) is read, and its CPU over a few idle seconds (Gradio's queue polls
even when nobody is there). Also checks that the app's start-up never loads torch.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    ROOT,
    TEMPLATE,
    BenchConfig,
    Notes,
    Row,
    Stats,
    at_most,
    base_env,
    ratios,
    rotated,
    stop_process,
    template_env,
    wait_http_200,
)
from hfchat.testing.servers import free_port

NAME = "coldstart"
BARE = "import gradio as gr\n\ngr.ChatInterface(lambda m, h: m).launch()\n"
MIB = 2**20


@dataclass(frozen=True)
class Start:
    seconds: float
    """Spawn to the first HTTP 200."""
    cpu_s: float
    """CPU-seconds the process spent starting."""
    rss_mib: float
    """Resident memory after 1.5 × `idle_s` with no visitor."""
    idle_cpu_ms_per_s: float
    torch: bool


def _start(args: Sequence[str], env: dict[str, str], idle_s: float) -> Start:
    """Start `python ARGS` on a free port (GRADIO_SERVER_PORT and --port where it takes one)."""
    import psutil

    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={**env, "GRADIO_SERVER_PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = wait_http_200(f"http://127.0.0.1:{port}/", proc=proc)
        process = psutil.Process(proc.pid)
        cpu = sum(process.cpu_times()[:2])
        torch_loaded = "libtorch" in Path(f"/proc/{proc.pid}/maps").read_text()
        time.sleep(idle_s / 2)  # let start-up's last work (threads, the first poll) settle
        settled = sum(process.cpu_times()[:2])
        time.sleep(idle_s)
        idle_cpu = (sum(process.cpu_times()[:2]) - settled) / idle_s * 1000 if idle_s else 0.0
        rss = process.memory_info().rss / MIB
    finally:
        stop_process(proc)
    return Start(ready - started, cpu, rss, idle_cpu, torch_loaded)


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    bare = Path(tempfile.mkdtemp(prefix="hfchat-bench-")) / "bare.py"
    bare.write_text(BARE)
    unused = f"http://127.0.0.1:{free_port()}"  # never called during start-up or idle
    app_env = base_env(HFCHAT_BACKEND="endpoint", HFCHAT_ENDPOINT_URL=unused)
    idle_s = 0.5 if cfg.quick else 5.0
    sides = [
        lambda: _start(["app.py"], app_env, idle_s),
        lambda: _start([str(TEMPLATE), "--base-url", unused], template_env(), idle_s),
        lambda: _start([str(bare)], base_env(), idle_s),
    ]
    if cfg.quick:
        sides = sides[:2]  # checks the script runs, in CI: the bare app adds nothing to check
    else:
        for side in sides:  # warm the OS file cache for all three, unmeasured
            side()
    results, loads = rotated(cfg.runs, *sides)
    a, b, c = results[0], results[1], results[2] if len(results) > 2 else []
    load = Stats.of(loads)

    def col(starts: list[Start], attr: str) -> Stats | None:
        return Stats.of([getattr(s, attr) for s in starts]) if starts else None

    def ratio(x: list[Start], y: list[Start], attr: str) -> Stats | None:
        return ratios([getattr(s, attr) for s in x], [getattr(s, attr) for s in y]) if y else None

    def median(starts: list[Start], attr: str) -> str:
        stats = col(starts, attr)
        return f"{stats.median:.2f}" if stats else "–"

    start_b, start_c = ratio(a, b, "seconds"), ratio(a, c, "seconds")
    rss_a, rss_b = col(a, "rss_mib"), col(b, "rss_mib")
    over = Stats.of([x.rss_mib - y.rss_mib for x, y in zip(a, b, strict=True)])
    torch_free = not any(s.torch for s in a)
    bench = "6. Cold start"
    return [
        Row(bench, "spawn to first HTTP 200", col(a, "seconds"), col(b, "seconds"), "s", start_b, "A/B ≤ 1.1×",
            at_most(start_b, 1.1), "A app.py (endpoint default), B the template, C bare gr.ChatInterface; "
            f"CPU-seconds to start A {median(a, 'cpu_s')}, B {median(b, 'cpu_s')}, "
            f"C {median(c, 'cpu_s')}", c=col(c, "seconds"), ratio_c=start_c, load=load,
            too_small=start_b is None),
        Row(bench, f"idle RSS after {idle_s * 1.5:g} s", rss_a, rss_b, "MiB", ratio(a, b, "rss_mib"), "A ≤ B + 20 MiB",
            over.median <= 20, f"A − B: {over.show('MiB')}", c=col(c, "rss_mib"), ratio_c=ratio(a, c, "rss_mib"),
            load=load),
        Row(bench, "idle CPU, no visitor", col(a, "idle_cpu_ms_per_s"), col(b, "idle_cpu_ms_per_s"), "ms/s",
            note=f"CPU per second over {idle_s:g} s idle, from {idle_s / 2:g} s after the first 200 "
            "(Gradio's queue poll)", c=col(c, "idle_cpu_ms_per_s"),
            load=load),
        Row(bench, "torch imported at start-up", goal="no", met=torch_free,
            note="no: libtorch never mapped in the app process" if torch_free else "yes: libtorch was mapped"),
    ]  # fmt: skip
