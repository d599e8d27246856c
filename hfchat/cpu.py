"""The CPU a local model runs on: how many torch threads, and whether bf16 is fast.

Both are chosen on purpose (issue 14):
- **Threads.** torch's default is one thread per core. On a shared machine that is the worst
  choice: measured on 2 cores with another process busy, two threads fell to 17 tok/s while
  one thread never fell below 32. The default here is half the cores, at most 4; `--torch-threads`
  overrides it.
- **bf16.** A CPU with bf16 instructions (AVX512-BF16 or AMX) runs bf16 weights faster than
  float32; one without them emulates bf16 and runs slower. So bf16 where the flags say so,
  float32 otherwise.

No torch import here: the thread count must be set before torch starts its thread pool.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""/proc/cpuinfo flags of CPUs that compute in bf16 natively."""
MAX_DEFAULT_THREADS = 4


@functools.cache
def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where /proc/cpuinfo can't be read."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def bf16_is_fast(flags: frozenset[str] | None = None) -> bool:
    """True where the CPU has native bf16 (the flags in `BF16_FLAGS`)."""
    return bool((cpu_flags() if flags is None else flags) & BF16_FLAGS)


def cpu_dtype_name(flags: frozenset[str] | None = None) -> str:
    """The dtype a local model gets on this CPU: "bfloat16" or "float32"."""
    return "bfloat16" if bf16_is_fast(flags) else "float32"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers narrow)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def torch_threads(requested: int, cores: int | None = None) -> int:
    """`requested` threads (`--torch-threads`), or for 0 the default: half the cores, 1 to 4."""
    if requested > 0:
        return requested
    return max(1, min(MAX_DEFAULT_THREADS, (cores or usable_cores()) // 2))


def apply_torch_threads(requested: int) -> int:
    """Set torch's CPU thread count for this process, before or after torch is imported;
    returns the number set. Before the import it goes through OMP_NUM_THREADS, which also
    sizes the OpenMP pool. With `requested` 0, an OMP_NUM_THREADS the operator set wins."""
    own = os.environ.get("OMP_NUM_THREADS", "")
    threads = torch_threads(requested if requested or not own.isdigit() else int(own))
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    log.info("local models: %d torch thread(s) of %d cores, %s on the CPU", threads, usable_cores(), cpu_dtype_name())
    return threads
