"""Shared test setup: the offline harness fixtures (tiny models, real servers)."""

import pytest
from hypothesis import settings

from tests.fixtures.pytest_fixtures import (
    browser_page,
    chromium,
    hub_recorder,
    launch_app,
    local_app,
    proxy,
    real_model,
    recorder,
    serve,
    serve_nosystem,
    serve_session,
    serve_vlm,
    smollm2_gguf,
    start_app,
    tiny_models,
)
from tests.fixtures.tiers import mark_and_order

__all__ = [
    "browser_page",
    "chromium",
    "hub_recorder",
    "launch_app",
    "local_app",
    "proxy",
    "real_model",
    "recorder",
    "serve",
    "serve_nosystem",
    "serve_session",
    "serve_vlm",
    "smollm2_gguf",
    "start_app",
    "tiny_models",
]

# The shared CI machine's timing is noisy: a first example that imports a module can take
# seconds. Hypothesis' per-example deadline would report that as a failure; the suite's
# own timeouts still bound every test.
settings.register_profile("hfchat", deadline=None)
settings.load_profile("hfchat")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test gets its tier's marker from its folder; the unit tier runs first."""
    mark_and_order(items)
