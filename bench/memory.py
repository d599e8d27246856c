"""5. 4-bit memory: `get_memory_footprint()` of the model loaded NF4 (bitsandbytes, as the
app's 4-bit option does: double quantization on) over the same model in bf16.

The goal is about the linear weights, whose theoretical NF4/bf16 ratio is about 0.28
(4 bits plus an fp32 scale per 64-weight block: 4.5 / 16). `get_memory_footprint()` counts
parameters and buffers only, so it misses the block scales (bitsandbytes keeps them in a
`quant_state`, not a buffer); the linear rows show both, and the goal is judged on the
figure with the scales. Embeddings and the layers bitsandbytes leaves unquantized (norms,
the tied LM head) are reported separately. Byte counts are exact, so one run suffices.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.common import BenchConfig, Notes, Row, Stats
from bench.models import build_model

NAME = "memory"
THEORETICAL = 4.5 / 16
GOAL = 1.15 * THEORETICAL


def _bytes(tensor: Any) -> int:
    return int(tensor.numel() * tensor.element_size())


def _quant_state_bytes(state: Any) -> int:
    """The block scales and codebooks bitsandbytes keeps beside a 4-bit weight."""
    if state is None:
        return 0
    total = 0
    for name in ("absmax", "code", "offset"):
        value = getattr(state, name, None)
        if value is not None and hasattr(value, "numel"):
            total += _bytes(value)
    return total + _quant_state_bytes(getattr(state, "state2", None))


def _load(model_dir: Path, device: str, nf4: bool) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16, "device_map": device}
    if nf4:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)


def _breakdown(model: Any) -> dict[str, int]:
    """Bytes by kind: quantizable linear weights, their scales, embeddings, the rest."""
    import bitsandbytes as bnb
    import torch

    out = {"linear": 0, "scales": 0, "embeddings": 0, "other": 0, "quantized_layers": 0}
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) in seen:
                continue  # tied weights count once, as get_memory_footprint does
            seen.add(id(param))
            if isinstance(module, bnb.nn.Linear4bit):
                out["linear"] += _bytes(param)
                out["scales"] += _quant_state_bytes(getattr(param, "quant_state", None))
                out["quantized_layers"] += 1
            elif isinstance(module, torch.nn.Embedding):
                out["embeddings"] += _bytes(param)
            elif isinstance(module, torch.nn.Linear) and module is not model.get_output_embeddings():
                out["linear"] += _bytes(param)
            else:
                out["other"] += _bytes(param)
        for buffer in module.buffers(recurse=False):
            if id(buffer) not in seen:
                seen.add(id(buffer))
                out["other"] += _bytes(buffer)
    return out


def run_on(cfg: BenchConfig, notes: Notes, model_dir: Path, device: str, bench: str) -> list[Row]:
    import gc

    bf16 = _load(model_dir, device, nf4=False)
    ref, ref_total = _breakdown(bf16), bf16.get_memory_footprint()
    del bf16
    gc.collect()
    nf4 = _load(model_dir, device, nf4=True)
    got, got_total = _breakdown(nf4), nf4.get_memory_footprint()
    if not getattr(nf4, "is_loaded_in_4bit", False) or got["quantized_layers"] == 0:
        raise RuntimeError("the model did not load in 4-bit: no bitsandbytes Linear4bit layers")
    del nf4
    gc.collect()

    def one(x: float) -> Stats:
        return Stats.of([x])

    mb = 1 / 2**20
    linear_fp = got["linear"] / ref["linear"]
    linear_real = (got["linear"] + got["scales"]) / ref["linear"]
    return [
        Row(bench, "linear weights, with block scales", one((got["linear"] + got["scales"]) * mb),
            one(ref["linear"] * mb), "MiB", one(linear_real), f"≤ {GOAL:.3f} (1.15 × {THEORETICAL:.3f})",
            linear_real <= GOAL, f"A NF4 + double-quant scales, B bf16; {got['quantized_layers']} Linear4bit layers",
            device),
        Row(bench, "linear weights, as get_memory_footprint counts them", one(got["linear"] * mb),
            one(ref["linear"] * mb), "MiB", one(linear_fp), "", None, "the footprint leaves out the scales", device),
        Row(bench, "embeddings (stay bf16)", one(got["embeddings"] * mb), one(ref["embeddings"] * mb), "MiB",
            one(got["embeddings"] / ref["embeddings"]), "", None, "tied with the LM head", device),
        Row(bench, "other unquantized (norms, buffers)", one(got["other"] * mb), one(ref["other"] * mb), "MiB",
            one(got["other"] / ref["other"]) if ref["other"] else None, "", None, "", device),
        Row(bench, "whole model get_memory_footprint()", one(got_total * mb), one(ref_total * mb), "MiB",
            one(got_total / ref_total), "", None, "A NF4, B bf16; byte counts are exact: one run", device),
    ]  # fmt: skip


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    return run_on(cfg, notes, build_model(cfg.size, cfg.models), "cpu", "5. 4-bit memory")
