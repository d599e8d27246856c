"""`python app.py` as a subprocess on a free loopback port, started as the README says.

Used by the browser tests, the tests that must see a process die, and the benchmarks.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from hfchat.testing.servers import Recorder, free_port

if TYPE_CHECKING:
    from typing import Self

ROOT = Path(__file__).resolve().parents[2]
"""The checkout: `app.py` lives here."""

# Variables that would change what the app does if inherited from the developer's shell.
_NOT_INHERITED = re.compile(r"^(HF_TOKEN|HUGGINGFACEHUB_API_TOKEN|HFCHAT_.*|GRADIO_SERVER_.*|SPACE_ID|SYSTEM)$")


_LIVE_APPS: weakref.WeakSet[AppProcess] = weakref.WeakSet()


@atexit.register
def _stop_live_apps() -> None:
    """Never leave an app behind after the test run."""
    for app in list(_LIVE_APPS):
        app.stop()


class AppProcess:
    """``python app.py <args>`` on a free loopback port, as the README starts it.

    ``env`` adds to (or, with ``None`` values, removes from) the cleaned environment.
    ``hub`` is a fresh ``Recorder`` behind ``HF_ENDPOINT``: ``app.hub.requests`` lists every Hub
    call the app made. Output goes to ``log_path``; ``log_text()`` reads it (stderr included).
    """

    def __init__(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        self.args = list(args)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.startup_timeout = startup_timeout
        self.hub = Recorder()
        base = {k: v for k, v in os.environ.items() if not _NOT_INHERITED.match(k)}
        base |= {
            "HF_ENDPOINT": self.hub.url,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
        for key, value in (env or {}).items():
            if value is None:
                base.pop(key, None)
            else:
                base[key] = value
        self.env = base
        self.log_path = Path(tempfile.mkdtemp(prefix="hfchat-app-")) / "app.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return [sys.executable, "app.py", "--port", str(self.port), *self.args]

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> Self:
        """Start the app and block until ``GET /`` answers 200 (or fail with its log)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches every child
            )
        _LIVE_APPS.add(self)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"app exited with {self.proc.returncode} during start-up:\n{self.log_text()[-4000:]}"
                )
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"app not answering after {self.startup_timeout:.0f}s:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        """Terminate the app's process group (SIGKILL if it does not exit in 15 s)."""
        proc, self.proc = self.proc, None
        _LIVE_APPS.discard(self)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)
        self.hub.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
