"""Saved conversations: a list kept in the browser, each with an id, a title and its messages.

Gradio's own `save_history` keeps a bare list of message lists, addressed by position and
titled from the first message, so it has no room for a title of one's own, and its
positions shift on every insert and delete. Here each conversation carries a stable id and
its title; the messages are the chat window's Gradio message dicts, unchanged, so edit,
retry and undo keep working on a conversation loaded back. Plain data in, plain data out.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hfchat.documents import is_document
from hfchat.errors import ConfigError, HFChatError
from hfchat.images import file_paths
from hfchat.messages import MessageKind, content_text, message_kind, upgrade_legacy
from hfchat.presets import ControlValues
from hfchat.updates import ERROR_MARK, INTERRUPTED_ID

TITLE_MAX = 80
"""Longest title kept; a longer one is cut."""

AUTO_TITLE_CHARS = 40
"""A new conversation is titled with the start of its first message, like Gradio's own list."""

MAX_CONVERSATIONS = 100
"""How many conversations a browser keeps; past that the oldest is dropped (local storage is small)."""

UNTITLED = "New conversation"

STORAGE_KEY = "hfchat-conversations"
"""The browser's localStorage key of the saved list."""

BROWSER_STORAGE_CHARS = 5 * 1024 * 1024
"""What Chromium's localStorage holds per origin: 5 Mi UTF-16 code units, keys and values of
every key together (measured in Chromium 156: one ASCII, Latin-1 or CJK value of 5,242,879
characters under a one-character key fits, one more raises QuotaExceededError; Firefox and
Safari keep about the same)."""

STORAGE_HEADROOM_CHARS = 512 * 1024
"""Left free for the presets, Gradio's own keys and other pages of the same origin."""

STORAGE_BUDGET_CHARS = BROWSER_STORAGE_CHARS - STORAGE_HEADROOM_CHARS
"""The most the saved list may take in the browser."""


LAYOUT: Literal[2] = 2
"""How a saved conversation's messages say what they are: 2, by metadata id (`hfchat.updates`).
Conversations saved before that have no `layout` and marked their kinds with emoji prefixes;
`load` upgrades them once (`hfchat.messages.upgrade_legacy`)."""


def new_id() -> str:
    return uuid.uuid4().hex


class Conversation(BaseModel):
    """One saved conversation; `settings` are the sidebar's values at its latest turn.

    `updated_at` (seconds since the epoch) is when it last changed: the list is newest first
    and grouped by day on it (entries saved before it existed have none and count as older).
    `imported_from` is the digest of the export it was imported from (`hfchat.export`), so
    the same file imported again opens it instead of adding a copy."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    messages: tuple[dict[str, Any], ...]
    settings: ControlValues | None = None
    layout: Literal[2] = LAYOUT
    updated_at: float | None = None
    imported_from: str | None = Field(None, max_length=64)

    @field_validator("messages")
    @classmethod
    def _chat_messages(cls, value: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for i, message in enumerate(value):
            if message.get("role") not in ("user", "assistant"):
                raise ValueError(f"message {i} has no user or assistant role")
        return value


@dataclass(frozen=True)
class Saved:
    """The conversations after a change, and which one the chat window shows (None: a new one)."""

    conversations: list[Conversation]
    current: str | None


def _has_files(content: Any) -> bool:
    """Whether a message's content, in any shape Gradio uses, carries files."""
    if isinstance(content, Mapping):
        return bool(content.get("files")) or content.get("type", "text") != "text" or "file" in content
    if isinstance(content, Sequence) and not isinstance(content, str):
        return any(_has_files(part) for part in content)
    return False


def default_title(messages: Sequence[Mapping[str, Any]]) -> str:
    """The start of the first question (📎 when it has files or documents), or "New conversation"."""
    documents = False
    for message in messages:
        if is_chip(message):
            documents = True  # the chips go before their question
        elif message.get("role") == "user":
            content = message.get("content")
            text = " ".join(content_text(content).split())
            if len(text) > AUTO_TITLE_CHARS:
                text = text[:AUTO_TITLE_CHARS].rstrip() + "…"
            title = f"📎 {text}" if documents or _has_files(content) else text
            return title.strip() or UNTITLED
    return UNTITLED


def load(stored: Any) -> list[Conversation]:
    """The conversations kept in the browser; entries that don't read back (edited by hand,
    or from an unknown layout) are skipped rather than losing the rest. Those saved before
    replies were typed are upgraded (`upgraded`)."""
    conversations: list[Conversation] = []
    seen: set[str] = set()
    for item in stored if isinstance(stored, list) else []:
        try:
            conversation = Conversation.model_validate(upgraded(item))
        except ValidationError:
            continue
        if conversation.id not in seen:
            seen.add(conversation.id)
            conversations.append(conversation)
    return conversations[:MAX_CONVERSATIONS]


def upgraded(item: Any) -> Any:
    """A stored conversation without a `layout` (saved before replies were typed) with its
    messages marked by metadata id; anything else as it is."""
    if not isinstance(item, Mapping) or "layout" in item or not isinstance(item.get("messages"), list | tuple):
        return item
    messages = item["messages"]
    if not all(isinstance(m, Mapping) for m in messages):
        return item  # not a conversation: validation says so
    return {**item, "messages": upgrade_legacy(messages), "layout": LAYOUT}


def dump(conversations: Sequence[Conversation]) -> list[dict[str, Any]]:
    """Plain JSON for the browser's local storage."""
    return [c.model_dump(mode="json") for c in conversations]


def stored_chars(conversations: Sequence[Conversation]) -> int:
    """How many characters the list takes in localStorage once Gradio's BrowserState has
    stored it: `JSON.stringify`, AES-CBC with crypto-js's passphrase mode ("Salted__", an
    8-byte salt, PKCS#7 padding to 16 bytes), base64, after the base64 of a 16-byte IV and
    ":". Every character is ASCII, so it is 4/3 of the JSON's UTF-8 bytes plus a few dozen."""
    plain = len(json.dumps(dump(conversations), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    cipher = 16 + 16 * (plain // 16 + 1)
    return len(STORAGE_KEY) + 24 + 1 + 4 * math.ceil(cipher / 3)


class StorageFullError(HFChatError):
    title = "Browser storage is full"


def check_fits(conversations: Sequence[Conversation], what: str = "This conversation") -> None:
    """Refuse a list the browser could not store (it would drop the write, and with it every
    later save of the list), saying how much is needed and how to make room."""
    needed = stored_chars(conversations)
    if needed > STORAGE_BUDGET_CHARS:
        mb = 1024 * 1024
        raise StorageFullError(
            f"{what} is too large for this browser's storage: with the conversations saved here it "
            f"needs {needed / mb:.1f} M characters, and this browser keeps about {STORAGE_BUDGET_CHARS / mb:.1f} M "
            "for hfchat. Nothing was changed.",
            "Delete or export conversations you no longer need, or import a shorter file.",
        )


def find(conversations: Sequence[Conversation], conversation_id: str | None) -> Conversation | None:
    return next((c for c in conversations if c.id == conversation_id), None)


def commit(
    conversations: Sequence[Conversation],
    current: str | None,
    messages: Sequence[Mapping[str, Any]],
    settings: ControlValues | None,
    make_id: Callable[[], str] = new_id,
    now: float | None = None,
) -> Saved | None:
    """Save what the chat window shows into the current conversation; None when nothing changed.

    A first message starts a new conversation. A changed conversation moves to the top of the
    list (newest first), and its title follows its first message (an edit of that message
    too) unless the title was renamed. A conversation emptied (the chat's clear button, or
    undo of its only turn) is removed, like Gradio's own.
    """
    messages = [dict(m) for m in messages]
    existing = find(conversations, current)
    stamp = time.time() if now is None else now
    if not messages:
        if existing is None:
            return None
        return Saved([c for c in conversations if c.id != current], None)
    if existing is None:
        created = Conversation(
            id=make_id(), title=default_title(messages), messages=tuple(messages), settings=settings, updated_at=stamp
        )
        return Saved([created, *conversations][:MAX_CONVERSATIONS], created.id)
    if list(existing.messages) == messages:
        return None
    renamed = existing.title != default_title(existing.messages)
    updated = existing.model_copy(
        update={
            "messages": tuple(messages),
            "settings": settings or existing.settings,
            "title": existing.title if renamed else default_title(messages),
            "updated_at": stamp,
        }
    )
    return Saved([updated, *(c for c in conversations if c.id != current)], current)


def answered(reply: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a reply (its messages so far) has begun: the model sent an answer, thinking or a
    tool call (the interrupted note stands in for an answer)."""
    begun = (MessageKind.ANSWER, MessageKind.THINKING, MessageKind.TOOL)
    return any(m.get("role") == "assistant" and message_kind(m) in begun for m in reply)


def answered_turns(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What of the chat window is saved: every turn whose reply began. A turn that ended
    before (a refused setting or image, a model that does not load, an endpoint that does
    not answer, Stop while loading) is shown with its message but never saved, so it creates
    no conversation and leaves a saved one as it was."""
    kept: list[dict[str, Any]] = []
    turn: list[dict[str, Any]] = []
    for message in [*messages, {"role": "user"}]:  # a last, empty question closes the last turn
        if message.get("role") == "user" and not all(is_chip(m) for m in turn):  # chips open their turn
            if not turn or turn[0].get("role") != "user" or answered(turn):
                kept += turn
            turn = []
        turn.append(dict(message))
    return kept


def turn_window(
    history: Sequence[Mapping[str, Any]], question: Mapping[str, Any], reply: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The window during a turn: the history, the chips of the documents the turn attached
    (the reply's user-side messages, `hfchat.updates.Attached`), the question, then the reply."""
    chips = [dict(m) for m in reply if is_chip(m)]
    return [*map(dict, history), *chips, dict(question), *(dict(m) for m in reply if not is_chip(m))]


def is_chip(message: Mapping[str, Any]) -> bool:
    """Whether a message is an attached document's chip, which belongs to the question after it."""
    return message.get("role") == "user" and message_kind(message) is MessageKind.DOCUMENT


INTERRUPTED_TEXT = f"{ERROR_MARK} *Interrupted: the app stopped before this reply was complete.*"


def interrupted_note() -> dict[str, Any]:
    """The assistant message saved with a question while its reply streams.

    Its metadata id (`INTERRUPTED_ID`) makes it a reply like any other (see
    `hfchat.messages.message_kind`), so the question stays in the history the model gets
    with the next message: a question left unanswered would be replaced by the next one
    (`hfchat.messages.build_messages`), and a failure drops it."""
    return {"role": "assistant", "content": INTERRUPTED_TEXT, "metadata": {"id": INTERRUPTED_ID}}


def user_message(value: Any) -> dict[str, Any]:
    """The chat box's value (text, or a multimodal `{"text", "files"}`) as a user message.
    Attached documents are left out: the turn reads them and shows each as a chip of its own
    (`hfchat.updates.Attached`), and their files are removed after it."""
    if not isinstance(value, Mapping):
        return {"role": "user", "content": str(value or "")}
    files = [f.get("path") if isinstance(f, Mapping) else f for f in value.get("files") or []]
    files = [f for f in files if not (isinstance(f, str) and is_document(f))]
    text = str(value.get("text") or "")
    if not files:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [{"path": f} for f in files if isinstance(f, str)] + ([text] if text else [])}


def question_box(message: Mapping[str, Any]) -> dict[str, Any]:
    """A question from the history in the chat box's form (`{"text", "files"}`, the inverse of
    `user_message`): what retry sends again and undo puts back in the box."""
    content = message.get("content")
    return {"text": content_text(content), "files": file_paths(content)}


def last_question(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The history before the last question, and that question (None when there is none):
    retry asks it again, undo takes it back."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].get("role") == "user":
            return [dict(m) for m in messages[:i]], dict(messages[i])
    return [dict(m) for m in messages], None


def start_turn(
    conversations: Sequence[Conversation],
    current: str | None,
    history: Sequence[Mapping[str, Any]],
    message: Any,
    make_id: Callable[[], str] = new_id,
) -> Saved | None:
    """Save a question with the interrupted note for its reply, as soon as the reply begins.

    Gradio saves a conversation only after the reply is complete, so an app restart in the
    middle of one lost the question and left the conversation unsaved: the next message then
    went to the model without it. The save at the end of the turn replaces the note. (Not
    before the reply begins: a turn that fails first would leave a conversation behind.)"""
    return commit(conversations, current, [*history, user_message(message), interrupted_note()], None, make_id)


def add(conversations: Sequence[Conversation], conversation: Conversation, now: float | None = None) -> Saved:
    """An imported conversation, at the top, under a fresh id."""
    stamp = time.time() if now is None else now
    added = conversation.model_copy(update={"id": new_id(), "updated_at": stamp})
    return Saved([added, *conversations][:MAX_CONVERSATIONS], added.id)


def check_title(title: str) -> str:
    title = " ".join((title or "").split())
    if not title:
        raise ConfigError("title: enter a title for the conversation.", "Type a title, then press Rename.")
    if len(title) > TITLE_MAX:
        raise ConfigError(f"title: at most {TITLE_MAX} characters, got {len(title)}.", "Use a shorter title.")
    return title


def rename(conversations: Sequence[Conversation], conversation_id: str | None, title: str) -> list[Conversation]:
    title = check_title(title)
    if find(conversations, conversation_id) is None:
        raise ConfigError(
            "title: this conversation is not saved yet.", "Send a message first, or pick a conversation from the list."
        )
    return [c.model_copy(update={"title": title}) if c.id == conversation_id else c for c in conversations]


def delete(conversations: Sequence[Conversation], conversation_id: str | None) -> list[Conversation]:
    if find(conversations, conversation_id) is None:
        raise ConfigError(
            "conversation: there is no saved conversation to delete.", "Pick a conversation from the list first."
        )
    return [c for c in conversations if c.id != conversation_id]


def _file_path(part: Mapping[str, Any]) -> str | None:
    file = part.get("file") if isinstance(part.get("file"), Mapping) else part
    path = file.get("path") if isinstance(file, Mapping) else None
    return path if isinstance(path, str) else None


def _available(path: str, root: Path) -> bool:
    resolved = Path(path).resolve()
    return resolved.is_relative_to(root.resolve()) and resolved.is_file()


def keep_available_files(messages: Sequence[Mapping[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Messages to show again, with only the attached files that still sit in the app's upload
    folder; any other file part becomes a note.

    The list comes back from the browser, which can put any path in it, and the chat window
    would serve whatever path it is given from the working or temp directory: only files the
    app itself received are shown again (and ones gone since a restart don't break the chat).
    """
    shown = []
    for message in messages:
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        kept: list[Any] = []
        for part in parts:
            path = _file_path(part) if isinstance(part, Mapping) and part.get("type", "file") == "file" else None
            if path is None or _available(path, root):
                kept.append(part)
            else:
                kept.append({"type": "text", "text": f"📎 {PurePath(path).name} (no longer available)"})
        shown.append({**message, "content": kept if isinstance(content, list) else kept[0]})
    return shown


TODAY, YESTERDAY, WEEK, OLDER = "Today", "Yesterday", "Previous 7 days", "Older"
"""The list's day groups, as HuggingChat names them."""


def day_group(updated_at: float | None, now: datetime) -> str:
    """Which day group a time falls in, by the calendar days of `now`'s time zone (the
    visitor's, so "Today" starts at their midnight): today, yesterday, the 7 days before
    today, older (or never stamped)."""
    if updated_at is None:
        return OLDER
    days = (now.date() - datetime.fromtimestamp(updated_at, now.tzinfo).date()).days
    if days <= 0:
        return TODAY  # a clock a little ahead of the browser's counts as today
    if days == 1:
        return YESTERDAY
    return WEEK if days <= 7 else OLDER


def by_day(conversations: Sequence[Conversation], now: datetime) -> list[tuple[str, list[Conversation]]]:
    """The list newest first, in day groups (empty groups left out), for the panel."""
    newest = sorted(conversations, key=lambda c: -(c.updated_at or 0.0))  # stable: unstamped keep their order
    groups: dict[str, list[Conversation]] = {}
    for conversation in newest:
        groups.setdefault(day_group(conversation.updated_at, now), []).append(conversation)
    return [(name, groups[name]) for name in (TODAY, YESTERDAY, WEEK, OLDER) if name in groups]


def viewer_now(utc_offset_minutes: Any, now: float | None = None) -> datetime:
    """The time now in the visitor's time zone, from the browser's UTC offset in minutes (a
    value that is not a sane offset counts as UTC)."""
    offset = utc_offset_minutes if isinstance(utc_offset_minutes, int | float) else 0
    offset = offset if abs(offset) <= 18 * 60 else 0
    zone = timezone(timedelta(minutes=float(offset)))
    return datetime.fromtimestamp(time.time() if now is None else now, zone)
