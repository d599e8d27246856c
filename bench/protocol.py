"""A browser tab without the browser: Gradio's page protocol (sse_v3), as the page speaks it.

`gradio_client` adds 60–75 ms of its own before the first token (threads, polling), so a
benchmark timed through it measures the client. The page does less: for each event of a
chain it POSTs `/gradio_api/run/predict` (unqueued events) or `/gradio_api/queue/join` and
reads `/gradio_api/queue/data?session_hash=…` as server-sent events (queued ones), then runs
the events chained after it (`.then`, `.success`, a state's `.change`). `PageSession` does
the same from the app's `/config`, so it follows whatever app is checked out: the chain
behind the chat box's submit is found, not hard-coded (hfchat: `begin` unqueued, then the
queued `respond`; the Chatbot template: `gr.ChatInterface`'s six-event chain).

What the page sends was checked against Chromium's requests (tests/fixtures/browser.py):
the same bodies (`data`, `event_data`, `fn_index`, `trigger_id`, `session_hash`), state
inputs as null, each input the value the page holds (the config's, updated by every output
and streamed diff). Differences, none of which the server sees as extra work: events the
page would start side by side run one after another; JavaScript-only events and an event's
`js` pre-function are not run (their inputs go as held); no heartbeat stream is kept open.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

PROTOCOL = "sse_v3"
STREAMING_MSGS = ("process_generating",)


@dataclass
class Turn:
    """One chat turn as the page saw it: times from pressing Enter, and the stream's size."""

    ttft_s: float = float("nan")
    """To the first streamed update whose reply text is not empty."""
    total_s: float = float("nan")
    """To the end of the whole chain (the box unlocked, the conversation saved)."""
    text: str = ""
    events: int = 0
    """Server-sent `process_generating` events of the streaming event."""
    sse_bytes: int = 0
    """Bytes of every queued event's SSE stream in the chain."""
    calls: int = 0
    """HTTP requests of the chain (run/predict, queue/join, queue/data)."""
    cpu_s: float = 0.0
    """The app process's CPU-seconds over the turn (filled in by `PageSession.turn`)."""
    errors: list[str] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, all its threads (psutil: 10 ms ticks)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def apply_diff(value: Any, diff: list[list[Any]]) -> Any:
    """Apply one streamed output's edits, as Gradio's JS client does (`apply_diff_stream`)."""
    for action, path, new in diff:
        value = _edit(value, list(path), action, new)
    return value


def _edit(target: Any, path: list[Any], action: str, new: Any) -> Any:
    if not path:
        if action == "replace":
            return new
        if action == "append":
            return target + new
        raise ValueError(f"unknown diff action {action!r} at the root")
    parent = target
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "replace":
        parent[last] = new
    elif action == "append":
        parent[last] += new
    elif action == "add":
        if isinstance(parent, list):
            parent.insert(last, new)
        else:
            parent[last] = new
    elif action == "delete":
        del parent[last]
    else:
        raise ValueError(f"unknown diff action {action!r}")
    return target


def reply_text(messages: Any) -> str:
    """The answer after the last user message in a chatbot value (messages format): the
    assistant messages without metadata."""
    if not isinstance(messages, list):
        return ""
    parts: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") == "user":
            parts = []
        elif message.get("role") == "assistant" and not message.get("metadata"):
            # messages with metadata are not the answer: thinking, notices, hfchat's footer
            content = message.get("content")
            items = content if isinstance(content, list) else [content]
            for item in items:
                if isinstance(item, str):
                    parts.append(item)
                elif isinstance(item, Mapping) and item.get("type") == "text":
                    parts.append(str(item.get("text", "")))
    return "".join(parts)


class PageApp:
    """What the page knows about an app: its config, and the chain behind the chat box."""

    def __init__(self, url: str, pid: int | None = None, box: str | None = None) -> None:
        self.url = url.rstrip("/") + "/"
        self.pid = pid
        with httpx.Client(base_url=self.url, timeout=60) as http:
            self.config: dict[str, Any] = http.get("config").json()
        if self.config.get("protocol") != PROTOCOL:
            raise RuntimeError(f"the page speaks {self.config.get('protocol')!r}; this client speaks {PROTOCOL}")
        self.api = str(self.config.get("api_prefix", "/gradio_api")).strip("/")
        self.components: dict[int, dict[str, Any]] = {c["id"]: c for c in self.config["components"]}
        self.deps: list[dict[str, Any]] = self.config["dependencies"]
        self.chatbots = {i for i, c in self.components.items() if c.get("type") == "chatbot"}
        self.submit, self.box = self._chat_submit(None if box is None else self.find(box))

    @property
    def blocks(self) -> int:
        return len(self.components)

    @property
    def handlers(self) -> int:
        return len(self.deps)

    def after(self, index: int, success: bool) -> list[int]:
        """Events the page starts when event `index` ends (`.then`, or `.success` if it worked)."""
        dep_id = self.deps[index].get("id", index)
        return [
            i
            for i, d in enumerate(self.deps)
            if d.get("trigger_after") == dep_id and (success or not d.get("trigger_only_on_success"))
        ]

    def triggered(self, component: int | None, event: str) -> list[int]:
        return [i for i, d in enumerate(self.deps) if [component, event] in [list(t) for t in d["targets"]]]

    def chain(self, index: int) -> list[int]:
        """Every event reachable from `index` through `.then`/`.success` (for discovery)."""
        seen, todo = [], [index]
        while todo:
            i = todo.pop(0)
            if i not in seen:
                seen.append(i)
                todo.extend(self.after(i, True))
        return seen

    def _chat_submit(self, box: int | None) -> tuple[int, int]:
        """The submit event of the chat box (`box`, else the first box whose submit chain
        streams into a chatbot; hfchat's is named by its elem_id, "chat-box")."""
        for i, dep in enumerate(self.deps):
            for component, event in dep["targets"]:
                if event != "submit" or box not in (None, component):
                    continue
                if any(self.deps[j].get("queue") is not False and self.chatbots & set(self.deps[j]["outputs"])
                       for j in self.chain(i)):  # fmt: skip
                    return i, int(component)
        raise RuntimeError("no submit event on this page streams into a chatbot")

    def load_events(self) -> list[int]:
        return self.triggered(0, "load") if 0 not in self.components else self.triggered(None, "load")

    def cheap_event(self) -> int:
        """An unqueued event with no inputs (the page's smallest request): opens a session."""
        for i, d in enumerate(self.deps):
            if d.get("queue") is False and not d["inputs"] and d.get("backend_fn", True):
                return i
        raise RuntimeError("no unqueued event without inputs on this page")

    def find(self, label_or_elem_id: str) -> int:
        for i, c in self.components.items():
            props = c.get("props", {})
            if label_or_elem_id in (props.get("label"), props.get("elem_id")):
                return i
        raise KeyError(f"no component labelled {label_or_elem_id!r}")


class PageSession:
    """One tab: a session hash, the values the page holds, one HTTP connection.

    `overrides` sets inputs by label or elem_id as a visitor would (the template's sliders)."""

    def __init__(self, app: PageApp, overrides: Mapping[str, Any] | None = None) -> None:
        self.app = app
        self.overrides = dict(overrides or {})
        self.http = httpx.Client(base_url=app.url, timeout=httpx.Timeout(600, connect=30))
        self.renew()

    def renew(self) -> None:
        """A new session on the same connection: a fresh hash and the page's initial values
        (no history). Its first event creates the session on the server, as a client
        calling the API without a session does; no page load, no load events."""
        self.hash = secrets.token_hex(6)
        self.values: dict[int, Any] = {}
        for i, c in self.app.components.items():
            self.values[i] = None if c.get("type") == "state" else c.get("props", {}).get("value")
        for key, value in self.overrides.items():
            self.values[self.app.find(key)] = value

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> PageSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """What a page open sends: the HTML (config inside), the load events, and the
        smallest event, so that the session exists on the server before a timed turn."""
        self.http.get("").raise_for_status()
        for i in self.app.load_events():
            self.run_chain(i, trigger=None, turn=Turn())
        self.event(self.app.cheap_event(), None, Turn())

    def turn(self, text: str) -> Turn:
        """Type `text` into the chat box and press Enter; returns when the chain has ended."""
        box = self.app.box
        kind = self.app.components[box].get("type")
        self.values[box] = {"text": text, "files": []} if kind == "multimodaltextbox" else text
        turn = Turn()
        cpu0 = cpu_seconds(self.app.pid) if self.app.pid else 0.0
        started = time.perf_counter()
        self.run_chain(self.app.submit, trigger=box, turn=turn, started=started)
        turn.total_s = time.perf_counter() - started
        if self.app.pid:
            turn.cpu_s = cpu_seconds(self.app.pid) - cpu0
        if turn.errors:
            raise RuntimeError(f"the page's events failed: {turn.errors[:3]}")
        return turn

    def run_chain(self, index: int, trigger: int | None, turn: Turn, started: float | None = None) -> None:
        todo: list[tuple[int, int | None]] = [(index, trigger)]
        while todo:
            i, by = todo.pop(0)
            success, changed = self.event(i, by, turn, started)
            todo.extend((j, by) for j in self.app.after(i, success))
            for state in changed:  # the page dispatches a changed state's .change, the state as trigger
                todo.extend((j, state) for j in self.app.triggered(state, "change"))

    def _body(self, index: int, trigger: int | None) -> dict[str, Any]:
        dep = self.app.deps[index]
        return {
            "data": [self.values.get(i) for i in dep["inputs"]],
            "event_data": None,
            "fn_index": index,
            "trigger_id": trigger,
            "session_hash": self.hash,
        }

    def _apply(self, index: int, data: list[Any]) -> None:
        for component, value in zip(self.app.deps[index]["outputs"], data, strict=False):
            if isinstance(value, Mapping) and value.get("__type__") == "update":
                if "value" in value:
                    self.values[component] = value["value"]
            else:
                self.values[component] = value

    def event(
        self, index: int, trigger: int | None, turn: Turn, started: float | None = None
    ) -> tuple[bool, list[int]]:
        """Run one event as the page does; returns whether it succeeded, and the states it changed."""
        dep = self.app.deps[index]
        if not dep.get("backend_fn", True):
            return True, []  # JavaScript only: the page never asks the server
        body = self._body(index, trigger)
        api = self.app.api
        turn.calls += 1
        if dep.get("queue") is False:
            r = self.http.post(f"{api}/run/predict", json=body)
            if r.status_code != 200:
                turn.errors.append(f"{index}: HTTP {r.status_code} {r.text[:200]}")
                return False, []
            out = r.json()
            self._apply(index, out["data"])
            return True, list(out.get("changed_state_ids") or [])
        joined = self.http.post(f"{api}/queue/join", json=body)
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        turn.calls += 1
        return self._stream(index, event_id, turn, started)

    def _messages(self) -> Iterator[tuple[dict[str, Any], int]]:
        with self.http.stream("GET", f"{self.app.api}/queue/data", params={"session_hash": self.hash}) as r:
            r.raise_for_status()
            for line in r.iter_lines():
                if line.startswith("data:"):
                    yield json.loads(line[5:]), len(line) + 2

    def _stream(self, index: int, event_id: str, turn: Turn, started: float | None) -> tuple[bool, list[int]]:
        outputs = self.app.deps[index]["outputs"]
        chatbots = [k for k, c in enumerate(outputs) if c in self.app.chatbots]
        current: list[Any] | None = None
        changed: list[int] = []  # states a streamed update changed: the page dispatches their .change too
        for msg, size in self._messages():
            turn.sse_bytes += size
            kind = msg.get("msg")
            if kind == "close_stream":
                break
            if msg.get("event_id") != event_id:
                continue
            if kind in STREAMING_MSGS:
                data = msg["output"]["data"]
                changed += [i for i in msg["output"].get("changed_state_ids") or [] if i not in changed]
                if current is None:
                    current = list(data)
                else:  # later updates are diffs of the first, output by output
                    current = [apply_diff(v, d) for v, d in zip(current, data, strict=True)]
                self._apply(index, current)
                if chatbots:
                    turn.events += 1
                    text = reply_text(current[chatbots[0]])
                    if text and started is not None and turn.ttft_s != turn.ttft_s:  # NaN: not yet
                        turn.ttft_s = time.perf_counter() - started
            elif kind == "process_completed":
                out = msg.get("output") or {}
                if not msg.get("success"):
                    turn.errors.append(f"{index}: {out.get('error') or out}"[:300])
                    return False, []
                data = out.get("data") or []  # whole values, not diffs
                self._apply(index, data)
                if chatbots:
                    text = reply_text(self.values.get(outputs[chatbots[0]]))
                    turn.text = text or turn.text
                    if text and started is not None and turn.ttft_s != turn.ttft_s:
                        turn.ttft_s = time.perf_counter() - started
                return True, [*changed, *(i for i in out.get("changed_state_ids") or [] if i not in changed)]
        turn.errors.append(f"{index}: the event stream closed before the event completed")
        return False, []
