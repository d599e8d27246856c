"""`running_app`: the app as `python app.py` serves it, but built and launched in this process.

In-process, a test can hand the app its own service (to look at its cache, or a `FakeService`)
and monkeypatch what the app imports; the server is still real, on a free loopback port, and
reached over HTTP with gradio_client or httpx, as a visitor would. This is the one module of
`hfchat.testing` that loads gradio (through the UI it launches).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hfchat.cli import AppOptions
from hfchat.testing.servers import free_port
from hfchat.ui.app import build_app, build_service, launch_kwargs
from hfchat.ui.page import queued

if TYPE_CHECKING:
    from gradio import Blocks
    from gradio_client import Client

    from hfchat.chat import ChatService


LAUNCH_ATTEMPTS = 3


@dataclass
class RunningApp:
    """An app launched by `running_app`: its URL (ending in "/"), the Blocks it serves, the
    options it was built with, and the service it was given (None: `build_app` made its own)."""

    url: str
    demo: Blocks
    options: AppOptions
    service: Any = None

    def client(self, **kwargs: Any) -> Client:
        """A new visitor: its own session and, in gradio_client, its own chat history."""
        from gradio_client import Client

        return Client(self.url, verbose=False, **kwargs)


@contextlib.contextmanager
def running_app(options: AppOptions, service: ChatService | Any = None) -> Iterator[RunningApp]:
    """`build_app(options, service)` queued and launched as `main()` does it (the same queue
    limits, page head and password), on 127.0.0.1 and a free port; closed on exit.

    `service` is a `ChatService` or a stand-in such as `FakeService`; None lets `build_app`
    compose the service from `options`, exactly as `python app.py` does.
    """
    service = service or build_service(options)
    demo = queued(build_app(options, service), options)
    for attempt in range(1, LAUNCH_ATTEMPTS + 1):
        port = free_port()
        try:
            demo.launch(
                server_name="127.0.0.1",
                server_port=port,
                prevent_thread_lock=True,
                quiet=True,
                **launch_kwargs(options, service),
            )
            break
        except ValueError as exc:
            # Gradio checks its own URL with a 3 s HEAD: on a loaded machine that can time out,
            # and launch() then says "localhost is not accessible". Not the app's fault: retry.
            demo.close()
            if "localhost is not accessible" not in str(exc) or attempt == LAUNCH_ATTEMPTS:
                raise
    try:
        yield RunningApp(f"http://127.0.0.1:{port}/", demo, options, service)
    finally:
        demo.close()
