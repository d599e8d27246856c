"""GPU rows: benchmarks 2 (local overhead) and 5 (4-bit memory) on a ~1.1B-parameter model
built from config, on the first CUDA GPU, each row marked with the GPU's name. Without a
CUDA GPU they are skipped, and the table says so."""

from __future__ import annotations

from bench import local, memory
from bench.common import BenchConfig, Notes, Row
from bench.models import build_model

NAME = "gpu"


def run(cfg: BenchConfig, notes: Notes) -> list[Row]:
    import torch

    if not torch.cuda.is_available():
        notes.add("GPU rows skipped: no CUDA GPU on this machine")
        return [Row("GPU rows (2 and 5 on a ~1.1B model)", "skipped", note="no CUDA GPU on this machine")]
    name = torch.cuda.get_device_name(0)
    model_dir = build_model("tiny" if cfg.quick else "1b", cfg.models)
    return [
        *local.run_on(cfg, notes, model_dir, "cuda", f"2. Local overhead, GPU {name}"),
        *memory.run_on(cfg, notes, model_dir, "cuda", f"5. 4-bit memory, GPU {name}"),
    ]
