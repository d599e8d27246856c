"""Attached documents: each kind's text extracted with its locations, and each bad file refused
with a message that names the file and the limit or reason, and says how to fix it."""

from __future__ import annotations

import codecs
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from hfchat.documents import DOCUMENT_EXTENSIONS, DocumentLimits, extract, file_kind, is_document
from hfchat.errors import InputError
from hfchat.testing import documents as fixtures
from hfchat.testing.documents import LINE_SECRET, PAGE_SECRET, Page, pdf_bytes


@pytest.fixture(scope="session")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixtures.bomb_pdf(tmp_path_factory.mktemp("bomb") / "bomb.pdf", inflated_mb=400)


def refused(path: Path, limits: DocumentLimits | None = None, name: str | None = None) -> InputError:
    with pytest.raises(InputError) as info:
        extract(path, name, limits or DocumentLimits())
    error = info.value
    assert (name or path.name) in error.message, error.message
    assert error.hint, "every refusal says what to do"
    return error


def test_file_kind_by_name() -> None:
    assert [file_kind(n) for n in ("a.txt", "B.MD", "c.csv", "d.json", "e.pdf", "f.py", "g.tsx", "Dockerfile")] == [
        "text",
        "markdown",
        "csv",
        "json",
        "pdf",
        "code",
        "code",
        "code",
    ]
    assert not is_document("photo.png") and not is_document("archive.zip") and not is_document("noext")
    assert is_document("notes.txt") and ".pdf" in DOCUMENT_EXTENSIONS and ".py" in DOCUMENT_EXTENSIONS
    assert ".png" not in DOCUMENT_EXTENSIONS


def test_three_page_pdf_keeps_its_pages(tmp_path: Path) -> None:
    path = fixtures.three_page_pdf(tmp_path / "report.pdf")
    started = time.perf_counter()
    document = extract(path)
    assert time.perf_counter() - started < 2
    assert (document.name, document.kind, document.size, document.pages) == (
        "report.pdf",
        "pdf",
        path.stat().st_size,
        3,
    )
    assert [part.page for part in document.parts] == [1, 2, 3]
    assert [part.text.splitlines()[0] for part in document.parts] == ["Page 1 of 3", "Page 2 of 3", "Page 3 of 3"]
    assert [PAGE_SECRET in part.text for part in document.parts] == [False, False, True]
    assert PAGE_SECRET in document.text


def test_uncompressed_pdf_and_a_page_without_text(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pdf"
    path.write_bytes(pdf_bytes([["first page"], Page(image=True), ["third page", "second line"]]))
    document = extract(path)
    assert document.pages == 3
    assert [(part.page, part.text) for part in document.parts] == [(1, "first page"), (3, "third page\nsecond line")]


@pytest.mark.parametrize(
    ("name", "kind", "content"),
    [
        ("notes.txt", "text", "first line\nsecond line\n"),
        ("README.md", "markdown", "# Title\n\n- item *one*\n"),
        ("prices.csv", "csv", "sku,price\nA1,2.50\n"),
        ("data.json", "json", '{"a": [1, 2, {"b": "]]]] not nesting"}]}\n'),
        ("tool.py", "code", "def f(x: int) -> int:\n    return x + 1\n"),
        ("main.rs", "code", 'fn main() {\n    println!("héllo ✓");\n}\n'),
    ],
    ids=["txt", "md", "csv", "json", "py", "rs"],
)
def test_each_text_kind_is_extracted_whole(tmp_path: Path, name: str, kind: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    document = extract(path)
    assert (document.name, document.kind, document.size, document.pages) == (name, kind, path.stat().st_size, None)
    assert document.text == content and document.parts[0].first_line == 1


def test_csv_and_long_text_fixtures(tmp_path: Path) -> None:
    csv = extract(fixtures.csv_file(tmp_path / "prices.csv"))
    assert csv.kind == "csv" and csv.text.splitlines()[0] == "sku,name,price_eur,stock"
    path, line = fixtures.long_text_file(tmp_path / "long.txt")
    started = time.perf_counter()
    long = extract(path)
    assert time.perf_counter() - started < 1
    assert long.text.split("\n")[line - 1] == LINE_SECRET and long.text.count(LINE_SECRET) == 1


def test_byte_order_marks_and_windows_newlines(tmp_path: Path) -> None:
    (tmp_path / "bom.txt").write_bytes(codecs.BOM_UTF8 + b"caf\xc3\xa9\r\nline two\r\n")
    assert extract(tmp_path / "bom.txt").text == "café\nline two\n"
    (tmp_path / "utf16.txt").write_bytes("naïve\n".encode("utf-16"))
    assert extract(tmp_path / "utf16.txt").text == "naïve\n"


def test_the_name_given_decides_the_kind_and_is_in_the_message(tmp_path: Path) -> None:
    upload = fixtures.latin1_text(tmp_path / "tmpab12cd")  # how a temporary upload may be named
    assert refused(upload, name="menu.txt").message.startswith("'menu.txt' is not UTF-8")


def test_not_utf8_is_refused_and_no_encoding_is_guessed(tmp_path: Path) -> None:
    error = refused(fixtures.latin1_text(tmp_path / "menu.txt"))
    assert "not UTF-8 text" in error.message and "0xE9" in error.message
    assert "Save it as UTF-8" in error.hint and "does not guess" in error.hint


def test_binary_with_a_text_name_is_refused(tmp_path: Path) -> None:
    assert "binary file" in refused(fixtures.binary_as_text(tmp_path / "program.txt")).message
    (tmp_path / "controls.md").write_bytes(bytes(range(1, 32)) * 40)  # no NUL, valid UTF-8, still not text
    assert "binary file" in refused(tmp_path / "controls.md").message


def test_too_big_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("x" * 3000)
    error = refused(path, DocumentLimits(max_bytes=2048))
    assert "limit for an attachment is 2 KB" in error.message and "--max-attachment-mb" in error.hint
    assert DocumentLimits.from_flags(max_attachment_mb=25, max_pdf_pages=200) == DocumentLimits(
        max_bytes=25 * 2**20, max_pdf_pages=200
    )
    assert DocumentLimits().max_bytes == 10 * 2**20 and DocumentLimits().max_pdf_pages == 50


def test_too_many_pages(tmp_path: Path) -> None:
    path = fixtures.many_pages_pdf(tmp_path / "book.pdf", 51)
    error = refused(path)
    assert "has 51 pages; the limit is 50" in error.message and "--max-pdf-pages" in error.hint
    assert extract(path, limits=DocumentLimits(max_pdf_pages=51)).pages == 51


def test_too_much_text(tmp_path: Path) -> None:
    path, _ = fixtures.long_text_file(tmp_path / "long.txt")
    assert "more than 100,000 characters" in refused(path, DocumentLimits(max_chars=100_000)).message
    pdf = fixtures.three_page_pdf(tmp_path / "report.pdf")
    assert "more than 1,500 characters" in refused(pdf, DocumentLimits(max_chars=1500)).message


def test_broken_pdfs(tmp_path: Path) -> None:
    for make in (fixtures.broken_pdf, fixtures.truncated_pdf):
        error = refused(make(tmp_path / f"{make.__name__}.pdf"))
        assert "is damaged or is not a valid PDF" in error.message and "PDF viewer" in error.hint
    (tmp_path / "page.pdf").write_text("<html>not a pdf</html>")
    assert "not a PDF file" in refused(tmp_path / "page.pdf").message


def test_encrypted_pdf(tmp_path: Path) -> None:
    error = refused(fixtures.encrypted_pdf(tmp_path / "locked.pdf"))
    assert "encrypted with a password" in error.message and "unprotected copy" in error.hint


def test_scanned_pdf_has_no_text_layer(tmp_path: Path) -> None:
    error = refused(fixtures.scanned_pdf(tmp_path / "scan.pdf"))
    assert "has no text layer: it is probably scanned" in error.message and "OCR" in error.hint


def test_deeply_nested_json_is_refused_without_recursing(tmp_path: Path) -> None:
    started = time.perf_counter()
    error = refused(fixtures.nested_json(tmp_path / "deep.json", depth=200_000))
    assert time.perf_counter() - started < 2
    assert "more than 64 levels deep, the limit" in error.message and "Flatten" in error.hint
    ok = tmp_path / "ok.json"
    ok.write_text("[" * 64 + "]" * 64)
    assert extract(ok).kind == "json"
    ok.write_text("[" * 65 + "]" * 65)
    assert "more than 64 levels deep" in refused(ok).message


def test_invalid_json(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_text('{"a": [1, 2')
    error = refused(tmp_path / "cut.json")
    assert "is not valid JSON" in error.message and "line 1" in error.message and ".txt" in error.hint


def test_decompression_bomb_is_refused_fast_and_small(bomb: Path) -> None:
    inflated, unpack = 0, zlib.decompressobj()  # what the stream really holds, read 1 MB at a time
    data = bomb.read_bytes()
    stream = data[data.index(b"stream\n") + 7 : data.rindex(b"\nendstream")]
    while stream:
        inflated += len(unpack.decompress(stream, 2**20))
        stream = unpack.unconsumed_tail
    assert bomb.stat().st_size < 4 * 2**20 and inflated >= 400 * 2**20

    tracemalloc.start()
    started = time.perf_counter()
    try:
        error = refused(bomb)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "decompression bomb" in error.message and "16.0 MB" in error.message
    assert elapsed < 3, elapsed
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_millions_of_objects_are_refused_before_parsing(tmp_path: Path) -> None:
    path = fixtures.many_objects_pdf(tmp_path / "objects.pdf", count=150_000)
    started = time.perf_counter()
    error = refused(path)
    assert time.perf_counter() - started < 1
    assert "150,00" in error.message and "the limit is 100,000" in error.message
    small = fixtures.many_objects_pdf(tmp_path / "small.pdf", count=2000)
    assert "2,00" in refused(small, DocumentLimits(max_pdf_objects=1000)).message
    # Within a higher limit the file is parsed, and refused for what it is: a page with no text.
    assert "no text layer" in refused(small, DocumentLimits(max_pdf_objects=5000)).message


def test_extraction_time_limit(tmp_path: Path) -> None:
    error = refused(fixtures.three_page_pdf(tmp_path / "slow.pdf"), DocumentLimits(max_seconds=0))
    assert "took longer than 0 s" in error.message


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda p: p.with_name("gone.txt"), "no longer available"),
        (lambda p: p.with_name("song.mp3"), "not a document type"),
    ],
    ids=["missing", "unknown"],
)
def test_missing_or_unknown(tmp_path: Path, make: Callable[[Path], Path], why: str) -> None:
    path = make(tmp_path / "x")
    if path.suffix == ".mp3":
        path.write_bytes(b"ID3")
    assert why in refused(path).message
