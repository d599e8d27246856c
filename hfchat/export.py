"""Conversation export (JSON and Markdown) and import of a JSON export.

The JSON file is a versioned, validated schema (`format`, `version`); import refuses
anything else with a message that says what is wrong, so a bad file never touches the
history. What goes in:

- the title, the time of export, and the sidebar settings of the latest turn, never the
  token (`ControlValues` has no token field, and an endpoint URL loses any user:password
  and query string);
- every message as shown: questions, answers, error notices, and the "Thinking" blocks
  and speed figures where the chat showed them. A message with a metadata title (Gradio's
  collapsible block) keeps it, so thinking comes back as a labelled block and is never
  sent to the model again (see `hfchat.messages`);
- attached files by name and type only: their bytes stay out of the file, so an import
  shows a "not included" note where a file was.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import PurePath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hfchat.conversations import TITLE_MAX, Conversation, new_id
from hfchat.documents import Kind, from_data, to_data
from hfchat.errors import HFChatError
from hfchat.messages import MessageKind, message_kind, upgrade_legacy
from hfchat.presets import ControlValues
from hfchat.safe_markdown import safe_images
from hfchat.settings import TURN, applies
from hfchat.updates import DOCUMENT_DATA, TOOL_DATA

FORMAT: Literal["hfchat.conversation"] = "hfchat.conversation"
VERSION: Literal[2] = 2
"""2: every message that is not a question or an answer says what it is by its metadata id
(`hfchat.updates`). Version 1 files marked them with emoji prefixes; they are upgraded on import."""
READS = (1, 2)
MAX_IMPORT_BYTES = 5 * 1024 * 1024
"""Larger files are refused: a conversation this big would not fit the browser's storage."""
MAX_IMPORT_DEPTH = 32
"""Deepest nesting of lists and objects an import may have. An export nests about 5 deep;
`json.loads` recurses once per level and fails with RecursionError near 1,000, so deeper
files are refused by a scan before parsing."""

_STRICT = ConfigDict(frozen=True, extra="forbid")


class ImportFileError(HFChatError):
    title = "Cannot import this file"


class ExportedFile(BaseModel):
    """A file attached to a message: its name and type, never its bytes or server path."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=255)
    mime_type: str | None = None


class MessageMeta(BaseModel):
    """Gradio's message metadata: a `title` makes a collapsible block ("Thinking", tool logs)."""

    model_config = _STRICT
    title: str | None = None
    id: int | str | None = None
    parent_id: int | str | None = None
    log: str | None = None
    duration: float | None = Field(None, ge=0)
    status: Literal["pending", "done"] | None = None


class ExportedToolCall(BaseModel):
    """A tool call as data (`hfchat.updates.TOOL_DATA`), so an imported conversation sends its
    calls back to the model as it did before export."""

    model_config = _STRICT
    id: str = Field(max_length=256)
    name: str = Field(max_length=256)
    server: str = Field("", max_length=2_000)
    arguments: str = ""
    result: str | None = None
    error: bool = False
    step: int = Field(0, ge=0)


class ExportedPart(BaseModel):
    model_config = _STRICT
    text: str
    page: int | None = Field(None, ge=1)
    first_line: int = Field(1, ge=1)


class ExportedDocument(BaseModel):
    """An attached document's extracted text (`hfchat.updates.DOCUMENT_DATA`), so an imported
    conversation answers from its documents as before (the file itself was never kept)."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=255)
    kind: Kind
    size: int = Field(ge=0)
    pages: int | None = Field(None, ge=0)
    parts: tuple[ExportedPart, ...]


class ExportedMessage(BaseModel):
    model_config = _STRICT
    role: Literal["user", "assistant"]
    text: str = ""
    files: tuple[ExportedFile, ...] = ()
    metadata: MessageMeta | None = None
    tool: ExportedToolCall | None = None
    document: ExportedDocument | None = None


class ConversationExport(BaseModel):
    """The export file (version 2; version 1 is read too)."""

    model_config = _STRICT
    format: Literal["hfchat.conversation"] = FORMAT
    version: Literal[1, 2] = VERSION
    title: str = Field(min_length=1, max_length=TITLE_MAX)
    exported_at: datetime
    settings: ControlValues | None = None
    messages: tuple[ExportedMessage, ...] = Field(min_length=1)


def _file_name(part: Mapping[str, Any]) -> ExportedFile:
    file = part.get("file") if isinstance(part.get("file"), Mapping) else part
    assert isinstance(file, Mapping)
    name = file.get("orig_name") or PurePath(str(file.get("path") or file.get("url") or "file")).name
    return ExportedFile(name=str(name)[:255] or "file", mime_type=file.get("mime_type"))


def _parts(content: Any) -> tuple[list[str], list[ExportedFile]]:
    """Text and files of a message's content in any shape Gradio uses."""
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if isinstance(content, Mapping):
        if isinstance(content.get("files"), list):  # a multimodal box value: {"text", "files"}
            box_text, _ = _parts(content.get("text"))
            return box_text, [_file_name(f if isinstance(f, Mapping) else {"path": f}) for f in content["files"]]
        if content.get("type", "text") == "text" and isinstance(content.get("text"), str):
            return [content["text"]], []
        return [], [_file_name(content)]
    texts: list[str] = []
    files: list[ExportedFile] = []
    for part in content if isinstance(content, Sequence) else [content]:
        more_texts, more_files = _parts(part)
        texts += more_texts
        files += more_files
    return texts, files


def _meta(metadata: Any) -> MessageMeta | None:
    if not isinstance(metadata, Mapping):
        return None
    known = {k: v for k, v in metadata.items() if k in MessageMeta.model_fields and v is not None}
    return MessageMeta.model_validate(known) if known else None


def exported_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[ExportedMessage, ...]:
    """A conversation's messages as the export file holds them (Gradio message dicts in)."""
    exported = []
    for message in messages:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        texts, files = _parts(message.get("content"))
        call = message.get(TOOL_DATA)
        document = from_data(message.get(DOCUMENT_DATA)) if role == "user" else None
        exported.append(
            ExportedMessage(
                role=role,
                text="\n\n".join(texts),
                files=tuple(files),
                metadata=_meta(message.get("metadata")),
                tool=ExportedToolCall.model_validate(call) if isinstance(call, Mapping) else None,
                document=ExportedDocument.model_validate(to_data(document)) if document else None,
            )
        )
    return tuple(exported)


def digest(messages: Sequence[ExportedMessage]) -> str:
    """What identifies an exported conversation's content: its messages, not its title, time
    or settings (a file renamed, or exported again, is the same conversation)."""
    plain = [m.model_dump(mode="json", exclude_none=True) for m in messages]
    return hashlib.sha256(json.dumps(plain, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def already_saved(conversations: Sequence[Conversation], imported: Conversation) -> Conversation | None:
    """The saved conversation an import is a copy of: one imported from the same file's
    messages, or the very conversation the file was exported from (unchanged since)."""
    for conversation in conversations:
        if imported.imported_from in (conversation.imported_from, digest(exported_messages(conversation.messages))):
            return conversation
    return None


def build_export(
    title: str,
    messages: Sequence[Mapping[str, Any]],
    settings: ControlValues | None,
    now: datetime | None = None,
) -> ConversationExport:
    """The export of a conversation as the chat window holds it (Gradio message dicts)."""
    exported = exported_messages(messages)
    if not exported:
        raise HFChatError("There is nothing to export yet.", "Send a message first, or pick a saved conversation.")
    return ConversationExport(
        title=" ".join(title.split())[:TITLE_MAX] or "Conversation",
        exported_at=now or datetime.now(timezone.utc),
        settings=settings,
        messages=exported,
    )


def to_json(export: ConversationExport) -> str:
    return json.dumps(export.model_dump(mode="json", exclude_none=True), ensure_ascii=False, indent=2) + "\n"


def _settings_lines(settings: ControlValues) -> list[str]:
    """The settings that reached the turn's backend, in the sidebar's order."""
    values = settings.model_dump(mode="json")
    lines = ["| Setting | Value |", "|---|---|"]
    for name in TURN:
        if not applies(name, settings.backend) or (name == "system_prompt" and not values[name]):
            continue
        cell = str(values[name]).replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{name}` | {cell} |")
    return lines


def _kind(message: ExportedMessage) -> MessageKind:
    return message_kind(message.model_dump(exclude_none=True))


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def to_markdown(export: ConversationExport) -> str:
    """A readable transcript: the settings table, then each turn under a heading. Thinking
    and other titled blocks are quoted under their title with their duration; a status line
    without a title (the speed footer) is set in italics under the answer."""
    out = [f"# {export.title}", "", f"Exported from hfchat on {export.exported_at:%Y-%m-%d %H:%M} UTC.", ""]
    if export.settings is not None:
        out += ["## Settings", "", *_settings_lines(export.settings), ""]
    out += ["## Conversation", ""]
    speaker = None
    for message in export.messages:
        if message.role != speaker:
            speaker = message.role
            out += ["### You" if message.role == "user" else "### Assistant", ""]
        meta = message.metadata
        if meta is not None and meta.title:
            label = f"**{meta.title}**" + (f" ({meta.duration:.1f} s)" if meta.duration is not None else "")
            if meta.log:
                label += f" — {meta.log}"
            out += [f"> {label}", ">", _quote(message.text), ""]
        elif message.text and meta is not None and _kind(message) is MessageKind.FOOTER:
            out += [f"*{message.text.strip()}*", ""]
        elif message.text:
            out += [message.text, ""]
        for file in message.files:
            out += [f"📎 *{file.name}*" + (f" ({file.mime_type})" if file.mime_type else "") + " (not included)", ""]
    return "\n".join(out).rstrip() + "\n"


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            msg = "unknown field (a token is never part of an export)"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


# A JSON string (possessive, so an unterminated one costs one linear scan) or a bracket.
_STRING_OR_BRACKET = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')


def json_depth(text: str, limit: int | None = None) -> int:
    """How deeply lists and objects nest in a JSON text, brackets inside strings left out;
    it stops counting once past `limit`. Linear and without recursion, so it is safe to
    run on any text before `json.loads` (unbalanced text gives a meaningless but finite figure)."""
    depth = deepest = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if limit is not None and deepest > limit:
                    break
        elif token in "]}":
            depth -= 1
    return deepest


_IMPORT_HINT = "Choose a .json file exported by hfchat (Export JSON)."


def check_import_size(size: int) -> None:
    """Refuse a file over MAX_IMPORT_BYTES (callers with a file check its size before reading it)."""
    if size > MAX_IMPORT_BYTES:
        raise ImportFileError(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.", _IMPORT_HINT)


def parse_export(data: bytes | str) -> ConversationExport:
    """Read a JSON export; anything else raises ImportFileError saying what is wrong.

    Size and nesting are checked before `json.loads`, and every failure of the parser itself
    (RecursionError, a number too long for int(), bad UTF-8) becomes the same notice."""
    hint = _IMPORT_HINT
    check_import_size(len(data))
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"The file is not valid JSON (not UTF-8 text: {exc.reason}).", hint) from None
    if json_depth(text, MAX_IMPORT_DEPTH) > MAX_IMPORT_DEPTH:
        raise ImportFileError(f"The file is nested more than {MAX_IMPORT_DEPTH} levels deep.", hint)
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError, as is int()'s digit limit
        raise ImportFileError(f"The file is not valid JSON ({exc}).", hint) from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ImportFileError(
            'The file is not an hfchat conversation export (no "format": "hfchat.conversation").', hint
        )
    if raw.get("version") not in READS:
        raise ImportFileError(
            f"The file has export version {raw.get('version')!r}; this hfchat reads version "
            + " and ".join(map(str, READS))
            + ".",
            "Export it again with this version of hfchat.",
        )
    try:
        return ConversationExport.model_validate(raw)
    except ValidationError as exc:
        raise ImportFileError(f"The export is damaged: {_validation_message(exc)}.", hint) from None


def to_chat_messages(export: ConversationExport) -> list[dict[str, Any]]:
    """Gradio message dicts for the chat window; a file that was attached becomes a note.
    A version 1 file's messages are upgraded (`hfchat.messages.upgrade_legacy`)."""
    messages = []
    for message in export.messages:
        text = message.text
        notes = [f"📎 {f.name} (not included in the export)" for f in message.files]
        text = safe_images("\n\n".join([t for t in [text, *notes] if t]))  # a file's remote images: links
        item: dict[str, Any] = {"role": message.role, "content": text}
        if message.metadata is not None:
            item["metadata"] = message.metadata.model_dump(exclude_none=True)
        if message.tool is not None:
            item[TOOL_DATA] = message.tool.model_dump()
        if message.document is not None and message.role == "user":
            item[DOCUMENT_DATA] = message.document.model_dump(mode="json")
        messages.append(item)
    return upgrade_legacy(messages) if export.version == 1 else messages


def to_conversation(export: ConversationExport) -> Conversation:
    """A conversation to add to the saved list (it gets a fresh id when added)."""
    return Conversation(
        id=new_id(),
        title=export.title,
        messages=tuple(to_chat_messages(export)),
        settings=export.settings,
        imported_from=digest(export.messages),
    )


def import_conversation(data: bytes | str) -> Conversation:
    """An export file as a conversation to add, or ImportFileError: the one entry point for
    the app's Import button, so every malformed file gets the same kind of notice."""
    export = parse_export(data)
    try:
        return to_conversation(export)
    except ValidationError as exc:  # e.g. a title of spaces, which the saved list strips to nothing
        raise ImportFileError(f"The export is damaged: {_validation_message(exc)}.", _IMPORT_HINT) from None


def file_stem(title: str) -> str:
    """A safe file name from a title."""
    stem = "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in title).strip().replace(" ", "-")
    return (stem or "conversation")[:60]
