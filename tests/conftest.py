"""Shared test setup: the offline harness fixtures (tiny models, real servers)."""

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
    "tiny_models",
]
