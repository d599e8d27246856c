"""3. Concurrency: aggregate chat turns per second with 16 concurrent sessions vs one,
through the app (`python app.py`, its REST API) to an endpoint held at 100 ms round trip.

The endpoint is a loopback OpenAI-compatible server (hfchat/testing/servers.py `Recorder`)
that waits 100 ms before each answer, then streams a short reply: the app's remote path is
what is measured, not a model's compute. The same is also run with `--concurrency 1`
(Gradio's default limit) to show what the per-backend choice buys.
"""

from __future__ import annotations

import os
import threading
import time

from bench.common import (
    CPU_TICK_S,
    AppURL,
    BenchConfig,
    Notes,
    Row,
    Stats,
    app_process,
    at_least,
    chat_over_rest,
    interleaved,
    ratios,
    reply_text,
)
from hfchat.testing.servers import Recorder, chat_route_handler, free_port, json_response

NAME = "concurrency"
SESSIONS = 16
LATENCY_S = 0.1
REPLY = "A short reply of about a dozen words, streamed word by word to the app."


def _latency_server() -> Recorder:
    server = Recorder(
        {
            ("GET", "/v1/models"): json_response(
                {"object": "list", "data": [{"id": "bench-model", "object": "model"}]}
            ),
            ("POST", "/v1/chat/completions"): chat_route_handler(REPLY),
        }
    )
    server.delay(LATENCY_S)  # every request, until closed
    return server


class Session:
    """One visitor on Gradio's REST API (`/gradio_api/call/chat`), with its own connection.

    gradio_client spends about twice the app's own CPU per turn (threads, polling), which
    on a 2-core machine would measure the client; plain httpx keeps the client light.
    """

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.http = httpx.Client(base_url=url, timeout=120)
        params = self.http.get("gradio_api/info").json()["named_endpoints"]["/chat"]["parameters"]
        self.defaults = [p["parameter_default"] for p in params[1:]]  # every setting as the flags set it

    def turn(self, text: str) -> str:
        return reply_text(chat_over_rest(self.http, [{"text": text, "files": []}, *self.defaults]))


def _turns(session: Session, n: int) -> None:
    for i in range(n):
        reply = session.turn(f"question {i}")
        if REPLY.split()[0] not in reply:
            raise RuntimeError(f"unexpected reply through the app: {reply[:200]!r}")


def _rate(clients: list[Session], turns_each: int) -> float:
    """Turns per second with these sessions running at once."""
    errors: list[BaseException] = []

    def session(client: Session) -> None:
        try:
            _turns(client, turns_each)
        except Exception as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(c,)) for c in clients]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(clients) * turns_each / elapsed


def _measure(url: AppURL, runs: int, single_turns: int, multi_turns: int) -> tuple[list[float], list[float], float]:
    """Turns/s with 16 sessions and with 1, run by run, and the app's CPU-seconds per turn."""
    import psutil

    clients = [Session(url) for _ in range(SESSIONS)]
    _rate(clients, 1)  # warm: the app builds and caches its endpoint client
    app = psutil.Process(url.pid)
    cpu_before = sum(app.cpu_times()[:2])
    multi, single = interleaved(runs, lambda: _rate(clients, multi_turns), lambda: _rate(clients[:1], single_turns))
    turns = runs * (SESSIONS * multi_turns + single_turns)
    return multi, single, (sum(app.cpu_times()[:2]) - cpu_before) / turns


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    single_turns, multi_turns = (2, 1) if cfg.quick else (8, 4)
    bench = "3. Concurrency"
    rows: list[Row] = []
    with _latency_server() as server:
        for label, extra, goal in (("default limits", [], 12.0), ("--concurrency 1", ["--concurrency", "1"], None)):
            args = ["--backend", "endpoint", "--endpoint-url", server.url, *extra]
            with app_process(args, free_port()) as url:
                multi, single, cpu_per_turn = _measure(url, cfg.runs, single_turns, multi_turns)
            ratio = ratios(multi, single)
            # CPU time is counted in ticks: a quick run's per-turn figure can read 0.
            ceiling = (
                f"{(os.cpu_count() or 1) / cpu_per_turn:.0f}" if cpu_per_turn > CPU_TICK_S / 10 else "(too few ticks)"
            )
            rows.append(
                Row(bench, f"{SESSIONS} sessions vs 1, {label}", Stats.of(multi), Stats.of(single), "turns/s", ratio,
                    f"≥ {goal:g}×" if goal else "", at_least(ratio, goal) if goal else None,
                    f"endpoint {LATENCY_S * 1000:.0f} ms round trip; A {SESSIONS} sessions, B 1 session; "
                    f"the app used {cpu_per_turn * 1000:.0f} ms CPU per turn, so all {os.cpu_count()} cores "
                    f"could serve at most {ceiling} turns/s", too_small=ratio is None)
            )  # fmt: skip
            if cfg.quick:
                break  # one app start is enough to check the script runs
    return rows
