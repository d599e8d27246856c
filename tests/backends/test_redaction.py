"""Redaction is not fooled by a mangled token (issue 10, break 12).

A server that echoes the token it was sent may insert a hyphen, spaces or dots, drop the
separators, or reverse it. A loopback endpoint answers 400 with such an echo in its error
body; neither the chat reply nor the log may hold the token in any of those forms, even
compared after normalisation (separators removed, case folded, both directions).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.reply import answer_text
from hfchat.testing.servers import Recorder, json_response
from hfchat.tokens import REDACTED, redact
from tests.fixtures import SENTINEL_TOKEN, sidebar_values

pytestmark = pytest.mark.timeout(120)

# An HF-shaped token nobody gave us (so no exact pass can know it), built here so no
# token-shaped literal sits in the source.
UNKNOWN_TOKEN = "hf_" + "Qx7Lm2Pz" * 4 + "Kd"


def every(n: int, text: str, sep: str) -> str:
    return sep.join(text[i : i + n] for i in range(0, len(text), n))


MANGLINGS: dict[str, Callable[[str], str]] = {
    "exact": lambda t: t,
    "hyphen inserted": lambda t: t[:10] + "-" + t[10:],
    "reversed": lambda t: t[::-1],
    "spaces every 4": lambda t: every(4, t, " "),
    "dots every 3": lambda t: every(3, t, "."),
    "separators removed": lambda t: re.sub(r"[-._\s]", "", t),
    "underscores for hyphens": lambda t: t.replace("-", "_").replace("_", "-", 1),
    "reversed, hyphens every 5": lambda t: every(5, t[::-1], "-"),
    "upper case": lambda t: t.upper(),
    "line break inside": lambda t: t[:15] + "\n" + t[15:],
}


WHITESPACE_MANGLINGS = ("spaces every 4", "line break inside")
"""A token nobody gave us can't be told from the words around it once spaces are inserted
(where would it end?); the token-shaped net takes hyphens, dots and underscores only. The
tokens hfchat holds (the visitor's, HF_TOKEN, the login file's) are masked in every form."""


def cases() -> list[object]:
    out: list[object] = []
    for name, mangle in MANGLINGS.items():
        out.append(pytest.param(mangle, SENTINEL_TOKEN, id=f"{name}-given token"))
        if name not in WHITESPACE_MANGLINGS:
            out.append(pytest.param(mangle, UNKNOWN_TOKEN, id=f"{name}-token-shaped"))
    return out


def normalised(text: str) -> str:
    """What survives normalisation: separators gone, case folded."""
    return re.sub(r"[-_.\s]", "", text).lower()


def assert_no_token(text: str, token: str) -> None:
    core = normalised(token)
    for form in (core, core[::-1]):
        assert form not in normalised(text), f"{form!r} survives normalisation in {text!r}"
    for name, mangle in MANGLINGS.items():
        assert mangle(token) not in text, name


@pytest.mark.parametrize(("mangling", "token"), cases())
def test_redact_masks_mangled_tokens(mangling: Callable[[str], str], token: str) -> None:
    text = f"Invalid credentials: Bearer {mangling(token)} (check your key)"
    out = redact(text, SENTINEL_TOKEN)
    assert REDACTED in out
    assert out.startswith("Invalid credentials: Bearer ") and out.endswith(" (check your key)"), out
    assert_no_token(out, token)


def test_redact_leaves_ordinary_text_alone() -> None:
    text = (
        "The endpoint http://127.0.0.1:8000 rejected the request (400). hf_hub_download failed for "
        "org/model-name_v2.1; see https://huggingface.co/docs. hf models are a great thing to use."
    )
    assert redact(text, SENTINEL_TOKEN) == text


def test_redact_is_fast_on_an_error_with_a_long_traceback() -> None:
    text = ('  File "/srv/app/hfchat/chat.py", line 140, in respond\n    for delta in stream:\n' * 150)[:10_000]
    redact(text, SENTINEL_TOKEN)  # compiles the token's patterns once
    started = time.perf_counter()
    for _ in range(20):
        redact(text, SENTINEL_TOKEN, "another-visitor-token-123456")
    per_call = (time.perf_counter() - started) / 20
    assert per_call < 0.05, f"{per_call * 1000:.1f} ms per redact of 10 KB"


@pytest.mark.parametrize(("mangling", "token"), cases())
def test_a_server_echoing_a_mangled_token_in_a_400_gets_it_neither_shown_nor_logged(
    mangling: Callable[[str], str],
    token: str,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    body = {"error": f"Invalid credentials: Bearer {mangling(token)} is not a valid key"}
    recorder.route("GET", "/v1/models", (404, {}, b""))
    recorder.route("POST", "/v1/chat/completions", json_response(body, 400))
    service = ChatService(cache=ModelCache(2), timeout=10)
    values = sidebar_values(backend="endpoint", endpoint_url=recorder.url)
    shown = answer_text(list(service.respond("Hi", [], values, SENTINEL_TOKEN))[-1])
    assert "rejected the request (400)" in shown and "Invalid credentials: Bearer" in shown, shown
    assert "is not a valid key" in shown, "the server's words around the token are kept"
    assert_no_token(shown, token)
    assert "turn failed" in caplog.text
    assert_no_token(caplog.text, token)
    out, err = capfd.readouterr()
    assert_no_token(out + err, token)
