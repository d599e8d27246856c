"""`python -m bench`: run every benchmark and write bench/results/{summary,<name>}.{json,md}.

`--quick` is the smoke test's mode: tiny models, one run, figures that mean nothing.
`--only endpoint,local` runs a subset. See README "Performance".
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path

NAMES = ("endpoint", "local", "concurrency", "cache", "memory", "coldstart", "sessions", "gpu")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="tiny models, one run: checks the scripts run")
    p.add_argument("--runs", type=int, default=None, help="runs per side (default 7, quick 1)")
    p.add_argument("--only", default=",".join(NAMES), help=f"comma-separated subset of: {', '.join(NAMES)}")
    p.add_argument("--out", type=Path, default=None, help="results folder (default bench/results)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads, here and in the servers (default 1: on a shared 2-core machine "
        "2 threads made generate about 4× slower)",
    )
    p.add_argument(
        "--readme", action="store_true", help="also put the summary table into README.md's Performance section"
    )
    args = p.parse_args(argv)
    unknown = set(args.only.split(",")) - set(NAMES)
    if unknown:
        p.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(NAMES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Before torch is imported anywhere; subprocesses inherit it.
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from bench.common import RESULTS, BenchConfig, Notes, Row, markdown_table, write_results

    cfg = BenchConfig(quick=args.quick, runs=args.runs or (1 if args.quick else 7), out=args.out or RESULTS)
    load_at_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the start: {load_at_start} (1 / 5 / 15 min)", flush=True)
    all_rows: list[Row] = []
    failed: list[str] = []
    notes = Notes()
    for name in [n for n in NAMES if n in args.only.split(",")]:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.{name}")
        try:
            rows = module.run(cfg, notes)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' results
            traceback.print_exc()
            failed.append(name)
            rows = [Row(name, "failed", note=f"{type(exc).__name__}: {exc}"[:300], met=False)]
        write_results(name, rows, cfg, {"notes": notes.lines, "seconds": time.monotonic() - started})
        print(markdown_table(rows), flush=True)
        all_rows.extend(rows)
    md = write_results("summary", all_rows, cfg, {"notes": notes.lines, "load_avg_at_start": load_at_start})
    print(f"wrote {md} and {md.with_suffix('.json')}")
    if args.readme:
        from bench.common import ROOT, update_readme

        update_readme(ROOT / "README.md", all_rows, notes.lines, started=load_at_start)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
