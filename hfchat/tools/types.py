"""What every tool and every backend share: `ToolSpec` (what the model is offered), the `Tool`
protocol (how the loop runs one), `ToolCallRequest` (a call as the model made it) and
`ToolError` (a failure the model is told about, never an app error).

A leaf module: it imports nothing of hfchat, so the backends, the tools and the chat service
all import it without importing each other.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

BUILT_IN = "built-in"
"""The `server` of the app's own tools (calculator, web_search, current_time)."""

MAX_RESULT_CHARS = 20_000
"""The most of one tool result that goes back to the model (and into the saved conversation):
a web page or an MCP server's answer can be megabytes."""


class ToolError(Exception):
    """A tool failed in a way the model should read (bad arguments, a refused expression, a
    server's error): the loop sends `message` back as the tool's result and shows it; the
    turn goes on. Never raised for a bug of ours."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is offered it: a name unique within the turn, what it does, and its
    arguments' JSON schema (an object schema); `server` says where it runs ("built-in", or an
    MCP server's label), for the call's title."""

    name: str
    description: str
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    server: str = BUILT_IN

    def openai(self) -> dict[str, Any]:
        """The OpenAI `tools` entry, which servers and chat templates (`tools=`) both take."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": dict(self.parameters)},
        }


class Tool(Protocol):
    """One runnable tool. `run` returns the result as text, or raises ToolError; it should
    return soon after `cancel` is set (Stop), and the loop stops waiting for it at its timeout
    either way."""

    @property
    def spec(self) -> ToolSpec: ...

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str: ...


@dataclass(frozen=True)
class ToolCallChunk:
    """A piece of a streamed tool call (OpenAI's `delta.tool_calls[i]`): servers split one call
    across chunks, the name in the first and the JSON arguments in pieces; pieces with the same
    `index` belong together. A local model's parsed call comes whole, in one chunk."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True)
class ToolCallRequest:
    """One call as the model made it, once its stream ended: `arguments_text` as sent;
    `arguments` is its parsed object, or None when it is not a JSON object (then `error` says
    why, and the loop hands that back to the model instead of running the tool)."""

    id: str
    name: str
    arguments_text: str

    @property
    def arguments(self) -> dict[str, Any] | None:
        parsed = self._parsed()
        return parsed if isinstance(parsed, dict) else None

    @property
    def error(self) -> str:
        """Why the arguments cannot be used ("" when they can)."""
        if not self.arguments_text.strip():
            return ""
        try:
            parsed = json.loads(self.arguments_text)
        except json.JSONDecodeError as exc:
            return f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}); send a JSON object"
        return "" if isinstance(parsed, dict) else "the arguments must be a JSON object"

    def _parsed(self) -> Any:
        if not self.arguments_text.strip():
            return {}
        try:
            return json.loads(self.arguments_text)
        except json.JSONDecodeError:
            return None


def joined_calls(chunks: list[ToolCallChunk]) -> list[ToolCallRequest]:
    """The calls that streamed `chunks` make, in the order of their index: the pieces of one
    index joined (the first id and name that came win), a call without an id given one."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        call = calls.setdefault(chunk.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or chunk.id
        call["name"] = call["name"] or chunk.name
        call["arguments"] += chunk.arguments
    return [
        ToolCallRequest(call["id"] or f"call_{index}", call["name"], call["arguments"])
        for index, call in sorted(calls.items())
    ]
