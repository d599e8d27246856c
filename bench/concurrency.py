"""3. Concurrency: chat turns per second with 16 sessions at once vs one, to an endpoint held
at 100 ms, for hfchat (`python app.py`, its defaults), the Chatbot Space template as shipped
(`gr.ChatInterface`'s concurrency limit 1) and the template with limit 32.

Each session is a browser tab (`bench/protocol.py`: the page's chain of events for each turn,
queue/join + queue/data), so the apps do the work they do for a visitor; each turn is a
one-question conversation on a new session hash (no page load), so history never grows. The endpoint is a
loopback OpenAI-compatible server (hfchat/testing/servers.py `Recorder`) that waits 100 ms
before each answer, then streams a short reply: what is measured is the app, not a model.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import (
    CPU_TICK_S,
    TEMPLATE,
    BenchConfig,
    Notes,
    Row,
    Stats,
    app_process,
    at_least,
    ratios,
    template_env,
)
from bench.protocol import PageApp, PageSession, cpu_seconds
from hfchat.testing.servers import Recorder, chat_route_handler, free_port, json_response

NAME = "concurrency"
SESSIONS = 16
LATENCY_S = 0.1
REPLY = "A short reply of about a dozen words, streamed word by word to the app."
MODEL = "bench-model"


def _latency_server() -> Recorder:
    server = Recorder(
        {
            ("GET", "/v1/models"): json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]}),
            ("POST", "/v1/chat/completions"): chat_route_handler(REPLY),
        }
    )
    server.delay(LATENCY_S)  # every request, until closed
    return server


def _turns(page: PageSession, n: int) -> None:
    """`n` one-question conversations: each on a new session (`renew`), so that history
    never grows from run to run and every app pays for a new session as often."""
    for i in range(n):
        page.renew()
        turn = page.turn(f"question {i}")
        if REPLY.split()[0] not in turn.text:
            raise RuntimeError(f"unexpected reply through the app: {turn.text[:200]!r}")


def _rate(pages: Sequence[PageSession], turns_each: int) -> float:
    """Turns per second with these sessions running at once."""
    errors: list[BaseException] = []

    def session(page: PageSession) -> None:
        try:
            _turns(page, turns_each)
        except Exception as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(p,)) for p in pages]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(pages) * turns_each / elapsed


def _measure(
    app: PageApp, sessions: int, runs: int, single: int, multi: int
) -> tuple[list[float], list[float], float, list[float]]:
    """Turns/s with 16 sessions and with 1, run by run (alternating which goes first), the
    app's CPU-seconds per turn, and the load average at each run."""
    pages = [PageSession(app) for _ in range(sessions)]
    _rate(pages[:2], 1)  # warm: clients built and cached
    assert app.pid is not None
    cpu_before = cpu_seconds(app.pid)
    many: list[float] = []
    one: list[float] = []
    loads: list[float] = []
    for i in range(runs):
        loads.append(os.getloadavg()[0])
        if i % 2 == 0:
            many.append(_rate(pages, multi))
            one.append(_rate(pages[:1], single))
        else:
            one.append(_rate(pages[:1], single))
            many.append(_rate(pages, multi))
    turns = runs * (sessions * multi + single)
    cpu_per_turn = (cpu_seconds(app.pid) - cpu_before) / turns
    for page in pages:
        page.close()
    return many, one, cpu_per_turn, loads


def _apps(url: str) -> list[tuple[str, list[str], dict[str, str] | None, Path | None, float | None]]:
    """(label, args, env, script, goal) for each app measured."""
    template = ["--base-url", url, "--model", MODEL]
    return [
        ("hfchat", ["--backend", "endpoint", "--endpoint-url", url], None, None, 8.0),
        ("template as shipped (limit 1)", template, template_env(), TEMPLATE, None),
        ("template with limit 32", [*template, "--concurrency-limit", "32"], template_env(), TEMPLATE, None),
    ]


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    single_turns, multi_turns = (2, 1) if cfg.quick else (8, 4)
    sessions = 4 if cfg.quick else SESSIONS  # quick: checks the script runs, in CI
    bench = "3. Concurrency"
    rows: list[Row] = []
    with _latency_server() as server:
        apps = _apps(server.url)
        for label, args, env, script, goal in apps[:2] if cfg.quick else apps:
            port = free_port()
            with app_process(args, port, env=env, script=script) as url:
                app = PageApp(url, url.pid, box="chat-box" if script is None else None)
                many, one, cpu_per_turn, loads = _measure(app, sessions, cfg.runs, single_turns, multi_turns)
            ratio = ratios(many, one)
            ceiling = (
                f"{(os.cpu_count() or 1) / cpu_per_turn:.0f}" if cpu_per_turn > CPU_TICK_S / 10 else "(too few ticks)"
            )
            rows.append(
                Row(bench, f"{sessions} sessions vs 1, {label}", Stats.of(many), Stats.of(one), "turns/s", ratio,
                    f"≥ {goal:g}×" if goal else "", at_least(ratio, goal) if goal else None,
                    f"endpoint {LATENCY_S * 1000:.0f} ms; A {sessions} sessions, B 1; app CPU "
                    f"{cpu_per_turn * 1000:.0f} ms per turn, so {os.cpu_count()} cores could serve at most "
                    f"{ceiling} turns/s", load=Stats.of(loads), too_small=ratio is None)
            )  # fmt: skip
    return rows
