"""The import graph's rules (`[tool.importlinter]` in pyproject.toml), checked by `lint-imports`:

- `hfchat` outside `hfchat.ui` never imports gradio, directly or through another module;
- `hfchat.ui` (and `hfchat.testing.app`, which launches it) is imported only by the entry
  point, the tests and the benchmarks, so no gradio-free module reaches gradio through it;
- nothing in `hfchat` or `bench` imports `tests`.

app.py is a module, not a package, so it is outside the graph; it only imports `hfchat.ui`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = (
    "hfchat outside hfchat.ui never imports gradio",
    "hfchat.ui is imported only by app.py, the in-process launcher, tests and bench",
    "nothing imports the tests",
)


def test_the_import_contracts_are_kept() -> None:
    lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is not installed: pip install -r requirements-dev.txt"
    done = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-4000:]
    for name in CONTRACTS:  # each rule really ran (a contract dropped from the config would not)
        assert f"{name} KEPT" in report, report[-4000:]
