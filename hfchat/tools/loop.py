"""Running the model's tool calls: in parallel, each within --tool-timeout, Stop ending the wait.

A call's failure is the tool's result, never the turn's: an unknown tool, arguments that are not
a JSON object, a `ToolError`, a timeout, or a bug in a tool (logged with its traceback) all come
back as an error result the model reads and the user sees. Results are redacted and capped
before anyone sees them. Gradio-free.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from hfchat.tools.types import MAX_RESULT_CHARS, Tool, ToolCallRequest, ToolError

log = logging.getLogger(__name__)

TOOL_THREAD_NAME = "hfchat-tool"

POLL_S = 0.1
"""How often a wait for results looks at Stop."""


@dataclass(frozen=True)
class CallResult:
    """How one call ended: its text for the model (and the user), and whether it failed."""

    request: ToolCallRequest
    server: str
    result: str
    error: bool
    duration_s: float


def capped(text: str, limit: int = MAX_RESULT_CHARS) -> str:
    """`text` within `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… {len(text) - limit:,} more characters left out]"


def run_calls(
    requests: Sequence[ToolCallRequest],
    tools: Mapping[str, Tool],
    cancel: threading.Event,
    timeout_s: float,
    clean: Callable[[str], str] = lambda text: text,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[CallResult]:
    """Each call's result as it ends (independent calls run at once, one daemon thread each:
    a hung tool is left behind, never joined). `clean` redacts a result before it is kept.

    Returns as soon as `cancel` is set (Stop), without the results still running; the tools
    were handed `cancel` and stop on their own."""
    done: queue.Queue[CallResult] = queue.Queue()
    started = clock()
    running: dict[str, ToolCallRequest] = {}
    for request in requests:
        tool = tools.get(request.name)
        refusal = _refusal(request, tool, tools)
        if refusal or tool is None:
            yield CallResult(request, tool.spec.server if tool else "", clean(refusal), True, 0.0)
            continue
        running[request.id] = request
        thread = threading.Thread(
            target=_run, args=(tool, request, cancel, done, clean, clock), name=TOOL_THREAD_NAME, daemon=True
        )
        thread.start()
    while running:
        if cancel.is_set():
            return
        left = started + timeout_s - clock()
        if left <= 0:
            for request in running.values():
                server = tools[request.name].spec.server
                message = f"the tool {request.name} did not answer within {timeout_s:g} s (--tool-timeout)"
                yield CallResult(request, server, message, True, timeout_s)
            return
        try:
            result = done.get(timeout=min(POLL_S, left))
        except queue.Empty:
            continue
        if running.pop(result.request.id, None) is not None:
            yield result


def _refusal(request: ToolCallRequest, tool: Tool | None, tools: Mapping[str, Tool]) -> str:
    if tool is None:
        offered = ", ".join(sorted(tools)) or "none"
        return f"there is no tool named {request.name!r}; the tools are: {offered}"
    return request.error


def _run(
    tool: Tool,
    request: ToolCallRequest,
    cancel: threading.Event,
    done: queue.Queue[CallResult],
    clean: Callable[[str], str],
    clock: Callable[[], float],
) -> None:
    started = clock()
    try:
        text, error = tool.run(request.arguments or {}, cancel), False
    except ToolError as exc:
        text, error = exc.message, True
    except Exception as exc:  # noqa: BLE001 - a tool's bug is its result, not the app's crash
        trace = "".join(traceback.format_exception(exc))
        log.error("tool %s failed unexpectedly:\n%s", request.name, clean(trace))
        text, error = f"the tool failed unexpectedly ({type(exc).__name__})", True
    done.put(CallResult(request, tool.spec.server, capped(clean(str(text))), error, clock() - started))
