"""Gradio chat history to LangChain messages, and back-end-neutral fixes to them.

Plain functions over plain data, so they are tested without a browser or a model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from hfchat.documents import DEFAULT_LIMITS, MAX_DOCUMENTS, Document, DocumentLimits, from_data, is_document
from hfchat.errors import InputError
from hfchat.images import IMAGE_TASK, MAX_IMAGES, check_count, file_paths, image_part, refuse_images, to_data_url
from hfchat.updates import (
    DOCUMENT_DATA,
    DOCUMENT_ID,
    FAILED_ID,
    FOOTER_ID,
    INTERRUPTED_ID,
    LOADING_ID,
    NOTICE_ID,
    NOTICE_MARK,
    SOURCES_ID,
    THINKING_ID,
    THINKING_TITLE,
    TOOL_DATA,
    TOOL_ID,
)

log = logging.getLogger(__name__)

Message = dict[str, Any]
"""A Gradio-6 chat message: role, content and optional metadata."""


class MessageKind(Enum):
    """What an assistant message is, by its metadata id (`hfchat.ui.render` sets it)."""

    ANSWER = "answer"
    """A reply: no metadata id, or the interrupted note that stands in for one."""
    NOTICE = "notice"
    LOADING = "loading"
    THINKING = "thinking"
    """The thinking, or any other collapsible block (a metadata title)."""
    TOOL = "tool"
    FOOTER = "footer"
    FAILED = "failed"
    SOURCES = "sources"
    DOCUMENT = "document"
    """A user message that is an attached document's chip (its text is data, `DOCUMENT_DATA`)."""


_KINDS = {
    NOTICE_ID: MessageKind.NOTICE,
    LOADING_ID: MessageKind.LOADING,
    THINKING_ID: MessageKind.THINKING,
    TOOL_ID: MessageKind.TOOL,
    FOOTER_ID: MessageKind.FOOTER,
    FAILED_ID: MessageKind.FAILED,
    INTERRUPTED_ID: MessageKind.ANSWER,
    SOURCES_ID: MessageKind.SOURCES,
    DOCUMENT_ID: MessageKind.DOCUMENT,
}


def message_kind(message: Mapping[str, Any]) -> MessageKind:
    """What an assistant message is, read from its metadata only (never from its text)."""
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping):
        return MessageKind.ANSWER
    kind = _KINDS.get(str(metadata.get("id")))
    if kind is not None:
        return kind
    if str(metadata.get("id") or "").startswith(TOOL_ID + ":"):
        return MessageKind.TOOL
    return MessageKind.THINKING if metadata.get("title") else MessageKind.ANSWER


def content_text(content: Any) -> str:
    """The text of a message's content in any shape Gradio uses.

    Gradio 6 sends lists of blocks (`{"type": "text", "text": ...}`), multimodal boxes send
    `{"text": ..., "files": [...]}`, and older code sends plain strings.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        if content.get("type", "text") == "text" and isinstance(content.get("text"), str):
            return content["text"]
        return ""
    if isinstance(content, Iterable):
        return "\n".join(text for part in content if (text := content_text(part)))
    return str(content)


def sent_text(message: Mapping[str, Any]) -> str:
    """The text of a message that goes to the model: a question or an answer; "" for the
    app's own messages (notices, loading, thinking, tools, the footer, failures) and for
    documents' chips (their text goes with each question, `hfchat.retrieval.plan`)."""
    if message_kind(message) is MessageKind.DOCUMENT:
        return ""
    if message.get("role") == "assistant" and message_kind(message) is not MessageKind.ANSWER:
        call = tool_call_data(message)
        return f"{call['arguments']}\n{call['result']}" if call else ""
    return content_text(message.get("content"))


def tool_call_data(message: Mapping[str, Any]) -> dict[str, Any] | None:
    """A tool-call message's call as data (`hfchat.updates.TOOL_DATA`: id, name, arguments,
    result, error, step), or None for any other message and for a call still running."""
    data = message.get(TOOL_DATA)
    if message_kind(message) is not MessageKind.TOOL or not isinstance(data, Mapping):
        return None
    if not isinstance(data.get("name"), str) or not isinstance(data.get("result"), str):
        return None
    return {
        "id": str(data.get("id") or "call"),
        "name": data["name"],
        "arguments": str(data.get("arguments") or ""),
        "result": data["result"],
        "step": data.get("step") if isinstance(data.get("step"), int) else 0,
    }


def _tool_turns(calls: Sequence[Mapping[str, Any]], structured: bool) -> list[BaseMessage]:
    """A reply's tool calls as the model expects them back: per round, the assistant message
    that made the calls, then one tool message per result. Without `structured` (a turn that
    offers no tools) they are plain text in an assistant message, which every template takes."""
    if not structured:
        lines = [f"[called {c['name']}({c['arguments']}) -> {c['result']}]" for c in calls]
        return [AIMessage(content="\n".join(lines))] if lines else []
    out: list[BaseMessage] = []
    for step in dict.fromkeys(c["step"] for c in calls):
        group = [c for c in calls if c["step"] == step]
        out.append(
            AIMessage(
                content="",
                tool_calls=[
                    {"name": c["name"], "args": _json_object(c["arguments"]), "id": c["id"], "type": "tool_call"}
                    for c in group
                ],
            )
        )
        out += [ToolMessage(content=c["result"], tool_call_id=c["id"], name=c["name"]) for c in group]
    return out


def _json_object(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


LEGACY_FOOTER_ID = "hfchat-speed"
"""The speed footer's metadata id before replies were typed."""

LEGACY_ERROR_MARK, LEGACY_LOADING_MARK, LEGACY_NOTICE_MARK, LEGACY_SPEED_MARK = "⚠️", "⏳", "✂️", "⏱"
"""The emoji that marked a message's kind in its text before replies were typed (the marks of
`hfchat.updates` are text symbols now); only `upgrade_legacy` reads them."""

_LEGACY_FAILURE = re.compile(rf"(?m)^{re.escape(LEGACY_ERROR_MARK)} (?:\*\*|Internal error \(reference )")


def upgrade_legacy(messages: Iterable[Mapping[str, Any]]) -> list[Message]:
    """Messages saved before replies were typed, marked the way they are now.

    Until then the kind of an assistant message was in its text: a speed footer started with
    ⏱, a loading notice with ⏳, a trimmed-history notice with ✂️ (then the reply), and a
    failure started a line with ⚠️ (after any partial reply, in the same message). Such
    messages are split into one message per kind, each with its metadata id, so an old
    conversation sends what it sent then. Called once where saved conversations come in
    (`hfchat.conversations.load`, an import of an older export); nothing else reads text.
    """
    return [upgraded for message in messages for upgraded in _upgrade(message)]


def _marked(text: str, kind_id: str) -> Message:
    return {"role": "assistant", "content": text, "metadata": {"id": kind_id}}


def _upgrade(message: Mapping[str, Any]) -> list[Message]:
    metadata, content = message.get("metadata"), message.get("content")
    if message.get("role") != "assistant":
        return [dict(message)]
    if isinstance(metadata, Mapping) and (metadata.get("id") or metadata.get("title")):
        if metadata.get("id") == LEGACY_FOOTER_ID:
            return [{**message, "metadata": {**metadata, "id": FOOTER_ID}}]
        if metadata.get("title") == THINKING_TITLE and not metadata.get("id"):
            return [{**message, "metadata": {**metadata, "id": THINKING_ID}}]
        return [dict(message)]
    if not _text_only(content):
        return [dict(message)]
    text = content_text(content)
    if text.startswith(LEGACY_SPEED_MARK):
        return [_marked(text, FOOTER_ID)]
    out: list[Message] = []
    if text.startswith(LEGACY_NOTICE_MARK):
        notice, _, text = text.partition("\n\n")
        out.append(_marked(notice, NOTICE_ID))
    if text.startswith(LEGACY_LOADING_MARK):
        return [*out, _marked(text, LOADING_ID)]
    failure = _LEGACY_FAILURE.search(text)
    if failure is None and not out:
        return [dict(message)]  # a plain answer, left exactly as it was
    answer = (text[: failure.start()] if failure else text).strip()
    if answer:
        out.append({"role": "assistant", "content": answer})
    if failure is not None:
        out.append(_marked(text[failure.start() :].strip(), FAILED_ID))
    return out


def _text_only(content: Any) -> bool:
    if isinstance(content, str):
        return True
    if isinstance(content, Mapping):
        return content.get("type", "text") == "text" and isinstance(content.get("text"), str) and "files" not in content
    if isinstance(content, list):
        return all(_text_only(part) for part in content)
    return False


def history_to_messages(
    history: Sequence[Mapping[str, Any]], images: bool = False, tools: bool = False
) -> list[BaseMessage]:
    """Turn Gradio's message history into alternating Human/AI messages.

    Only questions, answers and tool calls are sent (`message_kind`): thinking, notices and
    speed footers are skipped; a turn whose reply failed before any answer (or was left at its
    loading notice by Stop) is dropped with its question and its tool calls, back-to-back
    messages of one role are joined and a leading reply is dropped, so templates that
    demand user-first alternating roles still render. With `images`, pictures in user turns
    become `image_url` parts (one that can no longer be read is left out); without, only
    the text is kept. A reply's tool calls go before its answer: as tool-call and tool
    messages when `tools` are offered this turn, else as text (`_tool_turns`).
    """
    out: list[BaseMessage] = []
    calls: list[dict[str, Any]] = []  # the current reply's, sent before its answer
    for item in history:
        role = item.get("role")
        content = item.get("content")
        if role == "user":
            if message_kind(item) is MessageKind.DOCUMENT:
                continue  # a chip: the documents go with the newest question (`with_documents`)
            calls = []
            question = _user_content(content_text(content), _history_images(content) if images else [])
            if out and isinstance(out[-1], HumanMessage):
                out[-1] = HumanMessage(content=_join(out[-1].content, question))
            else:
                out.append(HumanMessage(content=question))
        elif role == "assistant":
            kind = message_kind(item)
            if kind is MessageKind.TOOL:
                if (call := tool_call_data(item)) is not None:
                    calls.append(call)
                continue
            reply = content_text(content).strip() if kind is MessageKind.ANSWER else ""
            if not reply:
                no_reply = kind in (MessageKind.ANSWER, MessageKind.LOADING, MessageKind.FAILED)
                if no_reply and out and isinstance(out[-1], HumanMessage):
                    out.pop()  # no reply came (or only a failure): the question goes with it, and its tool calls
                    calls = []
                continue
            if not out:
                continue  # a reply before any question (a greeting): strict templates can't start with it
            if calls:
                out.extend(_tool_turns(calls, tools))
                calls = []
            if isinstance(out[-1], AIMessage) and not out[-1].tool_calls:
                out[-1] = AIMessage(content=f"{out[-1].content}\n\n{reply}")
            else:
                out.append(AIMessage(content=reply))
    return out


def fit_history(history: Sequence[Mapping[str, Any]], max_chars: int) -> tuple[list[Mapping[str, Any]], int]:
    """The most recent part of the history whose text fits in `max_chars`, and how many
    of the oldest messages were left out (the caller's list is not changed). Only what is
    sent counts (`sent_text`)."""
    sizes = [len(sent_text(item)) for item in history]
    total, start = sum(sizes), 0
    while total > max_chars and start < len(history):
        total -= sizes[start]
        start += 1
    return list(history[start:]), start


def trim_notice(dropped: int, max_chars: int) -> str:
    """The notice shown above a reply whose oldest turns were not sent ("" when none were)."""
    if not dropped:
        return ""
    return (
        f"{NOTICE_MARK} *The {dropped} oldest message{'s' if dropped > 1 else ''} of this conversation "
        f"{'were' if dropped > 1 else 'was'} not sent: the history limit is {max_chars:,} characters "
        "(--max-history-chars). Clear the conversation to start afresh.*"
    )


def build_messages(
    message: Any,
    history: Sequence[Mapping[str, Any]],
    system_prompt: str,
    task: str = "text-generation",
    tools: bool = False,
) -> list[BaseMessage]:
    """The messages for one turn: optional system prompt, the history, the new question.

    Images are sent only for the image task; there the new message's images are checked
    (InputError says what is wrong) and older ones are dropped beyond `MAX_IMAGES` in all.
    Elsewhere an attached image is refused, and images in the history are left out.
    """
    images = task == IMAGE_TASK
    paths = check_attachments(message, task)
    messages: list[BaseMessage] = []
    if system_prompt.strip():
        messages.append(SystemMessage(content=system_prompt.strip()))
    past = history_to_messages(history, images=images, tools=tools)
    if past and isinstance(past[-1], HumanMessage):
        past.pop()  # an unanswered question: the new message replaces it
    messages.extend(_keep_latest_images(past, MAX_IMAGES - len(paths)))
    messages.append(HumanMessage(content=_user_content(content_text(message), [to_data_url(p) for p in paths])))
    return messages


def check_attachments(message: Any, task: str) -> list[str]:
    """The new message's image paths, if this task may send them (cheap: nothing is read).
    Documents (`document_paths`) go with any task."""
    paths = [path for path in file_paths(message) if not is_document(path)]
    if paths and task != IMAGE_TASK:
        raise refuse_images(task)
    check_count(len(paths))
    return paths


def document_paths(message: Any) -> list[str]:
    """The new message's attached documents (text, Markdown, CSV, JSON, code, PDF), by file name."""
    return [path for path in file_paths(message) if is_document(path)]


def conversation_documents(
    history: Sequence[Mapping[str, Any]], limits: DocumentLimits = DEFAULT_LIMITS
) -> list[Document]:
    """The documents attached so far in a conversation, oldest first, from its chips' data:
    each question is answered from all of them (a follow-up retrieves again). A chip whose data
    does not read back (`hfchat.documents.from_data`) is left out, and so are repeats."""
    found: list[Document] = []
    for item in history:
        if item.get("role") == "user" and message_kind(item) is MessageKind.DOCUMENT:
            document = from_data(item.get(DOCUMENT_DATA), limits)
            if document is not None and document not in found:
                found.append(document)
    return found[-MAX_DOCUMENTS:]


def with_documents(messages: Sequence[BaseMessage], context: str) -> list[BaseMessage]:
    """The turn's messages with the documents' `context` (`hfchat.retrieval.Plan.context`)
    before the newest question, in its own message: the history before it stays as it was."""
    if not context or not messages or not isinstance(messages[-1], HumanMessage):
        return list(messages)
    question = messages[-1].content
    return [*messages[:-1], HumanMessage(content=_join(context, question))]


def image_count(content: Any) -> int:
    """How many `image_url` parts a LangChain message content holds."""
    return (
        sum(1 for part in content if isinstance(part, Mapping) and part.get("type") == "image_url")
        if isinstance(content, list)
        else 0
    )


def _user_content(text: str, image_urls: Sequence[str]) -> str | list[str | dict[Any, Any]]:
    """Plain text when there are no images (what text-only templates expect), else content parts."""
    if not image_urls:
        return text
    parts: list[str | dict[Any, Any]] = [image_part(url) for url in image_urls]
    if text:
        parts.append({"type": "text", "text": text})
    return parts


def _as_parts(content: str | list[str | dict[Any, Any]]) -> list[str | dict[Any, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _join(first: Any, second: Any) -> str | list[str | dict[Any, Any]]:
    """Two user turns in a row as one (strict templates demand alternating roles)."""
    if isinstance(first, str) and isinstance(second, str):
        return "\n\n".join(text for text in (first, second) if text)  # an image-only bubble has no text
    return [*_as_parts(first), *_as_parts(second)]


def _plain_if_no_images(parts: list[Any]) -> str | list[Any]:
    if any(isinstance(p, Mapping) and p.get("type") == "image_url" for p in parts):
        return parts
    return "\n\n".join(text for p in parts if (text := content_text(p)))


def _history_images(content: Any) -> list[str]:
    urls = []
    for path in file_paths(content):
        try:
            urls.append(to_data_url(path))
        except InputError as exc:
            log.info("an image from the history is left out: %s", exc.message)
    return urls


def _keep_latest_images(messages: list[BaseMessage], budget: int) -> list[BaseMessage]:
    """Drop the oldest history images so the request holds at most `budget` of them."""
    out: list[BaseMessage] = []
    for message in reversed(messages):
        count = image_count(message.content)
        if count and isinstance(message.content, list):
            keep = max(0, min(count, budget))
            budget -= keep
            if keep < count:
                parts, skip = [], count - keep
                for part in message.content:
                    if isinstance(part, Mapping) and part.get("type") == "image_url" and skip:
                        skip -= 1
                        continue
                    parts.append(part)
                message = HumanMessage(content=_plain_if_no_images(parts))
        out.append(message)
    return out[::-1]


def fold_system_prompt(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Move system text into the first user turn, for templates that refuse the system role."""
    system = "\n\n".join(str(m.content) for m in messages if isinstance(m, SystemMessage))
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    if not system:
        return rest
    for i, message in enumerate(rest):
        if isinstance(message, HumanMessage):
            rest[i] = HumanMessage(content=_join(system, message.content))
            return rest
    return [HumanMessage(content=system), *rest]
