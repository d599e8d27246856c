"""7. New-session cost: the app process's CPU for each new visitor, hfchat (A) vs the Chatbot
Space template (B), and the size of each page's config.

Gradio builds a session's state (`SessionState`: the config of every block) on the first
event with a new session hash, and renders the page's config into the HTML of every page
load; both grow with the number of blocks. Measured, as CPU-seconds of the app process over
K new sessions (psutil counts 10 ms ticks, so K sessions are timed together):
- "new session": GET / (the page, its config inside) and the page's smallest event (an
  unqueued one with no inputs) on a fresh session hash;
- "page open": what the browser does on opening the page: GET / and the events the page
  fires on load (hfchat: a few; the template: none), then the same smallest event.
Also the number of blocks and event handlers in each /config ("components", "dependencies").
"""

from __future__ import annotations

from collections.abc import Callable

from bench.common import (
    TEMPLATE,
    AppSpec,
    BenchConfig,
    Notes,
    Row,
    Stats,
    app_processes,
    ratios,
    rotated,
    template_env,
)
from bench.protocol import PageApp, PageSession, Turn, cpu_seconds
from hfchat.testing.servers import free_port

NAME = "sessions"


def new_session(app: PageApp) -> None:
    with PageSession(app) as page:
        page.http.get("").raise_for_status()
        page.event(app.cheap_event(), None, Turn())


def page_open(app: PageApp) -> None:
    with PageSession(app) as page:
        page.open()


def per_session_ms(app: PageApp, visit: Callable[[PageApp], None], k: int) -> float:
    assert app.pid is not None
    before = cpu_seconds(app.pid)
    for _ in range(k):
        visit(app)
    return (cpu_seconds(app.pid) - before) / k * 1000


def both(
    runs: int, a: PageApp, b: PageApp, visit: Callable[[PageApp], None], k: int
) -> tuple[list[list[float]], list[float]]:
    return rotated(runs, lambda: per_session_ms(a, visit, k), lambda: per_session_ms(b, visit, k))


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    k = 5 if cfg.quick else 40
    unused = f"http://127.0.0.1:{free_port()}"  # no turn is run
    bench = "7. New session"
    hf_spec = AppSpec(["--backend", "endpoint", "--endpoint-url", unused])
    with app_processes(hf_spec, AppSpec(["--base-url", unused], template_env(), TEMPLATE)) as (hf_url, tpl_url):
        hf, tpl = PageApp(hf_url, hf_url.pid, box="chat-box"), PageApp(tpl_url, tpl_url.pid)
        rows: list[Row] = []
        for label, visit in (("new session: GET / + first event", new_session), ("page open", page_open)):
            for app in (hf, tpl):
                visit(app)  # warm
            (a, b), loads = both(cfg.runs, hf, tpl, visit, k)
            ratio = ratios(a, b, floor=0.0)
            events = (f"page open fires {len(hf.load_events())} load events in A, {len(tpl.load_events())} in B; "
                      f"first event A {hf.deps[hf.cheap_event()].get('api_name')}, "
                      f"B {tpl.deps[tpl.cheap_event()].get('api_name')}")  # fmt: skip
            rows.append(
                Row(bench, f"app CPU per {label}", Stats.of(a), Stats.of(b), "ms", ratio, "", None,
                    f"mean over {k} sessions per run; {events}", load=Stats.of(loads), too_small=ratio is None)
            )  # fmt: skip
        one = Stats.of
        rows += [
            Row(bench, "blocks in the page config", one([hf.blocks]), one([tpl.blocks]), "",
                one([hf.blocks / tpl.blocks]), note="len(/config components)"),
            Row(bench, "event handlers in the page config", one([hf.handlers]), one([tpl.handlers]), "",
                one([hf.handlers / tpl.handlers]), note="len(/config dependencies)"),
        ]  # fmt: skip
    return rows
