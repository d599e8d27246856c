"""Shared test setup: the offline harness fixtures (tiny models, real servers)."""

from tests.fixtures.pytest_fixtures import (
    hub_recorder,
    proxy,
    recorder,
    serve,
    serve_nosystem,
    serve_session,
    serve_vlm,
    tiny_models,
)

__all__ = ["hub_recorder", "proxy", "recorder", "serve", "serve_nosystem", "serve_session", "serve_vlm", "tiny_models"]
