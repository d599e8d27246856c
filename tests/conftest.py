"""Shared test setup: the offline harness fixtures (tiny models, real servers)."""

from hypothesis import settings

from tests.fixtures.pytest_fixtures import (
    browser_page,
    chromium,
    hub_recorder,
    launch_app,
    local_app,
    proxy,
    recorder,
    serve,
    serve_nosystem,
    serve_session,
    serve_vlm,
    start_app,
    tiny_models,
)

__all__ = [
    "browser_page",
    "chromium",
    "hub_recorder",
    "launch_app",
    "local_app",
    "proxy",
    "recorder",
    "serve",
    "serve_nosystem",
    "serve_session",
    "serve_vlm",
    "start_app",
    "tiny_models",
]

# The shared CI machine's timing is noisy: a first example that imports a module can take
# seconds. Hypothesis' per-example deadline would report that as a failure; the suite's
# own timeouts still bound every test.
settings.register_profile("hfchat", deadline=None)
settings.load_profile("hfchat")
