"""`python -m bench.bigreply`: the app's memory when servers send huge replies (issue 10, break 4).

A loopback endpoint streams a reply that would be `--reply-mb` MB (chunks of `--chunk-kb` KB,
as fast as the app reads, no usage, never a finish reason), and `--sessions` new visitor
sessions (Gradio's REST API, one event at a time) each ask for one reply at once. The app's RSS (psutil) is sampled
throughout: at start, after a warm-up turn, its peak, when the replies are in, and
`--settle` seconds after the clients have gone. Also reported: the characters each reply
kept, and how much of each huge reply the server managed to send before the app hung up.

Not part of the test suite, nor of `python -m bench`. `--app-root DIR` runs the app from
another checkout (e.g. `git archive main | tar -x -C /tmp/before`) for a before/after
comparison. Writes bench/results/bigreply.json unless `--out` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

from bench.common import base_env, chat_over_rest, reply_text, stop_process, wait_http_200  # noqa: E402
from hfchat.testing.servers import RecordedRequest, Recorder, Response, free_port, sse_response  # noqa: E402


class HugeReplies:
    """The endpoint: every chat request gets `total` bytes of text in `chunk`-byte SSE events."""

    def __init__(self, total: int, chunk: int) -> None:
        self.total, self.chunk = total, chunk
        self.sent: list[int] = []  # bytes of text sent per reply, recorded when its stream ends
        self._lock = threading.Lock()

    def handle(self, req: RecordedRequest) -> Response:
        return sse_response(self._events())

    def _events(self) -> Iterator[str]:
        piece = "x" * self.chunk
        event = "data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}) + "\n\n"
        sent = 0
        try:
            while sent < self.total:
                sent += self.chunk
                yield event
            yield "data: [DONE]\n\n"
        finally:
            with self._lock:
                self.sent.append(sent)


def rss_mb(proc: psutil.Process) -> float:
    return proc.memory_info().rss / 2**20


class Sampler:
    """Samples a process's RSS every `every` seconds in a thread; `peak` is the largest seen."""

    def __init__(self, proc: psutil.Process, every: float = 0.1) -> None:
        self.proc, self.every, self.peak = proc, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.peak = max(self.peak, rss_mb(self.proc))
            except psutil.Error:
                return

    def __enter__(self) -> Sampler:
        self.peak = rss_mb(self.proc)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def one_session(url: str, max_new_tokens: int) -> int:
    """One new visitor asks once; returns how many characters the reply it got holds.

    Plain httpx on Gradio's REST API, reading one event at a time: gradio_client keeps every
    intermediate update, which for a 100 MB reply is gigabytes in this process."""
    with httpx.Client(base_url=url, timeout=600) as http:
        params = http.get("gradio_api/info").json()["named_endpoints"]["/chat"]["parameters"]
        values = {p["parameter_name"]: p["parameter_default"] for p in params[1:]}
        values["max_new_tokens"] = max_new_tokens
        output = chat_over_rest(http, [{"text": "Say a lot.", "files": []}, *values.values()])
    return len(reply_text(output))


def run(args: argparse.Namespace) -> dict[str, Any]:
    server = HugeReplies(int(args.reply_mb * 2**20), args.chunk_kb * 1024)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="hfchat-bigreply-")) / "app.log"
    with Recorder({("POST", "/v1/chat/completions"): server.handle}) as endpoint, log.open("wb") as out:
        flags = ["--backend", "endpoint", "--endpoint-url", endpoint.url, "--port", str(port)]
        flags += ["--concurrency", str(max(args.sessions, 1))]
        app = subprocess.Popen(
            [sys.executable, "app.py", *flags],
            cwd=args.app_root,
            env=base_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}/"
            wait_http_200(url, proc=app)
            proc = psutil.Process(app.pid)
            figures: dict[str, Any] = {"start_mb": rss_mb(proc)}
            server.total, warm_total = 1024, server.total  # warm-up: a small reply, so imports are done
            one_session(url, args.max_new_tokens)
            server.total = warm_total
            server.sent.clear()
            figures["warm_mb"] = rss_mb(proc)
            began = time.perf_counter()
            with Sampler(proc) as sampler, ThreadPoolExecutor(args.sessions) as pool:
                kept = list(pool.map(lambda _: one_session(url, args.max_new_tokens), range(args.sessions)))
                figures["replies_in_mb"] = rss_mb(proc)
            figures["seconds"] = round(time.perf_counter() - began, 2)
            figures["peak_mb"] = sampler.peak
            time.sleep(args.settle)
            figures["settled_mb"] = rss_mb(proc)
            figures["kept_chars"] = kept
            figures["server_sent_mb"] = [round(s / 2**20, 2) for s in server.sent]
        finally:
            stop_process(app)
    figures = {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}
    figures |= {
        "sessions": args.sessions,
        "reply_mb": args.reply_mb,
        "chunk_kb": args.chunk_kb,
        "max_new_tokens": args.max_new_tokens,
        "app_root": str(args.app_root),
    }
    figures["growth_mb"] = round(figures["settled_mb"] - figures["warm_mb"], 1)
    return figures


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bigreply", description=__doc__)
    p.add_argument("--sessions", type=int, default=4, help="new gradio_client sessions at once (default 4)")
    p.add_argument("--reply-mb", type=float, default=100.0, help="size each reply would be, in MB (default 100)")
    p.add_argument("--chunk-kb", type=int, default=1024, help="text per SSE event, in KB (default 1024)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="what each visitor asks for (default 512)")
    p.add_argument("--settle", type=float, default=20.0, help="seconds to wait after the clients left (default 20)")
    p.add_argument("--app-root", type=Path, default=ROOT, help="checkout whose app.py runs (default this one)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bigreply.json")
    args = p.parse_args(argv)
    figures = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
