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
    FAILED_ID,
    FOOTER_ID,
    LOADING_ID,
    NOTICE_ID,
    THINKING_ID,
    THINKING_TITLE,
    TOOL_ID,
    Answer,
    Failed,
    Footer,
    Loading,
    Notice,
    ReplyView,
    Thinking,
    ToolCall,
    Update,
    Waiting,
    stopped_footer,
)

P = ParamSpec("P")


def to_messages(view: ReplyView) -> list[Message]:
    """One snapshot of a reply as the chat window's assistant messages, in display order."""
    return [_message(update) for update in view]


def _message(update: Update) -> Message:
    metadata: dict[str, Any]
    match update:
        case Answer(text=text):
            return {"role": "assistant", "content": safe_images(text)}
        case Thinking(text=text, done=done, duration_s=duration):
            metadata = {"id": THINKING_ID, "title": THINKING_TITLE, "status": "done" if done else "pending"}
            if duration is not None:
                metadata["duration"] = round(duration, 2)
            return {"role": "assistant", "content": safe_images(text), "metadata": metadata}
        case ToolCall(name=name, arguments=arguments, result=result, done=done):
            body = f"```json\n{json.dumps(dict(arguments), ensure_ascii=False, indent=1)}\n```"
            if result is not None:
                body += f"\n\n{result}"
            metadata = {"id": TOOL_ID, "title": f"Tool: {name}", "status": "done" if done else "pending"}
            return {"role": "assistant", "content": safe_images(body), "metadata": metadata}
        case Loading() | Notice() | Footer() | Failed() | Waiting():
            return {"role": "assistant", "content": safe_images(update.text), "metadata": {"id": _ID[type(update)]}}


_ID: dict[type, str] = {
    Loading: LOADING_ID,
    Waiting: LOADING_ID,  # a reply not begun yet, like a load: never part of the history
    Notice: NOTICE_ID,
    Footer: FOOTER_ID,
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
    kept = [m for m in reply if message_kind(m) is not MessageKind.LOADING]
    return [*before, *kept, _message(stopped_footer())]


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
