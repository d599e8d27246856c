"""Inference Providers that can chat, read from huggingface_hub's own registry.

The list is never typed by hand: it follows whatever huggingface_hub version is installed.
"""

from __future__ import annotations

from functools import cache

AUTO = "auto"


@cache
def chat_providers() -> tuple[str, ...]:
    """'auto' first, then every provider huggingface_hub can send a chat completion to."""
    from huggingface_hub.inference._providers import PROVIDERS

    names = sorted(name for name, tasks in PROVIDERS.items() if "conversational" in tasks)
    return (AUTO, *names)
