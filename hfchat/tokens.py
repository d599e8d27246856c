"""Where the token comes from, and how it is identified without being revealed."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping

ENV_VARS = ("HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN")

# A per-process key: fingerprints can't be compared across processes or brute-forced offline.
_KEY = secrets.token_bytes(32)


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


def fingerprint(token: str | None) -> str:
    """A short keyed hash that tells tokens apart in cache keys, never the token itself."""
    if not token:
        return "anonymous"
    return hmac.new(_KEY, token.encode(), hashlib.sha256).hexdigest()[:16]


# Token-shaped strings (hf_ plus a long run of letters and digits), as a second net behind
# the exact tokens we know: a server may echo a token it was sent in its error body.
_TOKEN_SHAPED = re.compile(r"hf_[A-Za-z0-9]{20,}")
REDACTED = "hf_***"


def redact(text: str, *tokens: str | None) -> str:
    """`text` with the given tokens, the environment's token and token-shaped strings masked."""
    for token in {*tokens, env_token()}:
        if token and len(token) >= 8:
            text = text.replace(token, REDACTED)
    return _TOKEN_SHAPED.sub(REDACTED, text)
