"""`hfchat.cpu`: the torch thread count and the CPU dtype, chosen on purpose (issue 14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hfchat.cpu import bf16_is_fast, cpu_dtype_name, cpu_flags, torch_threads


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (4, 2), (8, 4), (64, 4)])
def test_default_threads_are_half_the_cores_at_most_four(cores: int, threads: int) -> None:
    assert torch_threads(0, cores) == threads


def test_requested_threads_win() -> None:
    assert torch_threads(3, cores=2) == 3


def test_flags_are_read_from_cpuinfo_and_bf16_needs_native_support(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    flags = cpu_flags.__wrapped__(info)  # uncached: the real one reads /proc/cpuinfo once
    assert {"avx2", "avx512_bf16"} <= flags
    assert bf16_is_fast(flags) and cpu_dtype_name(flags) == "bfloat16"
    assert not bf16_is_fast(frozenset({"avx2", "avx512f"})) and cpu_dtype_name(frozenset({"avx2"})) == "float32"
    assert cpu_flags.__wrapped__(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize("torch_first", [False, True])
def test_apply_sets_torch_threads_before_or_after_torch_is_imported(torch_first: bool) -> None:
    code = ("import torch\n" if torch_first else "") + (
        "from hfchat.cpu import apply_torch_threads\nn = apply_torch_threads(1)\nimport torch\n"
        "print(n, torch.get_num_threads())"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "1"], out.stderr[-2000:]  # torch's default: one per core


def test_an_operators_omp_num_threads_is_kept_by_default() -> None:
    code = "from hfchat.cpu import apply_torch_threads as a\nimport torch\nprint(a(0), torch.get_num_threads())"
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["2", "2"], out.stderr[-2000:]
