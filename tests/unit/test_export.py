"""Export to JSON and Markdown, and import back: plain data, no browser."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from hfchat import conversations as convos
from hfchat.conversations import Conversation
from hfchat.errors import HFChatError
from hfchat.export import (
    FORMAT,
    MAX_IMPORT_BYTES,
    ImportFileError,
    already_saved,
    build_export,
    file_stem,
    import_conversation,
    parse_export,
    to_chat_messages,
    to_conversation,
    to_json,
    to_markdown,
)
from hfchat.messages import MessageKind, history_to_messages, message_kind
from hfchat.presets import control_values, values_from_controls
from hfchat.updates import FAILED_ID, FOOTER_ID, THINKING_ID
from tests.fixtures import SENTINEL_TOKEN

NOW = datetime(2026, 11, 25, 14, 30, tzinfo=timezone.utc)

SIDEBAR = {
    "backend": "endpoint",
    "model": "",
    "endpoint_url": "http://user:pw@127.0.0.1:8000/v1",
    "served_model": "tiny",
    "system_prompt": "Be brief.",
    "max_new_tokens": 64.0,
    "temperature": 0.7,
    "seed": 3.0,
    "hf_token": SENTINEL_TOKEN,
}

# What the chat window holds after a reasoning reply with a speed footer, and an image question.
HISTORY = [
    {"role": "user", "content": [{"type": "text", "text": "What is 2+2?"}], "metadata": None, "options": None},
    {
        "role": "assistant",
        "content": [{"type": "text", "text": "The user asks a sum.\nIt is 4."}],
        "metadata": {"id": THINKING_ID, "title": "Thinking", "duration": 1.25, "status": "done"},
        "options": None,
    },
    {"role": "assistant", "content": [{"type": "text", "text": "**4**"}], "metadata": None, "options": None},
    {
        "role": "assistant",
        "content": "tiny · Local · cached · 0.40 s to first token · 12.5 tok/s · 9 out (tokenizer)",
        "metadata": {"id": FOOTER_ID},
    },
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "And this?"},
            {
                "type": "file",
                "file": {"path": "/tmp/gradio/abc/cat.png", "orig_name": "cat.png", "mime_type": "image/png"},
            },
        ],
    },
    {"role": "assistant", "content": "A cat."},
]


def make_export():
    return build_export("Sums  and cats", HISTORY, values_from_controls(SIDEBAR), now=NOW)


def test_json_round_trip_keeps_every_message_and_the_settings() -> None:
    export = make_export()
    text = to_json(export)
    back = parse_export(text.encode())
    assert back == export
    raw = json.loads(text)
    assert raw["format"] == FORMAT and raw["version"] == 2 and raw["title"] == "Sums and cats"
    assert raw["settings"]["served_model"] == "tiny" and raw["settings"]["max_new_tokens"] == 64
    assert [m["role"] for m in raw["messages"]] == ["user", "assistant", "assistant", "assistant", "user", "assistant"]
    assert raw["messages"][1]["metadata"] == {
        "id": THINKING_ID,
        "title": "Thinking",
        "duration": 1.25,
        "status": "done",
    }
    assert raw["messages"][3] == {
        "role": "assistant",
        "text": "tiny · Local · cached · 0.40 s to first token · 12.5 tok/s · 9 out (tokenizer)",
        "files": [],
        "metadata": {"id": FOOTER_ID},
    }, "the speed figures shown are kept, marked as the footer"
    assert raw["messages"][4]["files"] == [{"name": "cat.png", "mime_type": "image/png"}]


def test_the_token_and_url_credentials_never_appear() -> None:
    export = make_export()
    for text in (to_json(export), to_markdown(export)):
        assert SENTINEL_TOKEN not in text and "hf_token" not in text
        assert "user:pw" not in text and "/tmp/gradio" not in text, "no credentials, no server paths"
        assert "http://127.0.0.1:8000/v1" in text


def test_markdown_is_a_readable_transcript() -> None:
    md = to_markdown(make_export())
    assert md.startswith("# Sums and cats\n")
    assert "Exported from hfchat on 2026-11-25 14:30 UTC." in md
    assert "| `backend` | endpoint |" in md and "| `served_model` | tiny |" in md
    assert "| `top_k` |" not in md, "only the settings that reach the chosen backend"
    assert "### You\n\nWhat is 2+2?" in md
    assert (
        "### Assistant\n\n> **Thinking** (1.2 s)\n>\n> The user asks a sum.\n> It is 4.\n\n**4**\n\n"
        "*tiny · Local · cached · 0.40 s to first token · 12.5 tok/s · 9 out (tokenizer)*\n\n### You"
    ) in md
    assert "📎 *cat.png* (image/png) (not included)" in md


def test_import_continues_the_conversation_and_thoughts_stay_out_of_the_prompt() -> None:
    export = parse_export(to_json(make_export()))
    messages = to_chat_messages(export)
    assert messages[1] == {
        "role": "assistant",
        "content": "The user asks a sum.\nIt is 4.",
        "metadata": {"id": THINKING_ID, "title": "Thinking", "duration": 1.25, "status": "done"},
    }
    assert messages[4]["content"] == "And this?\n\n📎 cat.png (not included in the export)"
    assert messages[3]["metadata"] == {"id": FOOTER_ID}
    prompt = [m.content for m in history_to_messages(messages)]
    assert "The user asks a sum.\nIt is 4." not in prompt
    assert prompt[0] == "What is 2+2?" and prompt[-1] == "A cat."
    conversation = to_conversation(export)
    assert isinstance(conversation, Conversation) and conversation.title == "Sums and cats"
    assert conversation.settings == export.settings


def test_a_multimodal_box_value_exports_its_files_by_name() -> None:
    history = [{"role": "user", "content": {"text": "see", "files": ["/srv/up/dog.jpg"]}}]
    (message,) = build_export("t", history, None, now=NOW).messages
    assert message.text == "see" and [f.name for f in message.files] == ["dog.jpg"]


def test_nothing_to_export_is_a_clear_error() -> None:
    with pytest.raises(HFChatError, match="nothing to export"):
        build_export("t", [], None)


def good() -> dict:
    return json.loads(to_json(make_export()))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe not json", "not valid JSON"),
        (b"{", "not valid JSON"),
        (b"[]", "not an hfchat conversation export"),
        (json.dumps([{"role": "user", "content": "hi"}]).encode(), "not an hfchat conversation export"),
        (json.dumps({**good(), "format": "chatgpt"}).encode(), "not an hfchat conversation export"),
        (json.dumps({**good(), "version": 3}).encode(), "version 3; this hfchat reads version 1 and 2"),
        (json.dumps({**good(), "messages": []}).encode(), "messages"),
        (json.dumps({**good(), "messages": [{"role": "system", "text": "x"}]}).encode(), "messages.0.role"),
        (json.dumps({**good(), "settings": {"hf_token": SENTINEL_TOKEN}}).encode(), "settings.hf_token: unknown"),
        (json.dumps({**good(), "settings": {"temperature": 5}}).encode(), "settings.temperature"),
        (json.dumps({**good(), "title": ""}).encode(), "title"),
        (b" " * (MAX_IMPORT_BYTES + 1), "larger than 5 MB"),
    ],
)
def test_bad_files_are_refused_with_what_is_wrong(data: bytes, words: str) -> None:
    with pytest.raises(ImportFileError, match=words) as caught:
        parse_export(data)
    assert caught.value.hint and SENTINEL_TOKEN not in str(caught.value)


def test_settings_in_a_file_are_checked_like_a_preset() -> None:
    raw = good()
    raw["settings"]["endpoint_url"] = "https://k:secret@example.com/v1?key=secret"
    export = parse_export(json.dumps(raw))
    assert export.settings == control_values({**raw["settings"], "endpoint_url": "https://example.com/v1"})


def test_file_stems_are_safe() -> None:
    assert file_stem("Sums and cats") == "Sums-and-cats"
    assert file_stem("../../etc/passwd") == "______etc_passwd"
    assert file_stem("///") == "___"
    assert file_stem("") == "conversation"


def test_a_reasoning_reply_with_its_speed_footer_exports_and_comes_back() -> None:
    """The real reply model's messages: a Thinking block, the answer, the ⏱ footer."""
    from hfchat.backends.types import Delta, Usage
    from hfchat.config import Backend
    from hfchat.reply import Reply, ReplySource
    from hfchat.ui.render import to_messages

    ticks = iter(range(100))
    reply = Reply(ReplySource(Backend.LOCAL, "tiny"), clock=lambda: float(next(ticks)))
    reply.add(Delta(text="<think>Two and two"))
    reply.add(Delta(text=" make four.</think>The answer is 4."))
    reply.add(Delta(finish_reason="stop", usage=Usage(input_tokens=7, output_tokens=9, counted_by="tokenizer")))
    reply.finish()
    shown = to_messages(reply.view(show_speed=True))
    history = [{"role": "user", "content": "What is 2+2?"}, *shown]
    export = build_export("Sums", history, None, now=NOW)

    thinking, answer, footer = export.messages[1:]
    assert (
        thinking.metadata is not None
        and thinking.metadata.title == "Thinking"
        and thinking.text == ("Two and two make four.")
    )
    assert answer.text == "The answer is 4." and answer.metadata is None
    assert footer.text.startswith("◷ ") and " · tiny · " in footer.text and "stopped: stop" in footer.text
    md = to_markdown(export)
    assert "### Assistant\n\n> **Thinking** (" in md and "> Two and two make four." in md
    assert f"The answer is 4.\n\n*{footer.text}*" in md

    back = to_chat_messages(parse_export(to_json(export)))
    assert [m.content for m in history_to_messages(back)] == ["What is 2+2?", "The answer is 4."]
    assert [message_kind(m) for m in back[1:]] == [MessageKind.THINKING, MessageKind.ANSWER, MessageKind.FOOTER]


def test_a_failure_keeps_its_kind_and_reads_as_plain_text_in_markdown() -> None:
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "partial"},
        {"role": "assistant", "content": "⚠️ **Server error.** gone\n\nSend again.", "metadata": {"id": FAILED_ID}},
    ]
    export = parse_export(to_json(build_export("t", history, None, now=NOW)))
    assert export.messages[2].metadata is not None and export.messages[2].metadata.id == FAILED_ID
    assert "partial\n\n⚠️ **Server error.** gone\n\nSend again.\n" in to_markdown(export), "not in italics"
    assert [m.content for m in history_to_messages(to_chat_messages(export))] == ["q", "partial"]


def test_a_version_1_export_is_upgraded_on_import() -> None:
    """Files exported before replies were typed marked their notices with emoji only."""
    raw = {
        "format": FORMAT,
        "version": 1,
        "title": "Old",
        "exported_at": "2026-01-01T00:00:00Z",
        "messages": [
            {"role": "user", "text": "q1"},
            {"role": "assistant", "text": "a1"},
            {"role": "assistant", "text": "⏱ tiny · Local · cached", "metadata": {"id": "hfchat-speed"}},
            {"role": "user", "text": "q2"},
            {"role": "assistant", "text": "partial\n\n⚠️ **Server error.** gone"},
            {"role": "user", "text": "q3"},
            {"role": "assistant", "text": "⚠️ **Timed out.** nothing came"},
        ],
    }
    messages = to_conversation(parse_export(json.dumps(raw))).messages
    kinds = [m["role"] == "user" or message_kind(m).value for m in messages]
    assert kinds == [True, "answer", "footer", True, "answer", "failed", True, "failed"]
    assert [m.content for m in history_to_messages(messages)] == ["q1", "a1", "q2", "partial"]
    assert parse_export(to_json(build_export("Old", messages, None, now=NOW))).version == 2, "saved again as v2"


def test_an_import_already_in_the_list_is_found_not_copied() -> None:
    """The same file imported again, or the file of a conversation still saved here, is a copy
    (by its messages: a renamed file is the same conversation); a continued one is not."""
    saved = convos.commit([], None, HISTORY, None)
    assert saved is not None
    (original,) = saved.conversations
    file = to_json(build_export("Sums and cats", HISTORY, None, NOW))
    imported = import_conversation(file)
    assert already_saved(saved.conversations, imported) == original, "exported from this very conversation"

    elsewhere = convos.add([], imported)  # another browser: the first import is added
    again = import_conversation(file.replace("Sums and cats", "Renamed file"))
    assert already_saved(elsewhere.conversations, again) == elsewhere.conversations[0]
    continued = convos.commit(
        elsewhere.conversations, elsewhere.current, [*elsewhere.conversations[0].messages, *HISTORY[:1]], None
    )
    assert continued is not None
    assert already_saved(continued.conversations, again) == continued.conversations[0], "imported from that file"
    other = import_conversation(to_json(build_export("Other", HISTORY[:3], None, NOW)))
    assert already_saved(continued.conversations, other) is None
    assert already_saved([], imported) is None


def test_tool_calls_survive_export_import_and_go_back_to_the_model_as_before() -> None:
    """A tool call is kept as data beside its block (`TOOL_DATA`): an imported conversation
    sends the call and its result back to the model as tool messages, as it did before."""
    from langchain_core.messages import AIMessage, ToolMessage

    from hfchat.conversations import load
    from hfchat.messages import history_to_messages
    from hfchat.ui.render import to_messages
    from hfchat.updates import Answer, ToolCall

    call = ToolCall("call_7", "calculator", '{"expression": "6*7"}', "built-in", "42", True, key="k1")
    history = [{"role": "user", "content": "6 times 7?"}, *to_messages((call, Answer("It is 42.")))]
    back = to_chat_messages(parse_export(to_json(build_export("t", history, None)).encode()))
    stored = load([{"id": "c1", "title": "t", "messages": back}])[0].messages
    for messages in (back, list(stored)):
        sent = history_to_messages(messages, tools=True)
        assert [type(m).__name__ for m in sent] == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
        assert isinstance(sent[1], AIMessage) and sent[1].tool_calls[0]["args"] == {"expression": "6*7"}
        assert isinstance(sent[2], ToolMessage) and sent[2].content == "42" and sent[2].tool_call_id == "call_7"
    assert "**Tool: calculator · built-in**" in to_markdown(build_export("t", history, None))


def test_a_document_chip_survives_export_import_and_is_answered_from_as_before(tmp_path: Path) -> None:
    """The chip keeps the document's text as data (`DOCUMENT_DATA`): after export and import,
    and after the browser's saved list reads it back, the conversation holds the same
    document, the chip goes before its question, and no chip text reaches the model."""
    from hfchat.documents import extract, to_data
    from hfchat.messages import conversation_documents
    from hfchat.testing.documents import PAGE_SECRET, three_page_pdf
    from hfchat.ui.render import to_messages
    from hfchat.updates import Answer, Attached

    document = extract(three_page_pdf(tmp_path / "report.pdf"))
    chip = Attached(document.name, "2.7 KB · 3 pages", to_data(document))
    question = {"role": "user", "content": "What is the launch code?"}
    history = convos.turn_window([], question, to_messages((chip, Answer("TANGERINE-4471."))))
    assert [m["role"] for m in history] == ["user", "user", "assistant"] and history[1] == question
    back = to_chat_messages(parse_export(to_json(build_export("t", history, None)).encode()))
    stored = convos.load([{"id": "c1", "title": "t", "messages": back}])[0].messages
    for messages in (history, back, list(stored)):
        assert conversation_documents(messages) == [document]
        assert PAGE_SECRET in conversation_documents(messages)[0].text
        sent = history_to_messages(messages)
        assert [m.content for m in sent] == ["What is the launch code?", "TANGERINE-4471."], "the chip is not sent"
    assert convos.default_title(history) == "📎 What is the launch code?"
    assert convos.answered_turns(history) == history, "the chip is saved with its turn"


def test_a_damaged_document_in_an_import_is_refused_by_name() -> None:
    raw = json.loads(to_json(build_export("t", [{"role": "user", "content": "hi"}], None)))
    raw["messages"][0]["document"] = {"name": "x.txt", "kind": "exe", "size": 1, "parts": []}
    with pytest.raises(ImportFileError, match="kind"):
        import_conversation(json.dumps(raw))
