"""Small, fast variants of bench/load.py (the full runs are in bench/results/load*.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_load(tmp_path: Path, tiny_models: dict[str, Path], *args: str) -> dict:
    models = tiny_models["chat"].parent
    command = [
        sys.executable,
        "bench/load.py",
        "--models",
        str(models),
        "--out",
        str(tmp_path),
        "--max-new-tokens",
        "8",
    ]
    done = subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    name = "load" if args[0] == "sessions" else "load-memory"
    assert (tmp_path / f"{name}.md").is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / f"{name}.json").read_text())
    assert done.returncode == (0 if report["passed"] else 1)
    return report


def test_concurrent_sessions_lose_nothing_and_never_cross(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    report = run_load(tmp_path, tiny_models, "sessions", "--sessions", "4", "--turns", "2")
    assert (report["errors"], report["crosstalk"], report["turns_lost"]) == (0, 0, 0), report["error_samples"]
    assert report["turns_completed"] == 8 and report["server_requests"] == 8
    assert report["ttft_p50_s"] is not None and report["app_peak_rss_mb"] > 50
    assert report["passed"]


def test_local_turns_leave_no_generate_threads_and_memory_flat(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    report = run_load(tmp_path, tiny_models, "memory", "--turns", "30")
    assert report["generate_threads_at_end"] == 0
    assert report["errors"] == 0 and report["stopped_turns"] == 4 and report["evictions"] >= 2
    assert report["growth_pct"] <= 5.0, report["samples"]
