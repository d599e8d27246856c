"""What the `/chat` and `/ask` API endpoints accept, checked before the turn starts.

`/chat` takes the chat box's `{"text", "files"}` or a plain string; `/ask` also takes a
history of `{role, content}` messages. Both raise `ConfigError` naming the field, which the
Gradio layer turns into the message a client reads (never Gradio's generic error).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfchat.errors import ConfigError

_FILE_META = "gradio.FileData"
"""The marker `gradio_client.handle_file` puts on a file: only such files were uploaded to the
app and checked by Gradio to lie in its upload folder (a bare path could name any file)."""


def box_message(value: Any) -> dict[str, Any]:
    """The message as the chat box's `{"text": str, "files": [...]}`, from a plain string or
    that dict; files must have come through `handle_file` (uploaded, hence checked)."""
    if isinstance(value, str):
        return {"text": value, "files": []}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"message: expected a string or {{'text': ..., 'files': [...]}}, got {type(value).__name__}.",
            'Send the message as a string, e.g. predict("hi", api_name="/chat").',
            field="message",
        )
    unknown = sorted(set(value) - {"text", "files"})
    if unknown:
        raise ConfigError(
            f"message: unknown key {unknown[0]!r}; a message has 'text' and 'files'.",
            "Send the message as a string, or as {'text': ..., 'files': [...]}.",
            field="message",
        )
    text = value.get("text") or ""
    if not isinstance(text, str):
        raise ConfigError(f"message.text: expected a string, got {type(text).__name__}.", field="message")
    files = value.get("files") or []
    if not isinstance(files, list) or not all(_uploaded(f) for f in files):
        raise ConfigError(
            "message.files: each file must be attached with gradio_client.handle_file(path).",
            "Attach files as {'text': ..., 'files': [handle_file('cat.png')]}.",
            field="message",
        )
    return {"text": text, "files": files}


def _uploaded(item: Any) -> bool:
    meta = item.get("meta") if isinstance(item, Mapping) else None
    return isinstance(meta, Mapping) and meta.get("_type") == _FILE_META and isinstance(item.get("path"), str)


def plain_history(value: Any) -> list[dict[str, str]]:
    """`/ask`'s history: a list of `{"role": "user" | "assistant" | "system", "content": str}`.

    System messages are the caller's system prompt, which `/ask` takes as the setting
    `system_prompt`: one in the history is refused rather than silently reordered."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"history: expected a list of messages, got {type(value).__name__}.", field="history")
    out = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping) or set(item) - {"role", "content"}:
            raise ConfigError(
                f"history[{index}]: expected {{'role': ..., 'content': ...}}.",
                'Each message is {"role": "user" or "assistant", "content": "text"}.',
                field="history",
            )
        role, content = item.get("role"), item.get("content")
        if role not in ("user", "assistant"):
            hint = "Pass it as the setting system_prompt." if role == "system" else ""
            raise ConfigError(
                f"history[{index}].role: expected 'user' or 'assistant', got {role!r}.", hint, field="history"
            )
        if not isinstance(content, str):
            raise ConfigError(f"history[{index}].content: expected a string.", field="history")
        out.append({"role": role, "content": content})
    return out
