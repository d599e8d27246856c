"""What every benchmark shares: settings, side-by-side runs, statistics, result files, the app.

Figures are ratios of two things measured in the same run, interleaved (A, B, then B, A),
because these machines are shared and noisy; each is reported as the median of the runs
with its min and max.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class BenchConfig:
    """How big and how long: `quick` is the smoke test's tiny mode, not a measurement."""

    quick: bool = False
    runs: int = 7
    out: Path = RESULTS
    models: Path = ROOT / "bench" / ".models"

    @property
    def size(self) -> str:
        return "tiny" if self.quick else "bench"


@dataclass(frozen=True)
class Stats:
    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self, unit: str = "", digits: int = 3) -> str:
        u = f" {unit}" if unit else ""
        if self.min == self.max:
            return f"{_num(self.median, digits)}{u}"
        return f"{_num(self.median, digits)}{u} ({_num(self.min, digits)}–{_num(self.max, digits)})"


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


@dataclass(frozen=True)
class Row:
    """One line of the table: A and B (and C, where there are three sides) side by side,
    the ratios A/B and A/C, the goal, and the load average over the row's runs.

    In the peer benchmarks A is hfchat, B the Chatbot Space template, C the direct client."""

    bench: str
    measure: str
    a: Stats | None = None
    b: Stats | None = None
    unit: str = ""
    ratio: Stats | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""
    device: str = "cpu"
    too_small: bool = False
    """The ratio's denominator was zero or within the clock's resolution (see `ratios`)."""
    c: Stats | None = None
    ratio_c: Stats | None = None
    """A/C, where there is a C."""
    load: Stats | None = None
    """`os.getloadavg()[0]` sampled at each run of the row."""

    def cells(self) -> list[str]:
        met = {True: "yes", False: "**no**", None: "–"}[self.met]
        ratio = self.ratio.show("×") if self.ratio else (TOO_SMALL if self.too_small else "")
        note = self.note
        if self.load is not None:
            note = f"{note}; load {self.load.show(digits=2)}" if note else f"load {self.load.show(digits=2)}"
        return [
            self.bench,
            self.measure,
            self.a.show(self.unit) if self.a else "",
            self.b.show(self.unit) if self.b else "",
            self.c.show(self.unit) if self.c else "",
            ratio,
            self.ratio_c.show("×") if self.ratio_c else "",
            self.goal,
            met,
            note,
        ]


HEADER = ["Benchmark", "Measure", "A", "B", "C", "A/B: median (min–max)", "A/C", "Goal", "Met", "Note"]


def load_line() -> str:
    """The results' header: the machine and its load, so a table is never read without them."""
    m = machine()
    one, five, fifteen = m["load_avg"]
    return f"{m['utc']} UTC, {m['cpus']} CPUs, load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def markdown_table(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |")
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    """Where the figures come from, so a table is never read without its machine."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def write_results(name: str, rows: Sequence[Row], cfg: BenchConfig, extra: Mapping[str, Any] | None = None) -> Path:
    """`<out>/<name>.json` and `<out>/<name>.md`; returns the Markdown path."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "quick": cfg.quick,
        "runs": cfg.runs,
        "machine": machine(),
        "rows": [asdict(r) for r in rows],
        **(extra or {}),
    }
    (cfg.out / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md = cfg.out / f"{name}.md"
    md.write_text(f"{load_line()}\n\n{markdown_table(rows)}")
    return md


def interleaved(runs: int, a: Callable[[], Any], b: Callable[[], Any]) -> tuple[list[Any], list[Any]]:
    """Run A and B `runs` times each, alternating which goes first so drift hits both alike."""
    out_a: list[Any] = []
    out_b: list[Any] = []
    for i in range(runs):
        if i % 2 == 0:
            out_a.append(a())
            out_b.append(b())
        else:
            out_b.append(b())
            out_a.append(a())
    return out_a, out_b


def rotated(runs: int, *sides: Callable[[], Any]) -> tuple[list[list[Any]], list[float]]:
    """Run each side `runs` times, the order rotating (A B C, B C A, C A B, …) so drift hits
    all alike; returns each side's results and the 1-minute load average at each run."""
    out: list[list[Any]] = [[] for _ in sides]
    loads: list[float] = []
    for i in range(runs):
        loads.append(os.getloadavg()[0])
        for k in range(len(sides)):
            j = (i + k) % len(sides)
            out[j].append(sides[j]())
    return out, loads


CPU_TICK_S = 0.01
"""psutil's CPU times advance in 10 ms ticks: a CPU figure that small is not a measurement."""

TOO_SMALL = "too small to measure"


def ratios(a: Sequence[float], b: Sequence[float], floor: float = 0.0) -> Stats | None:
    """Per-run ratios A_i / B_i (each pair ran side by side), or None when any B_i is at or
    below `floor` (zero, or within the resolution of the clock that measured it): such a
    ratio is noise or a division by zero, and is reported as "too small to measure"."""
    if any(y <= floor for y in b):
        return None
    return Stats.of([x / y for x, y in zip(a, b, strict=True)])


def at_most(ratio: Stats | None, goal: float) -> bool | None:
    """Whether a ratio met an "at most" goal; None when it could not be measured."""
    return None if ratio is None else ratio.median <= goal


def at_least(ratio: Stats | None, goal: float) -> bool | None:
    """Whether a ratio met an "at least" goal; None when it could not be measured."""
    return None if ratio is None else ratio.median >= goal


def wait_http_200(url: str, timeout: float = 180.0, proc: subprocess.Popen[bytes] | None = None) -> float:
    """Poll until GET `url` answers 200; returns when (perf_counter) it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:.0f} s")


def base_env(**extra: str) -> dict[str, str]:
    """The environment the app and its competitors start with: offline, no telemetry, no token."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")}
    env.update({"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


class AppURL(str):
    """The app's URL, carrying the pid of its process (for CPU accounting)."""

    pid: int


TEMPLATE = ROOT / "bench" / "peers" / "chatbot_template.py"


def template_env() -> dict[str, str]:
    """The template's environment: `base_env` without HF_HUB_OFFLINE, which makes
    huggingface_hub refuse every URL, loopback included (hfchat registers its endpoint with
    `hfchat.net`; the template has no such hook, and never calls the Hub)."""
    env = base_env()
    env.pop("HF_HUB_OFFLINE", None)
    return env


@dataclass(frozen=True)
class AppSpec:
    """How to start one app: `python SCRIPT ARGS --port PORT` (SCRIPT defaults to app.py)."""

    args: Sequence[str]
    env: Mapping[str, str] | None = None
    script: Path | None = None
    port: int | None = None
    """Default: a free one."""


@contextlib.contextmanager
def app_processes(*specs: AppSpec) -> Iterator[list[AppURL]]:
    """Start every app at once (they import in parallel), yield their URLs once each answers
    200, stop them all at the end."""
    from hfchat.testing.servers import free_port

    started: list[tuple[subprocess.Popen[bytes], AppURL, Path]] = []
    try:
        for spec in specs:
            port = spec.port or free_port()
            log = Path(tempfile.mkdtemp(prefix="hfchat-bench-")) / "app.log"
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, str(spec.script or "app.py"), *spec.args, "--port", str(port)],
                    cwd=ROOT,
                    env=dict(spec.env or base_env()),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            url = AppURL(f"http://127.0.0.1:{port}/")
            url.pid = proc.pid
            started.append((proc, url, log))
        for proc, url, log in started:
            try:
                wait_http_200(url, proc=proc)
            except (RuntimeError, TimeoutError) as exc:
                raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')[-3000:]}") from None
        yield [url for _, url, _ in started]
    finally:
        for proc, _, _ in started:
            stop_process(proc)


@contextlib.contextmanager
def app_process(
    args: Sequence[str], port: int | None = None, env: Mapping[str, str] | None = None, script: Path | None = None
) -> Iterator[AppURL]:
    """`python app.py ARGS --port PORT` (or another `script`) as a subprocess; yields its URL
    once it answers 200."""
    with app_processes(AppSpec(args, env, script, port)) as (url,):
        yield url


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def reply_text(output: Any) -> str:
    """The reply text in what `/chat` returns (chat messages) or the chat function yields (a
    view of typed updates): the answer, with any notice or failure (`hfchat.reply.answer_text`)."""
    from hfchat.reply import answer_text

    if isinstance(output, str):
        return output
    return answer_text([dict(output)] if isinstance(output, Mapping) else output)


@dataclass
class Notes:
    """Free-text remarks collected during a run (skips, caveats), saved with the results."""

    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        print(f"  note: {line}", flush=True)
        self.lines.append(line)


README_START, README_END = "<!-- bench table -->", "<!-- /bench table -->"


def update_readme(readme: Path, rows: Sequence[Row], notes: Sequence[str], started: str = "") -> None:
    """Replace the table between the Performance section's markers with this run's."""
    text = readme.read_text()
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    head = f"Run finished {load_line()} at the end"
    if started:
        head += f" (load average {started} at the start)"
    if not any(r.device != "cpu" for r in rows):
        head += "; no GPU rows"
    extra = "".join(f"- {line}\n" for line in notes)
    legend = (
        "Sides: in 1, 3, 6 and 7, **A is hfchat, B the Chatbot Space template (the peer), C the direct "
        "`InferenceClient`** (in 6: a bare `gr.ChatInterface`); in 3, A is 16 sessions and B one, per app; "
        "the other rows name their sides in the note."
    )
    text = text[:start] + f"\n{head}.\n\n{legend}\n\n{markdown_table(rows)}{extra}" + text[end:]
    readme.write_text(text)


def chat_over_rest(http: httpx.Client, data: Sequence[Any]) -> Any:
    """One `/chat` call over Gradio's REST API (`data`: the message, then every setting), read
    one event at a time; returns the final reply's messages (the event's first output; the
    others are the page's own, such as saved-conversation state). Plain httpx keeps the client
    light, and unlike gradio_client it does not keep every intermediate update (gigabytes for
    a huge reply)."""
    call = http.post("gradio_api/call/chat", json={"data": list(data)})
    call.raise_for_status()
    event, payload = "", ""
    with http.stream("GET", f"gradio_api/call/chat/{call.json()['event_id']}") as events:
        for line in events.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                payload = line.split(":", 1)[1].strip()
    if event != "complete":
        raise RuntimeError(f"the app answered {event!r}: {payload[:200]}")
    return json.loads(payload)[0]
