"""Torch threads and the CPU dtype, on the real SmolLM2-135M-Instruct (issue 14).

Decode tokens/s of a raw greedy `model.generate`, each configuration in its own process
(torch's thread count is set before torch starts): 1 and 2 threads (and hfchat's default,
`hfchat.cpu.torch_threads(0)`), on a quiet machine and while another process keeps one core
busy; float32 and bfloat16. Interleaved, median of the runs with min and max, the load
average recorded. `python -m bench --only cpu`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchConfig, Notes, Row, Stats

PROBE = r"""
import json, os, sys, time
import torch, transformers
model_dir, dtype, tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = transformers.AutoTokenizer.from_pretrained(model_dir)
model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype))
ids = tok.apply_chat_template([{"role": "user", "content": "Tell me a story."}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
model.generate(**ids, max_new_tokens=4, do_sample=False)  # warm
started = time.perf_counter()
out = model.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
elapsed = time.perf_counter() - started
print(json.dumps({"tok_s": (out.shape[1] - ids["input_ids"].shape[1]) / elapsed, "threads": torch.get_num_threads()}))
"""


def _burn(stop: Any) -> None:  # pragma: no cover - runs in a child process
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def _probe(model_dir: Path, threads: int, dtype: str, tokens: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(model_dir), dtype, str(tokens)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=600,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    from hfchat.cpu import cpu_dtype_name, torch_threads
    from hfchat.testing.real_model import smollm2

    model_dir = smollm2(cfg.models)
    tokens = 8 if cfg.quick else 64
    default = torch_threads(0)
    configs = [(1, "float32"), (2, "float32"), (1, "bfloat16")]
    rows: list[Row] = []
    for busy in (False, True):
        stop = multiprocessing.Event()
        burner = multiprocessing.Process(target=_burn, args=(stop,), daemon=True) if busy else None
        if burner:
            burner.start()
        try:
            results: dict[tuple[int, str], list[float]] = {c: [] for c in configs}
            for i in range(cfg.runs):
                for config in configs if i % 2 == 0 else configs[::-1]:
                    results[config].append(_probe(model_dir, *config, tokens)["tok_s"])
        finally:
            stop.set()
            if burner:
                burner.join(5)
        where = "one core kept busy" if busy else "no extra load"
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        one = Stats.of(results[(1, "float32")])
        for (threads, dtype), values in results.items():
            mark = " (hfchat default here)" if threads == default and dtype == cpu_dtype_name() else ""
            rows.append(
                Row(
                    "CPU",
                    f"decode, {threads} thread(s), {dtype}, {where}{mark}",
                    a=Stats.of(values),
                    b=one,
                    unit="tok/s",
                    ratio=Stats.of([v / one.median for v in values]),
                    note=f"vs 1 thread float32; load {load}",
                )
            )
    notes.add(
        f"CPU: hfchat picks {default} torch thread(s) and {cpu_dtype_name()} here (bf16 native: "
        f"{cpu_dtype_name() == 'bfloat16'}); {time.strftime('%H:%M:%S')}"
    )
    return rows
