"""4. Cache: a warm hit vs a cold local build; sampling changes never rebuild; switching
among 3 cached models with cache size 3 never reloads. Counts come from `ModelCache.stats`."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from bench.common import BenchConfig, Notes, Row, Stats, at_least, ratios
from bench.models import build_model

NAME = "cache"
BENCH = "4. Cache"

# Every sampling control the local backend reads, changed turn by turn.
SAMPLING: tuple[dict[str, Any], ...] = (
    {},
    {"temperature": 0.3, "do_sample": True, "seed": 1},
    {"temperature": 1.2, "top_p": 0.5, "top_k": 5, "do_sample": True, "seed": 2},
    {"repetition_penalty": 1.3},
    {"max_new_tokens": 3, "system_prompt": "Be brief."},
)


def _service(size: int) -> Any:
    from hfchat.cache import ModelCache
    from hfchat.chat import ChatService

    return ChatService(cache=ModelCache(size))


def _timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _cold_and_warm(model_dir: Path, runs: int) -> tuple[list[float], list[float]]:
    from hfchat.config import ModelSpec

    spec = ModelSpec(backend="local", model=str(model_dir), device="cpu")
    _service(1).model_for(spec, None)  # import torch, transformers and LangChain once, unmeasured
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(runs):
        service = _service(3)  # an empty cache: the build loads the weights
        cold.append(_timed(lambda s=service: s.model_for(spec, None)))
        warm.append(_timed(lambda s=service: s.model_for(spec, None)))
        assert service.cache.stats.builds == 1 and service.cache.stats.hits == 1
        service.cache.clear()
    return cold, warm


def _turn(chat_fn: Any, **values: Any) -> str:
    return "".join(str(out) for out in chat_fn({"text": "Hello there", "files": []}, [], **values))


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    from hfchat.chat import make_chat_fn
    from hfchat.cli import parse_options

    model_dir = build_model(cfg.size, cfg.models)
    cold, warm = _cold_and_warm(model_dir, cfg.runs)
    speedup = ratios(cold, warm)

    options = parse_options(["--backend", "local", "--device", "cpu", "--max-new-tokens", "2"], {})
    service = _service(3)
    chat_fn = make_chat_fn(service, options)
    _turn(chat_fn, model=str(model_dir))
    before = service.cache.stats.builds
    for values in SAMPLING:
        _turn(chat_fn, model=str(model_dir), **values)
    rebuilds = service.cache.stats.builds - before
    service.cache.clear()

    # Three different models (tiny: only the cache's behaviour is measured here).
    models = [str(build_model("tiny", cfg.models, seed=seed)) for seed in (0, 1, 2)]
    service = _service(3)
    chat_fn = make_chat_fn(service, options)
    switch_s: list[float] = []
    for model in itertools.islice(itertools.cycle(models), 3 * (cfg.runs + 1)):
        seconds = _timed(lambda m=model: _turn(chat_fn, model=m))
        if service.cache.stats.builds == len(models) and len(switch_s) < 3 * cfg.runs:
            switch_s.append(seconds)
    stats = service.cache.stats
    reloads = stats.builds - len(models)
    service.cache.clear()
    return [
        Row(BENCH, "cold build vs warm hit", Stats.of(cold), Stats.of([w * 1e6 for w in warm]), "", speedup,
            "≥ 1000×", at_least(speedup, 1000), "A cold build (s), B warm hit (µs); ratio cold/warm",
            too_small=speedup is None),
        Row(BENCH, "rebuilds when sampling settings change", Stats.of([float(rebuilds)]), unit="builds",
            goal="0", met=rebuilds == 0, note=f"{len(SAMPLING)} turns with different sampling settings"),
        Row(BENCH, "reloads switching among 3 cached models", Stats.of([float(reloads)]), Stats.of(switch_s),
            goal="0", met=reloads == 0 and stats.evictions == 0,
            note=f"cache size 3: {stats.builds} builds, {stats.hits} hits, {stats.evictions} evictions; "
            "B is a switched turn's time (s)"),
    ]  # fmt: skip
