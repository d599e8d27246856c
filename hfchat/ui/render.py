"""The one renderer: a reply's typed updates (`hfchat.updates`) as Gradio chat messages.

The main chat, the `/chat` API and compare mode all show what `to_messages` makes. Every
message that is not the answer carries `metadata.id` (`hfchat.updates.*_ID`), which is how
history conversion, exports and API clients tell what a message is; the thinking also
keeps Gradio's collapsible title, status and duration. Remote images in what is shown
become links (`safe_images`), so showing a reply fetches nothing. Plain data, no gradio.
"""

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import Any, ParamSpec

from hfchat.messages import Message, MessageKind, message_kind
from hfchat.safe_markdown import safe_images
from hfchat.updates import (
    DOCUMENT_DATA,
    DOCUMENT_ID,
    FAILED_ID,
    FIGURES_DATA,
    FOOTER_ID,
    LOADING_ID,
    NOTICE_ID,
    SOURCES_ID,
    SOURCES_TITLE,
    THINKING_ID,
    THINKING_TITLE,
    TOOL_DATA,
    TOOL_ID,
    Answer,
    Attached,
    Failed,
    Footer,
    Loading,
    Notice,
    ReplyView,
    Sources,
    Thinking,
    ToolCall,
    Update,
    Waiting,
    stopped_footer,
)

P = ParamSpec("P")


def to_messages(view: ReplyView) -> list[Message]:
    """One snapshot of a reply as the chat window's assistant messages, in display order."""
    return [message for update in view for message in _messages(update)]


RESULT_PREVIEW_CHARS = 1_200
"""How much of a tool's result its block shows; a longer one is in full in a block nested under it."""


def _messages(update: Update) -> list[Message]:
    if isinstance(update, ToolCall):
        return tool_messages(update)
    return [_message(update)]


def fenced(text: str, language: str = "") -> str:
    """`text` as a markdown code block whose fence is longer than any backtick run inside it,
    so a result holding a fence of its own cannot end the block early."""
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def _backtick_runs(line: str) -> list[str]:
    runs, current = [], ""
    for char in line:
        if char == "`":
            current += char
        elif current:
            runs.append(current)
            current = ""
    return [*runs, current] if current else runs


def _arguments_block(arguments: str) -> str:
    try:
        shown = json.dumps(json.loads(arguments), ensure_ascii=False, indent=1) if arguments.strip() else "{}"
    except json.JSONDecodeError:
        shown = arguments  # as the model sent it: the result says why it did not parse
    return fenced(shown, "json")


def tool_messages(call: ToolCall) -> list[Message]:
    """A tool call as a collapsible block titled with the tool and its server: pending (with a
    spinner) while it runs, then done with its duration. It shows the arguments and the result
    (the first RESULT_PREVIEW_CHARS; the whole result in a folded block nested under it). The
    top-level `tool` key holds the call as data, which history conversion sends back to the
    model (Gradio drops keys it does not know from what it draws, so the page never shows it)."""
    key = f"{TOOL_ID}:{call.key}"
    title = f"Tool: {call.name}" + (f" · {call.server}" if call.server else "") + (" · failed" if call.error else "")
    metadata: dict[str, Any] = {"id": key, "title": title, "status": "done" if call.done else "pending"}
    if call.duration_s is not None:
        metadata["duration"] = round(call.duration_s, 2)
    body = f"**Arguments**\n\n{_arguments_block(call.arguments)}"
    result = call.result
    if result is not None:
        preview = result if len(result) <= RESULT_PREVIEW_CHARS else result[:RESULT_PREVIEW_CHARS] + " …"
        body += f"\n\n**{'Error' if call.error else 'Result'}**\n\n{fenced(preview)}"
    data: dict[str, Any] = {"id": call.id, "name": call.name, "server": call.server, "arguments": call.arguments}
    data |= {"result": result, "error": call.error, "step": call.step}
    main: Message = {"role": "assistant", "content": safe_images(body), "metadata": metadata, TOOL_DATA: data}
    if result is None or len(result) <= RESULT_PREVIEW_CHARS:
        return [main]
    full: Message = {
        "role": "assistant",
        "content": safe_images(fenced(result)),
        "metadata": {
            "id": f"{key}:full",
            "parent_id": key,
            "title": f"Full result ({len(result):,} characters)",
            "status": "done",
        },
    }
    return [main, full]


def _message(update: Update) -> Message:
    metadata: dict[str, Any]
    match update:
        case ToolCall():
            return tool_messages(update)[0]
        case Answer(text=text):
            return {"role": "assistant", "content": safe_images(text)}
        case Attached(name=name, about=about, data=data):
            # the user's side: `hfchat.conversations.turn_window` puts chips before the question
            chip = f'<span class="doc-chip"><b>{_plain(name)}</b> <small>{_plain(about)}</small></span>'
            return {"role": "user", "content": chip, "metadata": {"id": DOCUMENT_ID}, DOCUMENT_DATA: dict(data)}
        case Sources():
            metadata = {"id": SOURCES_ID, "title": SOURCES_TITLE, "status": "done"}
            listed = "\n".join(f"- {_plain(label)}" for label in update.labels)
            return {"role": "assistant", "content": listed, "metadata": metadata}
        case Thinking(text=text, done=done, duration_s=duration):
            metadata = {"id": THINKING_ID, "title": THINKING_TITLE, "status": "done" if done else "pending"}
            if duration is not None:
                metadata["duration"] = round(duration, 2)
            return {"role": "assistant", "content": safe_images(text), "metadata": metadata}
        case Footer(text=text, figures=figures):
            footer: Message = {"role": "assistant", "content": safe_images(text), "metadata": {"id": FOOTER_ID}}
            return footer | ({FIGURES_DATA: dict(figures)} if figures else {})
        case Loading() | Notice() | Failed() | Waiting():
            return {"role": "assistant", "content": safe_images(update.text), "metadata": {"id": _ID[type(update)]}}


def _plain(text: str) -> str:
    """A file name or a label as literal text: markdown and HTML in it become character
    references (never backslashes, which would make "\\(" or "\\[" math delimiters)."""
    return "".join(f"&#{ord(c)};" if c in _MARKUP else c for c in text)


_MARKUP = frozenset("\\`*_[]<>&$~|")
"""What markdown or HTML could read inside a line (a chip, or a list item after its "- ")."""


_ID: dict[type, str] = {
    Loading: LOADING_ID,
    Waiting: LOADING_ID,  # a reply not begun yet, like a load: never part of the history
    Notice: NOTICE_ID,
    Failed: FAILED_ID,
}


def stopped_reply(shown: Sequence[Message]) -> list[Message]:
    """The window after Stop: the last reply keeps the text it shows, under it the footer
    "stopped by you" (`stopped_footer`); a loading notice goes, as the load is no longer
    awaited. A reply that already ended (it has its footer) is left as it is."""
    start = next((i + 1 for i in range(len(shown) - 1, -1, -1) if shown[i].get("role") == "user"), 0)
    before, reply = list(shown[:start]), list(shown[start:])
    if any(message_kind(m) is MessageKind.FOOTER for m in reply):
        return [*before, *reply]
    kept = [_settled(m) for m in reply if message_kind(m) is not MessageKind.LOADING]
    return [*before, *kept, _message(stopped_footer())]


def _settled(message: Message) -> Message:
    """A tool call Stop ended while it ran: no longer pending (no spinner), titled stopped."""
    metadata = message.get("metadata")
    if message_kind(message) is not MessageKind.TOOL or not isinstance(metadata, dict):
        return message
    if metadata.get("status") != "pending":
        return message
    return {**message, "metadata": {**metadata, "status": "done", "title": f"{metadata.get('title', '')} · stopped"}}


def rendered(fn: Callable[P, Iterator[ReplyView]]) -> Callable[P, Iterator[list[Message]]]:
    """`fn`, yielding chat messages instead of views; Gradio reads the wrapped signature (the
    `/chat` parameters, the injected request and token) through `functools.wraps`.

    Closing the result (Stop) closes `fn`'s generator at once, so the turn ends there."""

    @functools.wraps(fn)
    def chat(*args: P.args, **kwargs: P.kwargs) -> Iterator[list[Message]]:
        with closing(fn(*args, **kwargs)) as views:  # type: ignore[type-var]  # a generator has close()
            for view in views:
                yield to_messages(view)

    return chat
