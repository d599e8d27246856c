"""Let custom endpoints work under HF_HUB_OFFLINE=1.

huggingface_hub refuses every request when offline mode is on, even to a server on the
user's own network (`OfflineModeIsEnabled`). Offline mode is about the Hugging Face Hub,
so we install a client factory whose request hook lets through only the origins of custom
endpoints the user configured, and keeps huggingface_hub's own hook for everything else.
"""

from __future__ import annotations

import functools
import threading
from urllib.parse import urlsplit

import httpx

_lock = threading.Lock()
_allowed: set[tuple[str, str, int | None]] = set()


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    parts = urlsplit(str(url))
    return (parts.scheme, (parts.hostname or "").lower(), parts.port)


def _request_hook(request: httpx.Request) -> None:
    from huggingface_hub import constants
    from huggingface_hub.utils._http import hf_request_event_hook

    if constants.is_offline_mode() and _origin(request.url) in _allowed:
        return
    hf_request_event_hook(request)


def _client_factory() -> httpx.Client:
    return httpx.Client(event_hooks={"request": [_request_hook]}, follow_redirects=True, timeout=None)


@functools.cache
def _install_client_factory() -> None:
    """Once per process: later calls would only replace the factory with itself."""
    from huggingface_hub import set_client_factory

    set_client_factory(_client_factory)


def allow_endpoint(url: str) -> None:
    """Exempt this endpoint's origin from offline mode; the Hub itself stays blocked."""
    with _lock:
        _allowed.add(_origin(url))
        _install_client_factory()
