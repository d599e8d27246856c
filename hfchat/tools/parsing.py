"""How a local model's text becomes tool calls, and which text is the answer.

A local model writes its tool calls as text, in the form its chat template taught it. The
stream shows the text around them and must never show a call's raw markup, so the text goes
through a `ToolCallSplitter`: `feed` returns what is safe to show now (a marker split across
chunks is held back until it is whole, as `hfchat.reply` does for think tags), `finish` the
rest of the visible text and the calls, whole, as `ToolCallChunk`s (index 0..n, ids "call_0"...).

The formats (`tool_format` tells them from the chat template):
- "hermes" (Hermes 2 Pro, Qwen2.5, Qwen3, SmolLM3): one or several
  `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks, text around them allowed;
- "llama3" (Llama 3.1/3.2/3.3 JSON tool calling): the whole reply is
  `{"name": ..., "parameters": {...}}` (several joined by ";"), optionally after `<|python_tag|>`;
- "mistral": `[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`, or the newer
  `[TOOL_CALLS]name[ARGS]{...}` (repeated for several calls); a reply that starts with the bare
  JSON list counts too, since `[TOOL_CALLS]` is a special token a decoder may drop;
- "response_template": the tokenizer declares its own response template
  (`tokenizer.response_template`), parsed by transformers' `transformers.utils.chat_parsing`.
A call whose JSON does not parse is still a call: its `arguments` hold the raw text, so the
tool loop tells the model (`ToolCallRequest.error`) instead of failing the turn.

Gradio-free; imports transformers only for a tokenizer that declares a response template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from hfchat.tools.types import ToolCallChunk, ToolSpec

ToolFormat = Literal["hermes", "llama3", "mistral", "response_template"]
MARKER_FORMATS: tuple[ToolFormat, ...] = ("hermes", "llama3", "mistral")
"""The formats this module parses itself; a template that renders tools in a form none of
them names is parsed for all three (`tool_format` returns None)."""

HERMES_OPEN, HERMES_CLOSE = "<tool_call>", "</tool_call>"
PYTHON_TAG = "<|python_tag|>"
MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID = "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"

PROBE_TOOL = ToolSpec(
    name="hfchat_probe_tool",
    description="Checks whether the chat template renders the tools it is given.",
    parameters={"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
)

_NAME = re.compile(r'"name"\s*:\s*"([^"\\]*)"')


# -- what a template does with tools


def supports_tools(tokenizer: Any) -> bool:
    """True when the tokenizer's chat template renders the tools it is given: a probe tool's
    name appears in a one-turn prompt rendered with it. A template that ignores `tools`
    (SmolLM2's, ChatML without a tools block) would leave the model unaware of them, so the
    tools must not be offered to it."""
    from jinja2 import TemplateError

    if not getattr(tokenizer, "chat_template", None):
        return False
    try:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}],
            tools=[PROBE_TOOL.openai()],
            add_generation_prompt=True,
            tokenize=False,
        )
    except (TemplateError, TypeError, ValueError):
        return False
    return isinstance(prompt, str) and PROBE_TOOL.name in prompt


def tool_format(tokenizer: Any) -> ToolFormat | None:
    """The tool-call format the model was taught, read from its tokenizer: its declared
    response template first (transformers parses that), else the markers its chat template
    writes. None: the template names none of the known markers (parse for all of them)."""
    if getattr(tokenizer, "response_template", None):
        return "response_template"
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # several named templates: the default one, or all of them
        template = template.get("tool_use") or template.get("default") or " ".join(template.values())
    return template_format(template if isinstance(template, str) else "")


def template_format(template: str) -> ToolFormat | None:
    """`tool_format` for a chat template's source."""
    if HERMES_OPEN in template:
        return "hermes"
    if MISTRAL_CALLS in template:
        return "mistral"
    if PYTHON_TAG in template or ("ipython" in template and '"parameters"' in template):
        return "llama3"
    return None


FORMAT_MARKERS: dict[str, tuple[str, ...]] = {
    "hermes": (HERMES_OPEN, HERMES_CLOSE),
    "llama3": (PYTHON_TAG,),
    "mistral": (MISTRAL_CALLS, MISTRAL_ARGS, MISTRAL_CALL_ID),
}


def special_strings(tokenizer: Any) -> frozenset[str]:
    """The text of every special token of the tokenizer (what `skip_special_tokens` drops)."""
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    return frozenset(getattr(tokenizer, "all_special_tokens", []) or []) | frozenset(
        str(t) for t in added.values() if getattr(t, "special", False)
    )


def kept_special_tokens(tokenizer: Any) -> frozenset[str] | None:
    """The special tokens a tool-call reply must be decoded with, or None when the usual
    decoding (every special token skipped) loses nothing. Mistral's `[TOOL_CALLS]`/`[ARGS]`
    and Llama's `<|python_tag|>` are special tokens: skipped, the newer Mistral form
    `name[ARGS]{...}` could not be read. A declared response template gets the raw text
    (all special tokens), as `transformers serve` parses it: its delimiters may be special."""
    specials = special_strings(tokenizer)
    fmt = tool_format(tokenizer)
    if fmt == "response_template":
        return specials or None
    markers = {m for f, ms in FORMAT_MARKERS.items() if fmt in (None, f) for m in ms}
    return frozenset(markers & specials) or None


# -- parsing whole payloads


def _arguments_text(value: Any) -> str:
    """The arguments as JSON text: a dict is dumped, a string (some models quote the object)
    kept as written."""
    if isinstance(value, str):
        return value
    return json.dumps({} if value is None else value, ensure_ascii=False)


def _call_of(obj: Any) -> tuple[str, str] | None:
    """(name, arguments) of a parsed call object, or None when it is not shaped like one.
    OpenAI's nesting (`{"type": "function", "function": {...}}`) is accepted too."""
    if not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get("function"), Mapping):
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None
    for key in ("arguments", "parameters"):
        if key in obj:
            return name, _arguments_text(obj[key])
    return name, "{}"


def _malformed(raw: str) -> tuple[str, str]:
    """A call whose JSON does not parse: the name if one can be read, the raw text as its
    arguments, so the loop hands the JSON error back to the model."""
    found = _NAME.search(raw)
    return (found.group(1) if found else ""), raw.strip()


def parse_hermes_block(body: str) -> tuple[str, str]:
    """One `<tool_call>` block's body."""
    try:
        call = _call_of(json.loads(body))
    except json.JSONDecodeError:
        return _malformed(body)
    return call if call is not None else _malformed(body)


def parse_llama3(payload: str) -> list[tuple[str, str]] | None:
    """Llama 3.1's JSON calls (one object, or several joined by ";"); None when the payload
    is not shaped like calls at all (ordinary text that happens to start with "{")."""
    text = payload.strip()
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        parsed = None
    if parsed is not None:
        items = parsed if isinstance(parsed, list) else [parsed]
        calls = [_call_of(item) for item in items]
        return [call for call in calls if call is not None] if all(calls) else None
    parts = [part for part in text.split(";") if part.strip()]
    if len(parts) > 1:
        try:
            several = [_call_of(json.loads(part)) for part in parts]
        except json.JSONDecodeError:
            several = [None]
        if all(several):
            return [call for call in several if call is not None]
    return [_malformed(text)] if _NAME.search(text) else None


def parse_mistral(payload: str) -> list[tuple[str, str]] | None:
    """What follows Mistral's `[TOOL_CALLS]`: a JSON list of calls, or the newer
    `name[ARGS]{...}` (with `[TOOL_CALLS]` again before each further call, and an optional
    `[CALL_ID]id` before `[ARGS]`). None when it is neither."""
    text = payload.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            return [_malformed(text)] if _NAME.search(text) else None
        items = parsed if isinstance(parsed, list) else [parsed]
        listed = [_call_of(item) for item in items]
        return [call for call in listed if call is not None] if listed and all(listed) else None
    calls: list[tuple[str, str]] = []
    for part in text.split(MISTRAL_CALLS):
        if not part.strip():
            continue
        name, sep, arguments = part.partition(MISTRAL_ARGS)
        if not sep:
            return None
        name = name.split(MISTRAL_CALL_ID)[0].strip()
        calls.append((name, arguments.strip()))
    return calls or None


# -- the streaming splitter


def _partial_marker(text: str, markers: Sequence[str]) -> int:
    """How many trailing characters of `text` might be the start of a marker (held back)."""
    longest = max((len(m) for m in markers), default=0)
    for size in range(min(len(text), longest - 1), 0, -1):
        tail = text[-size:]
        if any(m.startswith(tail) for m in markers):
            return size
    return 0


class ToolCallSplitter:
    """Splits a streamed reply into the text to show and the tool calls (this module's
    docstring lists the formats). `feed(chunk)` returns the text that is safe to show now;
    `finish()` the rest and the calls. `formats`: those to look for (default: all three)."""

    def __init__(self, formats: Sequence[ToolFormat] = MARKER_FORMATS) -> None:
        self.formats = tuple(formats)
        self._markers = [
            marker
            for marker, fmt in ((HERMES_OPEN, "hermes"), (PYTHON_TAG, "llama3"), (MISTRAL_CALLS, "mistral"))
            if fmt in self.formats
        ]
        self._pending = ""  # text read but not yet shown or parsed
        self._mode: Literal["text", "block", "rest"] = "text"
        self._rest_kind = ""  # what the rest of the reply is, in mode "rest"
        self._started = False  # something other than whitespace was shown
        self._after_call = False  # whitespace right after a call is not shown
        self._calls: list[tuple[str, str]] = []

    def feed(self, text: str) -> str:
        self._pending += text
        return self._advance(final=False)

    def finish(self) -> tuple[str, tuple[ToolCallChunk, ...]]:
        visible = self._advance(final=True)
        if self._mode == "block":  # a block the reply never closed (cut off): still a call
            self._calls.append(parse_hermes_block(self._pending))
        elif self._mode == "rest":
            parsed = self._parse_rest(self._pending)
            if parsed is None:  # not calls after all: ordinary text
                visible += self._rest_text() + self._pending
            else:
                self._calls.extend(parsed)
        self._pending = ""
        self._mode = "text"
        return visible, self.calls

    @property
    def calls(self) -> tuple[ToolCallChunk, ...]:
        return tuple(
            ToolCallChunk(index=i, id=f"call_{i}", name=name, arguments=arguments)
            for i, (name, arguments) in enumerate(self._calls)
        )

    def _rest_text(self) -> str:
        """The marker a "rest" payload came after, given back if it proves to be text."""
        return {"python_tag": PYTHON_TAG, "mistral_tag": MISTRAL_CALLS}.get(self._rest_kind, "")

    def _parse_rest(self, payload: str) -> list[tuple[str, str]] | None:
        if self._rest_kind in ("python_tag", "leading_object"):
            parsed = parse_llama3(payload)
            if parsed is None and self._rest_kind == "python_tag":
                return [_malformed(payload)]  # code after <|python_tag|>: the model meant a call
            return parsed
        parsed = parse_mistral(payload)
        if parsed is None and self._rest_kind == "mistral_tag":
            return [_malformed(payload)]
        return parsed

    def _advance(self, *, final: bool) -> str:
        shown: list[str] = []
        while True:
            if self._mode == "rest":  # the rest of the reply is a payload, parsed at the end
                return "".join(shown)
            if self._mode == "block":
                end = self._pending.find(HERMES_CLOSE)
                body = self._pending if end < 0 else self._pending[:end]
                if body.strip() and not body.lstrip().startswith("{"):
                    # "<tool_call>" in ordinary prose: not a call, show it as written
                    self._mode = "text"
                    self._pending = HERMES_OPEN + self._pending
                    shown.append(self._take_text(final, skip_first=len(HERMES_OPEN)))
                    continue
                if end < 0:
                    return "".join(shown)
                self._calls.append(parse_hermes_block(body))
                self._pending = self._pending[end + len(HERMES_CLOSE) :]
                self._mode, self._after_call = "text", True
                continue
            text = self._take_text(final)
            shown.append(text)
            if self._mode == "text":
                return "".join(shown)

    def _take_text(self, final: bool, skip_first: int = 0) -> str:
        """Show the text before the next marker; switch mode at the marker."""
        pending = self._pending
        if not self._started and not pending.strip() and not final:
            return ""  # only whitespace so far: it may still lead into a JSON call
        if not self._started:
            lead = pending.lstrip()
            if "llama3" in self.formats and lead.startswith("{"):
                return self._enter_rest("leading_object", pending)
            if "mistral" in self.formats and lead.startswith("[{"):
                return self._enter_rest("leading_list", pending)
            if "mistral" in self.formats and lead == "[" and not final:
                return ""  # "[" alone: the start of a list, or of text
        positions = [(pending.find(m, skip_first), m) for m in self._markers]
        found = [(at, m) for at, m in positions if at >= 0]
        if found:
            at, marker = min(found)
            before, after = pending[:at], pending[at + len(marker) :]
            if marker == HERMES_OPEN:
                self._mode, self._pending = "block", after
            else:
                self._enter_rest("python_tag" if marker == PYTHON_TAG else "mistral_tag", after)
            return self._show(before, final=True)
        keep = 0 if final else _partial_marker(pending, self._markers)
        self._pending = pending[len(pending) - keep :] if keep else ""
        return self._show(pending[: len(pending) - keep], final=final)

    def _enter_rest(self, kind: str, payload: str) -> str:
        self._mode, self._rest_kind, self._pending = "rest", kind, payload
        return ""

    def _show(self, text: str, *, final: bool) -> str:
        """Text to show; whitespace right after a call waits for more text (and is dropped
        at the end of the reply), so a reply of calls shows nothing."""
        if self._after_call and not text.strip():
            if not final:
                self._pending = text + self._pending
            return ""
        if text.strip():
            self._started, self._after_call = True, False
        return text


class TemplateSplitter:
    """The splitter for a tokenizer that declares a response template: transformers'
    streaming `ResponseParser` finds the regions. Visible text is the "content" region (a
    "reasoning_content" region comes back inside think tags, for the reply model to split);
    each closed "tool_calls" region is a call. A region whose JSON does not parse becomes a
    call with its raw text (the parser raises on it; a fresh parser reads on)."""

    def __init__(self, response_template: Mapping[str, Any], tools: Sequence[ToolSpec] = ()) -> None:
        self._template = dict(response_template)
        self._tools: list[dict[Any, Any] | Callable[..., Any]] = [t.openai() for t in tools]
        self._parser = self._new_parser()
        self._calls: list[tuple[str, str]] = []
        self._raw_call = ""

    def _new_parser(self) -> Any:
        from transformers.utils.chat_parsing import ResponseParser

        return ResponseParser(self._template, prefix="", tools=self._tools or None)

    def feed(self, text: str) -> str:
        try:
            events = self._parser.feed(text)
        except ValueError:
            return self._failed()
        return self._visible(events)

    def finish(self) -> tuple[str, tuple[ToolCallChunk, ...]]:
        try:
            _, events = self._parser.finalize()
        except ValueError:
            return self._failed(), self.calls
        return self._visible(events), self.calls

    @property
    def calls(self) -> tuple[ToolCallChunk, ...]:
        return tuple(
            ToolCallChunk(index=i, id=f"call_{i}", name=name, arguments=arguments)
            for i, (name, arguments) in enumerate(self._calls)
        )

    def _failed(self) -> str:
        self._calls.append(_malformed(self._raw_call))
        self._raw_call = ""
        self._parser = self._new_parser()
        return ""

    def _visible(self, events: list[dict[str, Any]]) -> str:
        shown: list[str] = []
        for event in events:
            field, kind = event.get("field"), event["type"]
            if field == "tool_calls":
                if kind == "region_open":
                    self._raw_call = ""
                elif kind == "region_chunk":
                    self._raw_call += event.get("text", "")
                elif kind == "region_close":
                    call = _call_of(event.get("value"))
                    self._calls.append(call if call is not None else _malformed(self._raw_call))
            elif field in ("reasoning_content", "thinking"):
                if kind == "region_open":
                    shown.append("<think>")
                elif kind == "region_chunk":
                    shown.append(event.get("text", ""))
                elif kind == "region_close":
                    shown.append("</think>")
            elif field == "content" and kind == "region_chunk":
                shown.append(event.get("text", ""))
        return "".join(shown)


Splitter = ToolCallSplitter | TemplateSplitter


def splitter_for(tokenizer: Any, tools: Sequence[ToolSpec] = ()) -> Splitter:
    """The splitter for this tokenizer's format (`tool_format`)."""
    fmt = tool_format(tokenizer)
    if fmt == "response_template":
        return TemplateSplitter(tokenizer.response_template, tools)
    return ToolCallSplitter(MARKER_FORMATS if fmt is None else (fmt,))


def split_reply(text: str, formats: Sequence[ToolFormat] = MARKER_FORMATS) -> tuple[str, tuple[ToolCallChunk, ...]]:
    """A whole reply's visible text and calls (the splitter fed at once)."""
    splitter = ToolCallSplitter(formats)
    shown = splitter.feed(text)
    rest, calls = splitter.finish()
    return shown + rest, calls
