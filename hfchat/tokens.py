"""Where the token comes from, and how it is identified without being revealed."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path

ENV_VARS = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")


def env_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The server-side token from the environment, if any."""
    env = os.environ if environ is None else environ
    for name in ENV_VARS:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def resolve_token(session_token: str | None, oauth_token: str | None = None) -> str | None:
    """Whose token pays for a call, in this order: the visitor's sidebar box, the visitor's
    Hugging Face sign-in (OAuth on a Space), then the server's environment token."""
    for candidate in (session_token, oauth_token):
        if candidate and candidate.strip():
            return candidate.strip()
    return env_token()


class Fingerprinter:
    """Short keyed hashes that tell tokens apart in cache keys, never the tokens themselves.

    Its key is its own, random: fingerprints can't be compared across processes (or across
    fingerprinters) or brute-forced offline. The chat service holds one for its cache keys.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def __call__(self, token: str | None) -> str:
        if not token:
            return "anonymous"
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()[:16]


# Token-shaped strings (hf_ plus a long run of letters and digits), as a second net behind
# the exact tokens we know: a server may echo a token it was sent in its error body.
_TOKEN_SHAPED = re.compile(r"hf_[A-Za-z0-9]{20,}")
# The same with hyphens, dots or underscores inserted, in any case: masked when its letters and
# digits look random (mixed case, or letters and digits), so HF_HUB_DISABLE_TELEMETRY_... stays.
# Not whitespace: for a token nobody gave us, nothing would say where it ends among the words.
_TOKEN_SHAPED_SPLIT = re.compile(r"(?<![A-Za-z0-9])hf[-._]{0,3}[A-Za-z0-9](?:[-._]{0,3}[A-Za-z0-9]){29,}", re.I)
REDACTED = "hf_***"
_SEPARATORS = r"[\W_]{0,3}"
"""What a server may put between a known token's characters: hyphens, spaces, dots, line breaks."""
_MIN_FUZZY = 12
"""Known tokens shorter than this (letters and digits) get the exact pass only: a short one
with separators allowed would match ordinary words."""
_patterns: dict[str, re.Pattern[str]] = {}
_pattern_key = Fingerprinter()
"""What `_patterns` is keyed by: a memo of this module, so it has its own fingerprints."""
_patterns_lock = threading.Lock()
_MAX_PATTERNS = 256


def _token_pattern(token: str) -> re.Pattern[str] | None:
    """The token's letters and digits in order or reversed, with separators allowed between them,
    in any case. Compiled once per token and kept under its fingerprint, never the token."""
    key = _pattern_key(token)
    with _patterns_lock:
        pattern = _patterns.get(key)
    if pattern is not None:
        return pattern
    core = re.sub(r"[\W_]", "", token)
    if len(core) < _MIN_FUZZY:
        return None
    pattern = re.compile("|".join(_SEPARATORS.join(map(re.escape, form)) for form in (core, core[::-1])), re.I)
    with _patterns_lock:
        if len(_patterns) >= _MAX_PATTERNS:
            _patterns.clear()
        _patterns[key] = pattern
    return pattern


def _looks_random(match: re.Match[str]) -> str:
    body = re.sub(r"[-._]", "", match.group())[2:]
    kinds = sum((any(c.islower() for c in body), any(c.isupper() for c in body), any(c.isdigit() for c in body)))
    return REDACTED if kinds >= 2 else match.group()


def _mask_shaped(text: str) -> str:
    return _TOKEN_SHAPED_SPLIT.sub(_looks_random, _TOKEN_SHAPED.sub(REDACTED, text))


def login_token() -> str | None:
    """The token `hf auth login` saved (HF_HOME/token), read without huggingface_hub's
    get_token(), which may refresh it over the network."""
    from huggingface_hub import constants

    try:
        return Path(constants.HF_TOKEN_PATH).read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def redact(text: str, *tokens: str | None) -> str:
    """`text` with every token we know of masked, and anything token-shaped.

    Known tokens are the given ones, the environment's and the login file's. Each is masked
    exactly, then in what survives normalisation: separators (hyphens, spaces, dots,
    underscores) inserted or removed, reversed, any case. Then token-shaped runs, forwards and
    reversed. Called on every error shown or logged, never on the happy path.
    """
    known = {t for t in {*tokens, env_token(), login_token()} if t and len(t) >= 8}
    for token in sorted(known, key=len, reverse=True):
        text = text.replace(token, REDACTED)
    for token in known:
        if (pattern := _token_pattern(token)) is not None:
            text = pattern.sub(REDACTED, text)
    text = _mask_shaped(text)
    if "fh" not in text.lower():
        return text
    # Reversed: mask in the reversed text, where a new mask must read reversed to come out right.
    return _mask_shaped(text[::-1]).replace(REDACTED, REDACTED[::-1])[::-1]
