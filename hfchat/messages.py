"""Gradio chat history to LangChain messages, and back-end-neutral fixes to them.

Plain functions over plain data, so they are tested without a browser or a model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from hfchat.errors import ERROR_MARK, InputError
from hfchat.images import IMAGE_TASK, MAX_IMAGES, check_count, file_paths, image_part, refuse_images, to_data_url

log = logging.getLogger(__name__)

LOADING_MARK = "⏳"
"""Prefix of the notice shown while a model loads; like errors, it never reaches the model."""

NOTICE_MARK = "✂️"
"""Prefix of the notice that older turns were left out; it never reaches the model either."""
FOOTER_ID = "hfchat-speed"
"""Metadata id of the speed footer under a reply; like thoughts, it never reaches the model."""

SPEED_MARK = "⏱"
"""Prefix of the speed footer's text, so it is recognised even where metadata is lost."""

_ERROR_LINE = re.compile(rf"(?m)^{re.escape(ERROR_MARK)} \*\*")


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


def strip_error(text: str) -> str:
    """A reply without the app's notices: a trimmed-history notice before it, an error
    appended to it, or a lone loading notice."""
    if text.startswith(NOTICE_MARK):
        text = text.partition("\n\n")[2]
    if text.startswith(LOADING_MARK):
        return ""
    match = _ERROR_LINE.search(text)
    return (text[: match.start()] if match else text).strip()


def history_to_messages(history: Sequence[Mapping[str, Any]], images: bool = False) -> list[BaseMessage]:
    """Turn Gradio's message history into alternating Human/AI messages.

    Thinking and status messages (those with a metadata title) and speed footers are
    skipped; a turn that ended in an error is dropped with its question, back-to-back
    messages of one role are joined and a leading reply is dropped, so templates that
    demand user-first alternating roles still render. With `images`, pictures in user turns
    become `image_url` parts (one that can no longer be read is left out); without, only
    the text is kept.
    """
    out: list[BaseMessage] = []
    for item in history:
        role = item.get("role")
        metadata = item.get("metadata") or {}
        if isinstance(metadata, Mapping) and (metadata.get("title") or metadata.get("id") == FOOTER_ID):
            continue
        if role == "assistant" and content_text(item.get("content")).startswith(SPEED_MARK):
            continue
        content = item.get("content")
        text = content_text(content)
        if role == "user":
            question = _user_content(text, _history_images(content) if images else [])
            if out and isinstance(out[-1], HumanMessage):
                out[-1] = HumanMessage(content=_join(out[-1].content, question))
            else:
                out.append(HumanMessage(content=question))
        elif role == "assistant":
            reply = strip_error(text)
            if not reply:
                if out and isinstance(out[-1], HumanMessage):
                    out.pop()
                continue
            if not out:
                continue  # a reply before any question (a greeting): strict templates can't start with it
            if isinstance(out[-1], AIMessage):
                out[-1] = AIMessage(content=f"{out[-1].content}\n\n{reply}")
            else:
                out.append(AIMessage(content=reply))
    return out


def fit_history(history: Sequence[Mapping[str, Any]], max_chars: int) -> tuple[list[Mapping[str, Any]], int]:
    """The most recent part of the history whose text fits in `max_chars`, and how many
    of the oldest messages were left out (the caller's list is not changed)."""
    sizes = [len(strip_error(content_text(item.get("content")))) for item in history]
    total, start = sum(sizes), 0
    while total > max_chars and start < len(history):
        total -= sizes[start]
        start += 1
    return list(history[start:]), start


def trim_notice(dropped: int, max_chars: int) -> str:
    """The line shown above a reply whose oldest turns were not sent ("" when none were)."""
    if not dropped:
        return ""
    return (
        f"{NOTICE_MARK} *The {dropped} oldest message{'s' if dropped > 1 else ''} of this conversation "
        f"{'were' if dropped > 1 else 'was'} not sent: the history limit is {max_chars:,} characters "
        "(--max-history-chars). Clear the conversation to start afresh.*\n\n"
    )


def build_messages(
    message: Any, history: Sequence[Mapping[str, Any]], system_prompt: str, task: str = "text-generation"
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
    past = history_to_messages(history, images=images)
    if past and isinstance(past[-1], HumanMessage):
        past.pop()  # an unanswered question: the new message replaces it
    messages.extend(_keep_latest_images(past, MAX_IMAGES - len(paths)))
    messages.append(HumanMessage(content=_user_content(content_text(message), [to_data_url(p) for p in paths])))
    return messages


def check_attachments(message: Any, task: str) -> list[str]:
    """The new message's file paths, if this task may send them (cheap: nothing is read)."""
    paths = file_paths(message)
    if paths and task != IMAGE_TASK:
        raise refuse_images(task)
    check_count(len(paths))
    return paths


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
