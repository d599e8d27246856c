"""Where the app runs: a Hugging Face Space (sign-in, ZeroGPU) or behind a public link.

Gradio-free: plain functions over the environment, so each branch is tested without a Space.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

OAUTH_VAR = "OAUTH_CLIENT_ID"
"""Set by Spaces whose README front matter has `hf_oauth: true`: visitors can sign in."""
ZERO_GPU_VAR = "SPACES_ZERO_GPU"
"""Set by Spaces running on ZeroGPU hardware."""


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def oauth_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True on a Space with sign-in. Elsewhere Gradio's login would need a machine logged in to
    the Hub (its local mock calls whoami), so the sign-in button is only shown here."""
    return bool(_env(environ).get(OAUTH_VAR, "").strip())


def zero_gpu(environ: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space with the `spaces` package installed."""
    flag = _env(environ).get(ZERO_GPU_VAR, "").strip().lower()
    return flag in ("1", "true", "yes") and importlib.util.find_spec("spaces") is not None


def on_gpu(fn: F, environ: Mapping[str, str] | None = None) -> F:
    """`spaces.GPU(fn)` on ZeroGPU, so local generation gets a GPU for each call; `fn` itself
    everywhere else. Decided once, when the local backend is imported."""
    if not zero_gpu(environ):
        return fn
    import spaces

    return spaces.GPU(fn)  # type: ignore[no-any-return]


def public_token_warning(public: bool, protected: bool, environ: Mapping[str, str] | None = None) -> str | None:
    """The start-up warning for a public app that holds a server-side token, or None.

    Anyone who can open the app would spend that token; `--auth` narrows who can.
    The token itself is never part of the message.
    """
    from hfchat.tokens import ENV_VARS, env_token

    if not public or protected or not env_token(environ):
        return None
    names = " or ".join(ENV_VARS)
    return (
        f"This app is public (a share link, a Space, or a non-loopback host) and holds a server-side "
        f"token ({names}): anyone who opens it spends that token. Require a login with --auth user:pass "
        "(HFCHAT_AUTH), or remove the token and let visitors sign in with Hugging Face (hf_oauth on a "
        "Space) or paste their own token in the sidebar."
    )
