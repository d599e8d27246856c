"""1. Endpoint: hfchat (A) vs the Chatbot Space template (B, `bench/peers/chatbot_template.py`)
vs a direct `InferenceClient` (C), the same greedy request from all three, interleaved,
against one real `transformers serve` holding SmolLM2-135M-Instruct (the real model the
test suite uses: `hfchat.testing.real_model`, built on first use under $HFCHAT_TINY_MODELS
or bench/.models).

The two apps are timed as the browser uses them (`bench/protocol.py`: queue/join +
queue/data, the page's whole chain of events), each turn a fresh visitor whose page is
already open. Measured per turn: time to the first streamed update with text, total time
to the end of the chain, the app process's CPU-seconds (psutil, before and after), the SSE
events and bytes. A second endpoint peer, llama.cpp's server on the same model as GGUF,
runs where llama-cpp-python is installed. The old figures through `gradio_client` are kept
apart, in rows named "with gradio_client": that client adds its own 60–75 ms.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    CPU_TICK_S,
    TEMPLATE,
    AppSpec,
    BenchConfig,
    Notes,
    Row,
    Stats,
    app_processes,
    at_most,
    base_env,
    ratios,
    reply_text,
    rotated,
    stop_process,
    template_env,
    wait_http_200,
)
from bench.protocol import PageApp, PageSession, Turn
from hfchat import net
from hfchat.speed import SpeedMeter
from hfchat.testing.servers import TransformersServe, free_port

NAME = "endpoint"
SYSTEM = "You are a friendly Chatbot."  # the template's default system message
PROMPT = "Tell me a story about a brave little robot who wanted to learn music."
HFCHAT_BOX = "chat-box"  # hfchat's chat box (its Compare tab's box is built only once a visitor opens that tab)
HFCHAT_MAX_TOKENS = "settings-max-new-tokens"


def model_root(cfg: BenchConfig) -> Path:
    """Where the real model is built: the test suite's folder when set, else bench/.models."""
    return Path(os.environ.get("HFCHAT_TINY_MODELS") or cfg.models)


def real_model(cfg: BenchConfig) -> Path:
    """SmolLM2-135M-Instruct as a transformers folder (the tiny model in quick mode)."""
    if cfg.quick:
        from bench.models import build_model

        return build_model("tiny", cfg.models)
    from hfchat.testing.real_model import smollm2

    return smollm2(model_root(cfg))


@dataclass
class Sides:
    """The three sides of one endpoint: each a callable running one turn of N tokens."""

    hfchat: PageApp
    template: PageApp
    direct: Any
    model: str

    def hfchat_turn(self, tokens: int) -> Turn:
        with PageSession(self.hfchat, {HFCHAT_MAX_TOKENS: tokens}) as page:
            page.open()
            return page.turn(PROMPT)

    def template_turn(self, tokens: int) -> Turn:
        overrides = {"Max new tokens": tokens, "Temperature": 0.0, "Top-p (nucleus sampling)": 1.0}
        with PageSession(self.template, overrides) as page:
            page.open()
            return page.turn(PROMPT)

    def direct_turn(self, tokens: int) -> Turn:
        """The request both apps send: the template's system message, greedy (temperature 0)."""
        import time

        turn, parts = Turn(), list[str]()
        started = time.perf_counter()
        stream = self.direct.chat_completion(
            messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
            model=self.model,
            max_tokens=tokens,
            temperature=0.0,
            stream=True,
        )
        for chunk in stream:
            turn.events += 1
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                if not parts:
                    turn.ttft_s = time.perf_counter() - started
                parts.append(delta)
        turn.total_s = time.perf_counter() - started
        turn.text = "".join(parts)
        return turn


@contextlib.contextmanager
def both_apps(url: str, model: str) -> Iterator[tuple[PageApp, PageApp]]:
    """hfchat and the template, each pointed at `url`, greedy, the same system message."""
    hf_args = ["--backend", "endpoint", "--endpoint-url", url, "--served-model", model]
    hf_args += ["--do-sample", "false", "--system-prompt", SYSTEM]
    tpl_args = ["--base-url", url, "--model", model]
    with app_processes(AppSpec(hf_args), AppSpec(tpl_args, template_env(), TEMPLATE)) as (hf_url, tpl_url):
        yield PageApp(hf_url, hf_url.pid, box=HFCHAT_BOX), PageApp(tpl_url, tpl_url.pid)


def rows_for(bench: str, sides: Sides, tokens: int, runs: int, notes: Notes) -> list[Row]:
    """Warm each side, then `runs` rotated turns of `tokens` tokens; the table's rows."""
    fns: list[Callable[[], Turn]] = [
        lambda: sides.hfchat_turn(tokens),
        lambda: sides.template_turn(tokens),
        lambda: sides.direct_turn(tokens),
    ]
    for fn in fns:
        fn()  # the first turn builds clients and warms the server
    (hf, tpl, direct), loads = rotated(runs, *fns)
    load = Stats.of(loads)
    texts = {t.text.strip() for t in [*hf, *tpl, *direct]}
    same = len(texts) == 1
    if not same:
        notes.add(f"{bench} {tokens} tokens: replies differ: " + " | ".join(repr(t[:60]) for t in sorted(texts)))
    detail = f"{tokens} tokens (direct streamed {Stats.of([t.events for t in direct]).median:.0f} chunks)"

    def col(turns: list[Turn], attr: str, scale: float = 1.0) -> Stats:
        return Stats.of([getattr(t, attr) * scale for t in turns])

    def ratio(a: list[Turn], b: list[Turn], attr: str, floor: float = 0.0) -> Stats | None:
        return ratios([getattr(t, attr) for t in a], [getattr(t, attr) for t in b], floor=floor)

    ttft_t, ttft_d = ratio(hf, tpl, "ttft_s"), ratio(hf, direct, "ttft_s")
    tot_t, tot_d = ratio(hf, tpl, "total_s"), ratio(hf, direct, "total_s")
    tpl_ttft_d, tpl_tot_d = ratio(tpl, direct, "ttft_s"), ratio(tpl, direct, "total_s")
    cpu_t = ratio(hf, tpl, "cpu_s", floor=CPU_TICK_S)
    ttft_met = None if ttft_t is None or ttft_d is None else bool(at_most(ttft_t, 1.0) and at_most(ttft_d, 1.15))
    ref = "template/direct: " + (tpl_ttft_d.show("×") if tpl_ttft_d else "–")
    ref_tot = "template/direct: " + (tpl_tot_d.show("×") if tpl_tot_d else "–")
    return [
        Row(bench, f"time to first token, {tokens} tokens", col(hf, "ttft_s"), col(tpl, "ttft_s"), "s", ttft_t,
            "A/B ≤ 1.0×, A/C ≤ 1.15×", ttft_met, f"{detail}; {ref}", c=col(direct, "ttft_s"), ratio_c=ttft_d,
            load=load, too_small=ttft_t is None),
        Row(bench, f"total time, {tokens} tokens", col(hf, "total_s"), col(tpl, "total_s"), "s", tot_t,
            "A/C ≤ 1.03×", at_most(tot_d, 1.03), f"to the end of the page's chain; {ref_tot}",
            c=col(direct, "total_s"), ratio_c=tot_d, load=load),
        Row(bench, f"app CPU per turn, {tokens} tokens", col(hf, "cpu_s", 1000), col(tpl, "cpu_s", 1000), "ms",
            cpu_t, "A/B ≤ 0.8×", at_most(cpu_t, 0.8), "the app process, psutil before and after the turn",
            load=load, too_small=cpu_t is None),
        Row(bench, f"SSE events per turn, {tokens} tokens", col(hf, "events"), col(tpl, "events"), "",
            ratio(hf, tpl, "events"), "", None,
            f"process_generating events; C: the server's chunks; SSE bytes A {col(hf, 'sse_bytes').median:,.0f}, "
            f"B {col(tpl, 'sse_bytes').median:,.0f}; HTTP requests A {col(hf, 'calls').median:.0f}, "
            f"B {col(tpl, 'calls').median:.0f}", c=col(direct, "events"), load=load),
        Row(bench, f"identical replies, {tokens} tokens", goal="yes", met=same,
            note="the same text from all three sides" if same else f"{len(texts)} different replies (see notes)"),
    ]  # fmt: skip


def gradio_client_rows(bench: str, sides: Sides, tokens: int, runs: int) -> list[Row]:
    """The same turn through `gradio_client` (hfchat's `/chat`, the template's `/respond`):
    kept apart, as it measures the client too."""
    from gradio_client import Client

    hf = Client(sides.hfchat.url, verbose=False)
    tpl = Client(sides.template.url, verbose=False)

    def timed(job: Any) -> float:
        meter = SpeedMeter()
        for output in job:
            if reply_text(output):  # hfchat's /chat: messages; the template's /respond: a string
                meter.first_token()
        meter.finish()
        if meter.ttft_s is None:
            raise RuntimeError("gradio_client saw no reply text")
        return meter.ttft_s

    def hf_turn() -> float:
        hf.reset_session()  # a new visitor, as in the page rows
        return timed(hf.submit(message={"text": PROMPT, "files": []}, max_new_tokens=tokens, do_sample=False,
                               api_name="/chat"))  # fmt: skip

    def tpl_turn() -> float:
        tpl.reset_session()
        return timed(tpl.submit(PROMPT, SYSTEM, tokens, 0.0, 1.0, api_name="/respond"))

    def direct_turn() -> float:
        return sides.direct_turn(tokens).ttft_s

    hf_turn(), tpl_turn()
    ttft, loads = rotated(runs, hf_turn, tpl_turn, direct_turn)
    r_b, r_c = ratios(ttft[0], ttft[1]), ratios(ttft[0], ttft[2])
    return [
        Row(bench, f"time to first token with gradio_client, {tokens} tokens", Stats.of(ttft[0]),
            Stats.of(ttft[1]), "s", r_b, "", None,
            "A hfchat /chat, B template /respond, C direct; the client's own cost included; template/direct: "
            + (ratios(ttft[1], ttft[2]) or Stats.of([0])).show("×"), c=Stats.of(ttft[2]), ratio_c=r_c,
            load=Stats.of(loads)),
    ]  # fmt: skip


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    from huggingface_hub import InferenceClient

    token_counts = (4,) if cfg.quick else (32, 256)
    model_dir = real_model(cfg)
    bench = "1. Endpoint, transformers serve" + ("" if cfg.quick else " (SmolLM2-135M)")
    rows: list[Row] = []
    with TransformersServe(model_dir, env=base_env(), startup_timeout=300) as serve:
        net.register_endpoint(serve.url, None)  # as the app does: HF_HUB_OFFLINE blocks only the Hub
        direct = InferenceClient(base_url=serve.url, timeout=300)
        with both_apps(serve.url, serve.model_name) as (hf, tpl):
            sides = Sides(hf, tpl, direct, serve.model_name)
            for tokens in token_counts:
                rows += rows_for(bench, sides, tokens, cfg.runs, notes)
            rows += gradio_client_rows(bench, sides, token_counts[0], cfg.runs)
    rows += llama_cpp_rows(cfg, notes)
    return rows


@contextlib.contextmanager
def llama_server(gguf: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on `gguf`, one thread per core."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="hfchat-bench-")) / "llama.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
             "--port", str(port), "--n_ctx", "2048"],
            env=base_env(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_http_200(f"{url}/v1/models", timeout=300, proc=proc)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{log.read_text(errors='replace')[-3000:]}") from None
        yield url
    finally:
        stop_process(proc)


def llama_cpp_rows(cfg: BenchConfig, notes: Notes) -> list[Row]:
    """The three sides again, on llama.cpp's server (the same model as Q4_1 GGUF)."""
    bench = "1. Endpoint, llama.cpp server"
    if importlib.util.find_spec("llama_cpp") is None:
        notes.add("llama.cpp rows skipped: llama-cpp-python not installed (pip install 'llama-cpp-python[server]')")
        return [Row(bench, "skipped", note="skipped: llama-cpp-python not installed")]
    if cfg.quick:
        return [Row(bench, "skipped", note="skipped in quick mode (the GGUF is the real model)")]
    from huggingface_hub import InferenceClient

    from hfchat.testing.real_model import gguf_file

    gguf = gguf_file(model_root(cfg))
    with llama_server(gguf) as url:
        net.register_endpoint(url, None)
        model = _served_name(url) or gguf.name
        direct = InferenceClient(base_url=url, timeout=300)
        with both_apps(url, model) as (hf, tpl):
            return rows_for(bench, Sides(hf, tpl, direct, model), 32, cfg.runs, notes)


def _served_name(url: str) -> str | None:
    """The model id llama.cpp's server lists (it names the model by its file path)."""
    import httpx

    data = httpx.get(f"{url}/v1/models", timeout=30).json().get("data") or []
    return str(data[0]["id"]) if data else None
