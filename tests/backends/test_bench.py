"""Smoke test: each benchmark runs end to end in its quick mode (tiny models, one run).

The figures of a quick run mean nothing; the real run is `python -m bench` (README
"Performance"), kept out of the test suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.__main__ import NAMES
from bench.common import HEADER

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_benchmark_runs_and_writes_json_and_markdown(name: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", name, "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    result = json.loads((tmp_path / f"{name}.json").read_text())
    rows = result["rows"]
    assert rows and all(row["measure"] != "failed" for row in rows)
    measured = [row for row in rows if row["ratio"] or row["a"]]
    assert measured or rows[0]["measure"] == "skipped", "a benchmark that measured nothing"
    for row in measured:
        if row["ratio"]:
            assert row["ratio"]["median"] > 0 and row["ratio"]["min"] <= row["ratio"]["median"] <= row["ratio"]["max"]
    for row in rows:
        if row["measure"].startswith("identical replies"):
            # the page protocol rebuilt the same text from Gradio's streamed diffs as the
            # direct client read from the server, for both apps
            assert row["met"] is True, row["note"]
    assert all(row["load"] is not None for row in measured if row["ratio_c"] or row["c"]), "a run without its load"
    header, table = (tmp_path / f"{name}.md").read_text().split("\n\n", 1)
    assert "load average" in header
    assert table.startswith("| " + " | ".join(HEADER)) and len(table.splitlines()) == len(rows) + 2
    assert (tmp_path / "summary.md").is_file()


def test_a_ratio_over_a_zero_or_tick_sized_denominator_is_too_small_to_measure() -> None:
    """psutil counts CPU time in 10 ms ticks: a 4-token turn can read 0.00 s (CI failed on it)."""
    from bench.common import CPU_TICK_S, Row, ratios

    assert ratios([0.02, 0.03], [0.0, 0.01], floor=CPU_TICK_S) is None
    assert ratios([1.0], [0.0]) is None
    measured = ratios([0.5, 0.6], [0.25, 0.2], floor=CPU_TICK_S)
    assert measured is not None and measured.median == 2.5
    row = Row("b", "server CPU-seconds per turn", ratio=None, note="x", too_small=True)
    assert "too small to measure" in row.cells()[HEADER.index("A/B: median (min–max)")]


def test_the_page_protocol_rebuilds_a_streamed_reply_from_gradios_diffs() -> None:
    """Gradio (sse_v3) sends a generator's first update whole and each later one as edits;
    the benchmark's page client must rebuild the text as the page does, or its time to first
    token and its reply check would read the wrong thing. The edits are as Gradio 6.31 sent
    them for the Chatbot template; the footer (metadata) is not part of the answer."""
    from bench.protocol import apply_diff, reply_text

    user = {"role": "user", "metadata": None, "content": [{"text": "Hi", "type": "text"}]}
    first = [None, [user, {"role": "assistant", "metadata": None, "content": [{"text": "", "type": "text"}]}]]
    assert reply_text(first[1]) == ""
    current = first
    for word in ("Paris", " is", " here."):
        edits: list[list[list[object]]] = [[], [["append", [1, "content", 0, "text"], word]]]
        current = [apply_diff(v, d) for v, d in zip(current, edits, strict=True)]
    footer = {"role": "assistant", "metadata": {"id": "hfchat-footer"}, "content": "◷ 0.1 s"}
    current = [apply_diff(v, d) for v, d in zip(current, [[], [["add", [2], footer]]], strict=True)]
    assert reply_text(current[1]) == "Paris is here."
    assert reply_text([*current[1], user]) == ""  # a new question: no answer yet
    assert apply_diff("ab", [["replace", [], "c"]]) == "c"
