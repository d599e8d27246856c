"""Tokens: where they come from, fingerprints instead of tokens, and redaction."""

from __future__ import annotations

import pytest

from hfchat.tokens import REDACTED, Fingerprinter, redact, resolve_token
from tests.fixtures import SENTINEL_TOKEN


def test_session_token_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "env-token-value")
    assert resolve_token(SENTINEL_TOKEN) == SENTINEL_TOKEN
    assert resolve_token("  ") == "env-token-value"


def test_fingerprint_tells_tokens_apart_without_containing_them() -> None:
    fingerprint = Fingerprinter()
    assert fingerprint(SENTINEL_TOKEN) == fingerprint(SENTINEL_TOKEN), "stable: the cache finds its entries"
    assert fingerprint(SENTINEL_TOKEN) != fingerprint(SENTINEL_TOKEN + "x")
    assert SENTINEL_TOKEN not in fingerprint(SENTINEL_TOKEN)
    assert fingerprint(None) == "anonymous"
    assert Fingerprinter()(SENTINEL_TOKEN) != fingerprint(SENTINEL_TOKEN), "each has its own key"


def test_redact_masks_given_env_and_token_shaped_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    env_value = "env-secret-" + "9" * 12
    monkeypatch.setenv("HF_TOKEN", env_value)
    shaped = "hf_" + "Ab1" * 10  # built here so no token-shaped literal is in the source
    text = f"bad token {SENTINEL_TOKEN}; env {env_value}; echoed {shaped}."
    out = redact(text, SENTINEL_TOKEN)
    assert SENTINEL_TOKEN not in out and env_value not in out and shaped not in out
    assert out.count(REDACTED) == 3
    assert redact("nothing secret here", None) == "nothing secret here"


def test_token_precedence_box_then_sign_in_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    box, signed_in, env = SENTINEL_TOKEN + "-box", SENTINEL_TOKEN + "-oauth", SENTINEL_TOKEN + "-env"
    monkeypatch.delenv("HUGGINGFACEHUB_API_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN", env)
    assert resolve_token(box, signed_in) == box
    assert resolve_token("", signed_in) == signed_in
    assert resolve_token(" ", None) == env
    monkeypatch.delenv("HF_TOKEN")
    assert resolve_token(None, None) is None
