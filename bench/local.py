"""2. Local overhead: decode tokens/s through the app's local backend (the `/chat`
function: ChatService, LangChain, the stoppable pipeline, the fair device queue) vs the
same model object's raw `model.generate`, same prompt and greedy settings.

Both sides are timed with `hfchat.speed.SpeedMeter`. The app streams text, which the
streamer releases a word at a time, so its first visible text can cover k > 1 tokens; its
decode span then counts the N - k tokens after that text, from the same token ids.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.common import BenchConfig, Notes, Row, Stats, at_least, ratios, reply_text, rotated
from bench.models import build_model, parameter_count
from hfchat.speed import SpeedMeter

NAME = "local"
PROMPT = "Tell me a story about a brave little robot who wanted to learn music, and keep it short."


class MeterStreamer:
    """A transformers streamer that only stamps the meter and counts tokens: raw generate's
    lightest way to see its first token. The first `put` is the prompt."""

    def __init__(self, meter: Meters) -> None:
        self.meter = meter
        self.ids: list[int] = []
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        self.meter.first_token()
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())

    def end(self) -> None:
        pass


class Meters:
    """A wall-clock SpeedMeter and a process-CPU-time one, stamped at the same moments.

    On a shared machine the wall clock also counts other people's work; the CPU clock
    counts only this process's (both threads of the app's backend), so its ratio shows
    what the app itself adds per token."""

    def __init__(self) -> None:
        self.wall = SpeedMeter()
        self.cpu = SpeedMeter(clock=time.process_time)

    def first_token(self) -> None:
        self.wall.first_token()
        self.cpu.first_token()

    def finish(self, output_tokens: int) -> None:
        for m in (self.wall, self.cpu):
            m.finish()
            m.output_tokens = output_tokens


def _raw_turn(model: Any, tokenizer: Any, max_new_tokens: int) -> tuple[Meters, list[int]]:
    import torch

    meter = Meters()
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    streamer = MeterStreamer(meter)
    with torch.inference_mode():
        model.generate(**ids.to(model.device), max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer)
    meter.finish(len(streamer.ids))
    return meter, streamer.ids


def _tokens_in(tokenizer: Any, ids: list[int], text: str) -> int:
    """How many of `ids` it takes to show `text` (the app's first visible chunk)."""
    for k in range(1, len(ids) + 1):
        if tokenizer.decode(ids[:k], skip_special_tokens=True).strip().startswith(text.strip()):
            return k
    return len(ids)


def _app_turn(chat_fn: Any, tokenizer: Any, ids: list[int]) -> tuple[Meters, str]:
    meter = Meters()
    first = text = ""
    for output in chat_fn({"text": PROMPT, "files": []}, []):
        text = reply_text(output)
        if text and not first:
            meter.first_token()
            first = text
    k = _tokens_in(tokenizer, ids, first)
    meter.finish(len(ids) - k + 1)  # SpeedMeter's decode span starts at the first visible token
    return meter, text


def run_on(cfg: BenchConfig, notes: Notes, model_dir: Path, device: str, bench: str) -> list[Row]:
    from hfchat.backends import local
    from hfchat.cache import ModelCache
    from hfchat.chat import ChatService, make_chat_fn
    from hfchat.cli import parse_options
    from hfchat.config import ModelSpec

    max_new_tokens = 6 if cfg.quick else 32
    options = parse_options(
        # greedy, as the raw generate it is compared with (the app samples by default)
        [
            "--backend",
            "local",
            "--model",
            str(model_dir),
            "--device",
            device,
            "--do-sample",
            "false",
            "--max-new-tokens",
            str(max_new_tokens),
        ],
        {},
    )
    service = ChatService(cache=ModelCache(1))
    chat_fn = make_chat_fn(service, options)
    list(chat_fn({"text": "hello", "files": []}, []))  # build and warm the model once
    spec = ModelSpec(backend="local", model=str(model_dir), device=device)
    chat, hit = service.model_for(spec, None)
    if not hit:
        raise RuntimeError("the app's cached model was not found: settings differ between the two sides")
    model, tokenizer = local.LOCAL.model_of(chat), chat.llm.pipeline.tokenizer
    _, ids = _raw_turn(model, tokenizer, max_new_tokens)
    _, app_text = _app_turn(chat_fn, tokenizer, ids)
    raw_text = tokenizer.decode(ids, skip_special_tokens=True)
    if app_text.strip() != raw_text.strip():
        notes.add(f"{bench}: app and raw replies differ: {app_text[:60]!r} vs {raw_text[:60]!r}")
    (a, b), loads = rotated(
        cfg.runs, lambda: _app_turn(chat_fn, tokenizer, ids)[0], lambda: _raw_turn(model, tokenizer, max_new_tokens)[0]
    )
    load = Stats.of(loads)
    speed_a, speed_b = [m.wall.tokens_per_s for m in a], [m.wall.tokens_per_s for m in b]
    cpu_a, cpu_b = [m.cpu.tokens_per_s for m in a], [m.cpu.tokens_per_s for m in b]
    tot_a, tot_b = [m.wall.total_s for m in a], [m.wall.total_s for m in b]
    speed_ratio, cpu_ratio, total_ratio = ratios(speed_a, speed_b), ratios(cpu_a, cpu_b), ratios(tot_a, tot_b)
    size = f"{parameter_count(model) / 1e6:.3g}M params, {len(ids)} tokens"
    return [
        Row(bench, "decode tokens/s", Stats.of(speed_a), Stats.of(speed_b), "tok/s", speed_ratio, "≥ 0.98×",
            at_least(speed_ratio, 0.98), f"{size}; A app, B raw generate", device, too_small=speed_ratio is None,
            load=load),
        Row(bench, "decode tokens per CPU-second", Stats.of(cpu_a), Stats.of(cpu_b), "tok/s", cpu_ratio, "≥ 0.98×",
            at_least(cpu_ratio, 0.98), "process CPU time: what the app adds, without other people's load", device,
            too_small=cpu_ratio is None, load=load),
        Row(bench, "total time", Stats.of(tot_a), Stats.of(tot_b), "s", total_ratio, "", None,
            "includes prefill and the app's first-word buffering", device, too_small=total_ratio is None, load=load),
    ]  # fmt: skip


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    return run_on(cfg, notes, build_model(cfg.size, cfg.models), "cpu", "2. Local overhead")
