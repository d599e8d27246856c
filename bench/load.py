"""Load and memory tests for a public demo; writes JSON and Markdown into bench/results/.

`python bench/load.py sessions`: N concurrent gradio_client sessions x T turns against the
app (a subprocess, as deployed) backed by a real `transformers serve` on a tiny model,
behind a recording proxy. Each session writes a unique marker into its system prompt and
messages; a request that carries another session's marker, or a history that is not the
session's own turns in order, is crosstalk. Reports errors, time to first token (p50/p95,
queue wait included), turns completed and lost, crosstalk, and the app's peak RSS.

`python bench/load.py memory`: T turns through the local backend in-process with the cache
bounded (some turns switch models, so the cache evicts; some are stopped midway), sampling
RSS and the live `hfchat-generate` threads. Memory must stay flat and no thread may stay.

Targets: 0 errors, 0 crosstalk, 0 lost turns; RSS growth after warm-up within 5%; 0 threads.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: import the app and the test fixtures
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from hfchat.messages import MessageKind, content_text, message_kind  # noqa: E402
from hfchat.reply import answer_text  # noqa: E402
from hfchat.testing.servers import RecordingProxy, TransformersServe, free_port  # noqa: E402
from hfchat.testing.tiny_models import build_all  # noqa: E402
from hfchat.updates import Failed  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_MODELS = ROOT / ".pytest_cache" / "d" / "tiny-models"


def failed(update: Any) -> bool:
    """Whether a reply ended in a failure: a view from `ChatService.respond`, or `/chat`'s messages."""
    return any(
        isinstance(part, Failed) or (isinstance(part, dict) and message_kind(part) is MessageKind.FAILED)
        for part in update or ()
    )


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class PeakRss:
    """Samples a process's RSS (with its children) in a thread; `peak` in bytes."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.process = psutil.Process(pid)
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _rss(self) -> int:
        procs = [self.process, *self.process.children(recursive=True)]
        total = 0
        for p in procs:
            with suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak = max(self.peak, self._rss())
            except psutil.NoSuchProcess:
                return

    def __enter__(self) -> PeakRss:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextmanager
def app_process(endpoint_url: str, *flags: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """`python app.py` on a free port, as deployed; yields its URL, process and log file."""
    port = free_port()
    log = RESULTS / ".load-app.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "app.py", "--port", str(port), "--backend", "endpoint", "--endpoint-url", endpoint_url]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen([*args, *flags], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited during start-up:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError(f"the app did not start:\n{log.read_text()[-3000:]}")
        yield url, proc, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


@dataclass
class Turn:
    session: int
    turn: int
    ok: bool
    ttft_s: float | None
    total_s: float
    error: str = ""


@dataclass
class SessionsReport:
    sessions: int
    turns_per_session: int
    concurrency: int
    max_new_tokens: int
    turns_expected: int
    turns_completed: int
    turns_lost: int
    errors: int
    error_samples: list[str]
    crosstalk: int
    crosstalk_samples: list[str]
    ttft_p50_s: float | None
    ttft_p95_s: float | None
    turn_p50_s: float | None
    turn_p95_s: float | None
    wall_s: float
    app_peak_rss_mb: float
    app_rss_at_start_mb: float
    server_requests: int
    passed: bool = False
    turn_log: list[dict[str, Any]] = field(default_factory=list)


def _marker(session: int, run: str) -> str:
    return f"S{session:02d}Q{run}"


def _one_session(
    url: str, index: int, turns: int, run: str, max_new_tokens: int, start: threading.Barrier
) -> list[Turn]:
    from gradio_client import Client

    marker = _marker(index, run)
    done: list[Turn] = []
    try:
        # A busy app answers the client's set-up calls slowly; httpx's 5 s default is too short.
        client = Client(url, verbose=False, httpx_kwargs={"timeout": 120})
    except Exception as exc:  # noqa: BLE001 - a visitor who cannot even connect is counted, not fatal
        error = f"connecting: {type(exc).__name__}: {exc}"[:300]
        return [Turn(index, t, False, None, 0.0, error) for t in range(turns)]
    finally:
        start.wait(timeout=600)  # every session starts its first turn together
    for t in range(turns):
        began = time.perf_counter()
        first: float | None = None
        try:
            job = client.submit(
                message={"text": f"{marker} turn {t}: say something", "files": []},
                system_prompt=f"You are session {marker}.",
                max_new_tokens=max_new_tokens,
                seed=index,
                api_name="/chat",
            )
            for update in job:
                if first is None and answer_text(update).strip():  # the loading notice is not text
                    first = time.perf_counter() - began
            result = job.result(timeout=600)
            reply = answer_text(result)
            ok = bool(reply.strip()) and not failed(result)
            error = "" if ok else reply[:300]
        except Exception as exc:  # noqa: BLE001 - a load test counts every failure, whatever it is
            ok, error = False, f"{type(exc).__name__}: {exc}"[:300]
        done.append(Turn(index, t, ok, first, time.perf_counter() - began, error))
    return done


def crosstalk_in(bodies: list[dict[str, Any]], sessions: int, run: str) -> tuple[list[str], dict[int, int]]:
    """Requests carrying another session's data, or a history that is not the session's own
    turns in order; and how many requests each session's data reached the server in."""
    markers = {i: _marker(i, run) for i in range(sessions)}
    found: list[str] = []
    per_session: dict[int, int] = {}
    for n, body in enumerate(bodies):
        text = json.dumps(body.get("messages", []))
        owners = [i for i, m in markers.items() if m in text]
        if len(owners) != 1:
            found.append(f"request {n} carries markers of sessions {owners}")
            continue
        i = owners[0]
        per_session[i] = per_session.get(i, 0) + 1
        messages = body["messages"]
        if messages[0] != {"role": "system", "content": f"You are session {markers[i]}."}:
            found.append(f"request {n} (session {i}) has system prompt {messages[0]!r}")
        users = [content_text(m["content"]) for m in messages if m["role"] == "user"]
        expected = [f"{markers[i]} turn {t}: say something" for t in range(len(users))]
        if users != expected:
            found.append(f"request {n} (session {i}) history {users} is not its own turns in order")
        if body.get("seed") != i:
            found.append(f"request {n} (session {i}) has seed {body.get('seed')}")
    return found, per_session


def run_sessions(
    models: Path, sessions: int, turns: int, max_new_tokens: int, concurrency: int | None
) -> SessionsReport:
    tiny = build_all(models)
    run = uuid.uuid4().hex[:6]
    flags = ["--max-new-tokens", str(max_new_tokens)]
    if concurrency:
        flags += ["--concurrency", str(concurrency)]
    with TransformersServe(tiny["chat"]) as serve, RecordingProxy(serve.url) as proxy:
        with app_process(proxy.url, *flags) as (url, proc, _log), PeakRss(proc.pid) as rss:
            at_start = rss.peak
            start = threading.Barrier(sessions)
            began = time.perf_counter()
            with ThreadPoolExecutor(sessions) as pool:
                futures = [
                    pool.submit(_one_session, url, i, turns, run, max_new_tokens, start) for i in range(sessions)
                ]
                results = [turn for f in futures for turn in f.result()]
            wall = time.perf_counter() - began
        bodies = [r.json for r in proxy.requests if r.path.endswith("/chat/completions") and isinstance(r.json, dict)]
    found, per_session = crosstalk_in(bodies, sessions, run)
    completed = [t for t in results if t.ok]
    errors = [t for t in results if not t.ok]
    lost = sessions * turns - len(completed)
    found += [
        f"session {i} reached the server {n} times for {turns} turns" for i, n in per_session.items() if n != turns
    ]
    ttfts = [t.ttft_s for t in completed if t.ttft_s is not None]
    totals = [t.total_s for t in completed]
    from hfchat.cli import parse_options

    chat_limit = parse_options(flags, {}).concurrency  # what the app ran with
    report = SessionsReport(
        sessions=sessions,
        turns_per_session=turns,
        concurrency=chat_limit,
        max_new_tokens=max_new_tokens,
        turns_expected=sessions * turns,
        turns_completed=len(completed),
        turns_lost=lost,
        errors=len(errors),
        error_samples=sorted({t.error for t in errors})[:5],
        crosstalk=len(found),
        crosstalk_samples=found[:5],
        ttft_p50_s=percentile(ttfts, 50),
        ttft_p95_s=percentile(ttfts, 95),
        turn_p50_s=percentile(totals, 50),
        turn_p95_s=percentile(totals, 95),
        wall_s=wall,
        app_peak_rss_mb=rss.peak / 2**20,
        app_rss_at_start_mb=at_start / 2**20,
        server_requests=len(bodies),
        turn_log=[asdict(t) for t in results],
    )
    report.passed = report.errors == 0 and report.crosstalk == 0 and report.turns_lost == 0
    return report


@dataclass
class MemoryReport:
    turns: int
    cache_size: int
    max_new_tokens: int
    warmup_turns: int
    rss_after_warmup_mb: float
    rss_end_mb: float
    rss_max_mb: float
    growth_mb: float
    growth_pct: float
    slope_mb_per_100_turns: float
    stopped_turns: int
    model_switches: int
    evictions: int
    errors: int
    generate_threads_at_end: int
    threads_at_start: int
    threads_at_end: int
    wall_s: float
    passed: bool = False
    samples: list[tuple[int, float]] = field(default_factory=list)


def _generate_threads() -> int:
    from hfchat.backends.local import GENERATE_THREAD_NAME

    return sum(1 for t in threading.enumerate() if t.name == GENERATE_THREAD_NAME)


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of RSS (MB) per turn."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def run_memory(models: Path, turns: int, cache_size: int, max_new_tokens: int, every: int = 10) -> MemoryReport:
    """Turns through ChatService on the local backend; every 10th turn uses another model
    (so the bounded cache evicts) and every 7th is stopped after its first words."""
    from hfchat.cache import ModelCache
    from hfchat.chat import ChatService
    from hfchat.cli import parse_options

    tiny = build_all(models)
    others = [tiny["plain"], tiny["nosystem"]]
    options = parse_options(["--backend", "local", "--model", str(tiny["chat"]), "--device", "cpu"], {})
    service = ChatService(cache=ModelCache(cache_size))
    base = {
        "backend": "local", "provider": None, "endpoint_url": "", "served_model": "", "task": "text-generation",
        "system_prompt": "Be brief.", "max_new_tokens": max_new_tokens, "do_sample": True, "temperature": 0.8,
        "top_p": 0.95, "top_k": 50, "repetition_penalty": 1.0, "frequency_penalty": 0.0, "seed": -1,
        "load_in_4bit": False, "quant_type": options.sidebar.quant_type, "compute_dtype": options.sidebar.compute_dtype,
        "double_quant": True, "device": "cpu",
    }  # fmt: skip
    process = psutil.Process()
    threads_at_start = threading.active_count()
    warmup = min(max(turns // 5, 10), turns)
    samples: list[tuple[int, float]] = []
    history: list[dict[str, Any]] = []
    errors = stopped = switches = 0
    began = time.perf_counter()
    for i in range(1, turns + 1):
        model = str(tiny["chat"])
        if i % 10 == 0:
            model = str(others[(i // 10) % 2])
            switches += 1
        replies = service.respond(f"Turn {i}: tell me about the river.", history, {**base, "model": model}, None)
        view: Any = ()
        if i % 7 == 0:  # Stop after the first words: the generator is closed mid-reply
            for view in replies:
                if answer_text(view):
                    break
            replies.close()  # type: ignore[attr-defined]
            stopped += 1
        else:
            for update in replies:
                view = update
        last = answer_text(view)
        if failed(view):
            errors += 1
        history = [
            *history[-8:],
            {"role": "user", "content": f"Turn {i}"},
            {"role": "assistant", "content": last or "ok"},
        ]
        if i % every == 0 or i == turns:
            gc.collect()
            samples.append((i, process.memory_info().rss / 2**20))
    deadline = time.monotonic() + 15
    while _generate_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    wall = time.perf_counter() - began
    after = [s for s in samples if s[0] >= warmup] or samples
    start_mb, end_mb = after[0][1], after[-1][1]
    report = MemoryReport(
        turns=turns,
        cache_size=cache_size,
        max_new_tokens=max_new_tokens,
        warmup_turns=warmup,
        rss_after_warmup_mb=start_mb,
        rss_end_mb=end_mb,
        rss_max_mb=max(s[1] for s in after),
        growth_mb=end_mb - start_mb,
        growth_pct=100 * (end_mb - start_mb) / start_mb,
        slope_mb_per_100_turns=100 * _slope(after),
        stopped_turns=stopped,
        model_switches=switches,
        evictions=service.cache.stats.evictions,
        errors=errors,
        generate_threads_at_end=_generate_threads(),
        threads_at_start=threads_at_start,
        threads_at_end=threading.active_count(),
        wall_s=wall,
        samples=samples,
    )
    report.passed = report.generate_threads_at_end == 0 and report.errors == 0 and report.growth_pct <= 5.0
    return report


def _fmt(value: Any, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}{unit}"
    return f"{value}{unit}"


def sessions_markdown(r: SessionsReport) -> str:
    rows = [
        ("Sessions x turns", f"{r.sessions} x {r.turns_per_session} ({r.turns_expected} turns)"),
        ("Chat concurrency limit", _fmt(r.concurrency)),
        ("max_new_tokens", _fmt(r.max_new_tokens)),
        ("Turns completed", f"{r.turns_completed} / {r.turns_expected}"),
        ("Turns lost", _fmt(r.turns_lost)),
        ("Errors", _fmt(r.errors)),
        ("Crosstalk found", _fmt(r.crosstalk)),
        ("Time to first token p50 / p95", f"{_fmt(r.ttft_p50_s, ' s')} / {_fmt(r.ttft_p95_s, ' s')}"),
        ("Whole turn p50 / p95", f"{_fmt(r.turn_p50_s, ' s')} / {_fmt(r.turn_p95_s, ' s')}"),
        ("Wall time", _fmt(r.wall_s, " s")),
        ("App RSS at start / peak", f"{r.app_rss_at_start_mb:.0f} MB / {r.app_peak_rss_mb:.0f} MB"),
        ("Requests the server got", _fmt(r.server_requests)),
        ("Target (0 errors, 0 crosstalk, 0 lost)", "met" if r.passed else "NOT met"),
    ]
    lines = [
        "# Load: concurrent sessions through gradio_client",
        "",
        "The app as deployed (`python app.py`, a subprocess) on the custom-endpoint backend, in front of a real "
        "`transformers serve` on a tiny model behind a recording proxy. Time to first token includes the wait "
        "in the app's queue.",
        "",
        "| Figure | Value |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
    ]
    if r.error_samples:
        lines += ["", "Errors seen:", *[f"- `{e}`" for e in r.error_samples]]
    if r.crosstalk_samples:
        lines += ["", "Crosstalk seen:", *[f"- {c}" for c in r.crosstalk_samples]]
    return "\n".join(lines) + "\n"


def memory_markdown(r: MemoryReport) -> str:
    rows = [
        ("Turns (local backend, in-process)", _fmt(r.turns)),
        ("Cache size / evictions", f"{r.cache_size} / {r.evictions}"),
        ("Model switches / stopped turns", f"{r.model_switches} / {r.stopped_turns}"),
        (f"RSS after warm-up (turn {r.warmup_turns}) / end / max",
         f"{r.rss_after_warmup_mb:.1f} / {r.rss_end_mb:.1f} / {r.rss_max_mb:.1f} MB"),
        ("Growth after warm-up", f"{r.growth_mb:+.1f} MB ({r.growth_pct:+.2f}%)"),
        ("Trend (least squares)", f"{r.slope_mb_per_100_turns:+.2f} MB per 100 turns"),
        ("Live hfchat-generate threads at end", _fmt(r.generate_threads_at_end)),
        ("Threads at start / end", f"{r.threads_at_start} / {r.threads_at_end}"),
        ("Errors", _fmt(r.errors)),
        ("Wall time", _fmt(r.wall_s, " s")),
        ("Target (growth within 5%, 0 threads, 0 errors)", "met" if r.passed else "NOT met"),
    ]  # fmt: skip
    return (
        "\n".join(
            [
                "# Memory over many local turns",
                "",
                "Every 10th turn switches to another tiny model, so the bounded cache evicts; every 7th turn is "
                "stopped after its first words. RSS is sampled after `gc.collect()` every 10 turns.",
                "",
                "| Figure | Value |",
                "|---|---|",
                *[f"| {a} | {b} |" for a, b in rows],
            ]
        )
        + "\n"
    )


def write(name: str, report: Any, markdown: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(asdict(report), indent=2) + "\n")
    (out / f"{name}.md").write_text(markdown)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/load.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, default=Path(os.environ.get("HFCHAT_TINY_MODELS", DEFAULT_MODELS)))
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--max-new-tokens", type=int, default=16)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("sessions", help="concurrent gradio_client sessions against the app")
    s.add_argument("--sessions", type=int, default=32)
    s.add_argument("--turns", type=int, default=5)
    s.add_argument("--concurrency", type=int, default=None, help="the app's --concurrency (default: the app's)")
    m = sub.add_parser("memory", help="RSS over many local turns with the cache bounded")
    m.add_argument("--turns", type=int, default=500)
    m.add_argument("--cache-size", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads here and in the server (default 1)")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the server; on a shared 2-core
    # machine one thread per process generates faster than two fighting over the cores
    if args.mode == "sessions":
        report: Any = run_sessions(args.models, args.sessions, args.turns, args.max_new_tokens, args.concurrency)
        name, md = "load", sessions_markdown(report)
    else:
        report = run_memory(args.models, args.turns, args.cache_size, args.max_new_tokens)
        name, md = "load-memory", memory_markdown(report)
    write(name, report, md, args.out)
    print(md)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
