"""Gradio chat history to LangChain messages, and back-end-neutral fixes to them.

Plain functions over plain data, so they are tested without a browser or a model.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from hfchat.errors import ERROR_MARK

LOADING_MARK = "⏳"
"""Prefix of the notice shown while a model loads; like errors, it never reaches the model."""

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
    """A reply without the app's notices: an error appended to it, or a lone loading notice."""
    if text.startswith(LOADING_MARK):
        return ""
    match = _ERROR_LINE.search(text)
    return (text[: match.start()] if match else text).strip()


def history_to_messages(history: Sequence[Mapping[str, Any]]) -> list[BaseMessage]:
    """Turn Gradio's message history into alternating Human/AI messages.

    Thinking and status messages (those with a metadata title) are skipped; a turn that
    ended in an error is dropped with its question, back-to-back messages of one role are
    joined and a leading reply is dropped, so templates that demand user-first alternating
    roles still render.
    """
    out: list[BaseMessage] = []
    for item in history:
        role = item.get("role")
        metadata = item.get("metadata") or {}
        if isinstance(metadata, Mapping) and metadata.get("title"):
            continue
        text = content_text(item.get("content"))
        if role == "user":
            if out and isinstance(out[-1], HumanMessage):
                out[-1] = HumanMessage(content=f"{out[-1].content}\n\n{text}")
            else:
                out.append(HumanMessage(content=text))
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


def build_messages(message: Any, history: Sequence[Mapping[str, Any]], system_prompt: str) -> list[BaseMessage]:
    """The messages for one turn: optional system prompt, the history, the new question."""
    messages: list[BaseMessage] = []
    if system_prompt.strip():
        messages.append(SystemMessage(content=system_prompt.strip()))
    past = history_to_messages(history)
    if past and isinstance(past[-1], HumanMessage):
        past.pop()  # an unanswered question: the new message replaces it
    messages.extend(past)
    messages.append(HumanMessage(content=content_text(message)))
    return messages


def fold_system_prompt(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Move system text into the first user turn, for templates that refuse the system role."""
    system = "\n\n".join(str(m.content) for m in messages if isinstance(m, SystemMessage))
    rest = [m for m in messages if not isinstance(m, SystemMessage)]
    if not system:
        return rest
    for i, message in enumerate(rest):
        if isinstance(message, HumanMessage):
            rest[i] = HumanMessage(content=f"{system}\n\n{message.content}")
            return rest
    return [HumanMessage(content=system), *rest]
