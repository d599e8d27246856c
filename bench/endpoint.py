"""1. Endpoint overhead: the app (gradio_client -> /chat) vs the server directly
(`InferenceClient.chat_completion(stream=True)`), same prompt and max_new_tokens, against
one real `transformers serve`. Both are timed with `hfchat.speed.SpeedMeter`."""

from __future__ import annotations

import statistics
from typing import Any

from bench.common import (
    CPU_TICK_S,
    TOO_SMALL,
    BenchConfig,
    Notes,
    Row,
    Stats,
    app_process,
    at_most,
    base_env,
    interleaved,
    ratios,
    reply_text,
)
from bench.models import build_model
from hfchat import net
from hfchat.speed import SpeedMeter
from hfchat.testing.servers import TransformersServe, free_port

NAME = "endpoint"
PROMPT = "Tell me a story about a brave little robot who wanted to learn music, and keep it short."


def _app_turn(client: Any, max_new_tokens: int) -> tuple[SpeedMeter, str]:
    """One fresh conversation through the app's /chat API, streamed."""
    client.reset_session()  # a new visitor: no history
    meter = SpeedMeter()
    job = client.submit(
        message={"text": PROMPT, "files": []}, max_new_tokens=max_new_tokens, do_sample=False, api_name="/chat"
    )
    text = ""
    for output in job:
        text = reply_text(output)
        if text:
            meter.first_token()
    meter.finish()
    return meter, text


def _direct_turn(client: Any, model: str, max_new_tokens: int) -> tuple[SpeedMeter, str]:
    """The same request straight to the server: what the app sends (greedy is temperature 0)."""
    meter = SpeedMeter()
    parts: list[str] = []
    stream = client.chat_completion(
        messages=[{"role": "user", "content": PROMPT}],
        model=model,
        max_tokens=max_new_tokens,
        temperature=0.0,
        stream=True,
    )
    for chunk in stream:
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            meter.first_token()
            parts.append(delta)
    meter.finish()
    return meter, "".join(parts)


class CpuMeter:
    """CPU-seconds a process spends during each turn: shows whether the server did the same
    work on both sides, and what the app process itself spent."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.process = psutil.Process(pid)

    def seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)


def _with_cpu(turn: Any, server: CpuMeter, app: CpuMeter) -> tuple[SpeedMeter, float, float]:
    """Run one turn; its meter, and the CPU-seconds the server and the app process spent."""
    s0, a0 = server.seconds(), app.seconds()
    meter = turn()[0]
    return meter, server.seconds() - s0, app.seconds() - a0


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    from gradio_client import Client
    from huggingface_hub import InferenceClient

    max_new_tokens = 4 if cfg.quick else 32
    model_dir = build_model(cfg.size, cfg.models)
    bench = "1. Endpoint overhead"
    with TransformersServe(model_dir, env=base_env(), startup_timeout=300) as serve:
        args = ["--backend", "endpoint", "--endpoint-url", serve.url, "--max-new-tokens", str(max_new_tokens)]
        with app_process(args, free_port()) as url:
            app = Client(url, verbose=False)
            net.register_endpoint(serve.url, None)  # as the app does: HF_HUB_OFFLINE blocks only the Hub
            direct = InferenceClient(base_url=serve.url, timeout=300)
            # Warm both paths (first request compiles/allocates on the server; first app turn builds the client).
            _, app_warm = _app_turn(app, max_new_tokens)
            _, direct_warm = _direct_turn(direct, serve.model_name, max_new_tokens)
            if app_warm.strip() != direct_warm.strip():
                notes.add(f"endpoint: app and direct replies differ: {app_warm[:60]!r} vs {direct_warm[:60]!r}")
            assert serve.proc is not None
            server_cpu, app_cpu = CpuMeter(serve.proc.pid), CpuMeter(url.pid)
            a_runs, b_runs = interleaved(
                cfg.runs,
                lambda: _with_cpu(lambda: _app_turn(app, max_new_tokens), server_cpu, app_cpu),
                lambda: _with_cpu(lambda: _direct_turn(direct, serve.model_name, max_new_tokens), server_cpu, app_cpu),
            )
    a, b = [r[0] for r in a_runs], [r[0] for r in b_runs]
    server_a, server_b = [r[1] for r in a_runs], [r[1] for r in b_runs]
    app_ms = Stats.of([r[2] * 1000 for r in a_runs])
    ttft_a, ttft_b = [m.ttft_s for m in a], [m.ttft_s for m in b]
    tot_a, tot_b = [m.total_s for m in a], [m.total_s for m in b]
    ttft_ratio, total_ratio = ratios(ttft_a, ttft_b), ratios(tot_a, tot_b)
    overhead_ms = Stats.of([(x - y) * 1000 for x, y in zip(tot_a, tot_b, strict=True)])
    detail = f"{max_new_tokens} tokens; A app, B direct"
    server_ratio = ratios(server_a, server_b, floor=CPU_TICK_S)
    server_cpu = statistics.median(server_a)
    share = f"{app_ms.median / 1000 / server_cpu:.1%}" if server_cpu > CPU_TICK_S else TOO_SMALL
    return [
        Row(bench, "time to first token", Stats.of(ttft_a), Stats.of(ttft_b), "s", ttft_ratio, "≤ 1.05×",
            at_most(ttft_ratio, 1.05), detail, too_small=ttft_ratio is None),
        Row(bench, "total time", Stats.of(tot_a), Stats.of(tot_b), "s", total_ratio, "≤ 1.05×",
            at_most(total_ratio, 1.05), f"app adds {overhead_ms.show('ms')} per turn", too_small=total_ratio is None),
        Row(bench, "server CPU-seconds per turn", Stats.of(server_a), Stats.of(server_b), "s",
            server_ratio, "", None, "A via the app, B direct: the work the server did for the turn",
            too_small=server_ratio is None),
        Row(bench, "app process CPU per turn", app_ms, unit="ms", note="Gradio, LangChain and hfchat together, "
            f"for {max_new_tokens} tokens; {share} of the "
            "server's CPU for the turn"),
    ]  # fmt: skip
