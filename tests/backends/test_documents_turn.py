"""Attached documents through a whole turn: read, inline or retrieved, sent, cited, kept, removed.

Through a recording proxy in front of a real `transformers serve` (the session's tiny chat
model), so what the tests read is the JSON that reached the server. The documents are built
by `hfchat.testing.documents` (a pure-Python PDF writer; secrets on page 3 and on one line).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.conversations import turn_window, user_message
from hfchat.testing import documents as docs
from hfchat.testing.servers import RecordingProxy
from hfchat.ui.render import to_messages
from hfchat.updates import Answer, Attached, Failed, Notice, ReplyView, Sources


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    """Stands in for Gradio's upload folder: the service reads documents only from here."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    return folder


def service_chat(proxy: RecordingProxy, uploads: Path, *flags: str) -> Any:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url, "--max-new-tokens", "4", *flags], {})
    service = ChatService(cache=ModelCache(2), timeout=5, limits=options.limits, upload_root=str(uploads))
    return make_chat_fn(service, options)


def run_turn(fn: Any, text: str, files: list[Path], history: list[dict[str, Any]]) -> list[ReplyView]:
    before = [dict(m) for m in history]
    out = list(fn({"text": text, "files": [str(f) for f in files]}, history))
    assert history == before, "a turn never changes the history it was given"
    return out


def sent_user_text(proxy: RecordingProxy) -> str:
    """The last user message of the last chat request that reached the server."""
    chats = [r for r in proxy.requests if r.path.endswith("/chat/completions")]
    content = chats[-1].json["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def window_after(history: list[dict[str, Any]], text: str, view: ReplyView) -> list[dict[str, Any]]:
    """The chat window after the turn, as the UI keeps it (chips before the question)."""
    return turn_window(history, user_message({"text": text, "files": []}), to_messages(view))


@pytest.fixture
def chat(proxy: RecordingProxy, uploads: Path) -> Iterator[Any]:
    yield service_chat(proxy, uploads)


def test_a_short_pdf_goes_inline_labelled_and_its_chip_and_sources_show(
    chat: Any, proxy: RecordingProxy, uploads: Path
) -> None:
    pdf = docs.three_page_pdf(uploads / "report.pdf")
    last = run_turn(chat, "What is the launch code?", [pdf], [])[-1]
    chip = last[0]
    assert isinstance(chip, Attached) and chip.name == "report.pdf" and chip.about.endswith(" KB · 3 pages"), chip
    assert any(isinstance(u, Answer) for u in last), last
    sent = sent_user_text(proxy)
    assert '<document name="report.pdf">' in sent and docs.PAGE_SECRET in sent and "[page 3]" in sent
    assert sent.endswith("What is the launch code?"), "the question comes after the document"
    sources = next(u for u in last if isinstance(u, Sources))
    assert sources.labels == ("report.pdf, pages 1–3 (sent whole)",)
    assert not pdf.exists(), "the uploaded file is removed after its turn"


def test_a_long_file_sends_only_the_passage_the_question_needs_and_a_follow_up_retrieves_again(
    chat: Any, proxy: RecordingProxy, uploads: Path
) -> None:
    path, secret_line = docs.long_text_file(uploads / "long.txt")
    size = len(path.read_text())
    question = "Who keeps the vault combination?"
    last = run_turn(chat, question, [path], [])[-1]
    sent = sent_user_text(proxy)
    assert docs.LINE_SECRET in sent and len(sent) < size / 5, (len(sent), size)
    notice = next(u for u in last if isinstance(u, Notice))
    assert "too long to send whole" in notice.text and "long.txt" in notice.text
    label = next(u for u in last if isinstance(u, Sources)).labels[0]
    first, last_line = (int(n) for n in label.removeprefix("long.txt, lines ").split("–"))
    assert first <= secret_line <= last_line, label

    history = window_after([], question, last)
    assert history[0]["metadata"]["id"] == "hfchat-document" and history[1]["content"] == question
    proxy.clear()
    follow = run_turn(chat, "What is the vault combination, exactly?", [], history)[-1]
    assert not any(isinstance(u, Attached) for u in follow), "no new chip for a follow-up"
    assert docs.LINE_SECRET in sent_user_text(proxy), "the follow-up retrieves from the kept text"
    assert any(isinstance(u, Sources) for u in follow)
    chats = [r for r in proxy.requests if r.path.endswith("/chat/completions")]
    earlier = [m["content"] for m in chats[-1].json["messages"][:-1]]
    assert earlier[0] == question and not any("<document" in str(c) for c in earlier), "past turns carry no copy"


def test_a_long_pdf_sends_the_page_the_question_is_about_and_sources_name_it(
    chat: Any, proxy: RecordingProxy, uploads: Path
) -> None:
    """30 pages of about 250 tokens (past the 4,096 tokens planned for when the server states no
    context length, as `transformers serve` doesn't): only page 3, where the secret is, goes."""
    pages = [[f"Page {n} of 30", *docs.filler_lines(20, seed=n)] for n in range(1, 31)]
    pages[2].insert(9, docs.PAGE_SECRET)
    pdf = uploads / "handbook.pdf"
    pdf.write_bytes(docs.pdf_bytes(pages, compress=True))
    last = run_turn(chat, "What is the launch code for Operation Bluebird?", [pdf], [])[-1]
    sent = sent_user_text(proxy)
    assert docs.PAGE_SECRET in sent and '<document name="handbook.pdf" part="page 3">' in sent
    assert "Page 20 of 30" not in sent, "pages the question is not about stay behind"
    labels = next(u for u in last if isinstance(u, Sources)).labels
    assert "handbook.pdf, page 3" in labels, labels


def test_a_csv_goes_inline_with_its_header(chat: Any, proxy: RecordingProxy, uploads: Path) -> None:
    run_turn(chat, "Which sku is the cheapest?", [docs.csv_file(uploads / "prices.csv")], [])
    assert '<document name="prices.csv">\nsku,name,price_eur,stock\nA001,' in sent_user_text(proxy)


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda p: docs.scanned_pdf(p / "scan.pdf"), "no text layer"),
        (lambda p: docs.broken_pdf(p / "broken.pdf"), "broken.pdf"),
        (lambda p: docs.nested_json(p / "deep.json"), "nest"),
        (lambda p: docs.binary_as_text(p / "blob.txt"), "blob.txt"),
    ],
)
def test_a_bad_file_is_refused_with_its_reason_and_the_next_message_works(
    chat: Any, proxy: RecordingProxy, uploads: Path, build: Any, reason: str
) -> None:
    bad = build(uploads)
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    last = run_turn(chat, "Read this", [bad], history)[-1]
    failed = last[-1]
    assert isinstance(failed, Failed) and reason in failed.message, failed
    assert not any(isinstance(u, Attached) for u in last), "a refused file shows no chip"
    assert not [r for r in proxy.requests if r.path.endswith("/chat/completions")], "nothing was sent"
    assert not bad.exists(), "a refused upload is removed too"
    after = run_turn(chat, "Hi again", [], history)[-1]
    assert any(isinstance(u, Answer) for u in after) and not any(isinstance(u, Failed) for u in after), after


def test_limits_from_the_flags_refuse_a_big_file_and_a_long_pdf(proxy: RecordingProxy, uploads: Path) -> None:
    fn = service_chat(proxy, uploads, "--max-attachment-mb", "0.01", "--max-pdf-pages", "2")
    big = uploads / "big.txt"
    big.write_text("word " * 5000)
    failed = run_turn(fn, "Read this", [big], [])[-1][-1]
    assert isinstance(failed, Failed) and "the limit for an attachment is" in failed.message, failed
    assert "--max-attachment-mb" in failed.hint
    pdf = docs.three_page_pdf(uploads / "report.pdf")
    failed = run_turn(fn, "Read this", [pdf], [])[-1][-1]
    assert isinstance(failed, Failed) and "3 pages" in failed.message and "2" in failed.message, failed


def test_a_path_outside_the_upload_folder_is_never_read(
    chat: Any, proxy: RecordingProxy, uploads: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("The server's own secret.")
    failed = run_turn(chat, "Read this", [outside], [])[-1][-1]
    assert isinstance(failed, Failed) and "not uploaded to this app" in failed.message
    assert outside.exists(), "a file outside the uploads is never removed either"
    assert not proxy.requests or "server's own secret" not in str([r.json for r in proxy.requests])


def test_a_conversation_holds_at_most_ten_documents(chat: Any, proxy: RecordingProxy, uploads: Path) -> None:
    history: list[dict[str, Any]] = []
    files = []
    for n in range(11):
        note = uploads / f"note{n}.md"
        note.write_text(f"Note {n}.")
        files.append(note)
    last = run_turn(chat, "Read these", files[:10], history)[-1]
    assert sum(isinstance(u, Attached) for u in last) == 10
    history = window_after(history, "Read these", last)
    failed = run_turn(chat, "And this", [files[10]], history)[-1][-1]
    assert isinstance(failed, Failed) and "10 documents" in failed.message and "new conversation" in failed.hint
