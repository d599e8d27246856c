"""Text extracted from attached documents (text, Markdown, CSV, JSON, source code, PDF), within limits.

An attachment is read here, once, on the server: the file is checked against `DocumentLimits`
before and while it is read, and anything that cannot become plain text is refused with an
InputError that names the file, the limit or the reason, and what to do about it. The result, a
`Document`, keeps where each piece of text came from (the PDF page, the line numbers) so that
`hfchat.retrieval` can cite "page 3" or "lines 120–140".

Encoding: text files must be UTF-8 (a UTF-8 byte-order mark is dropped); UTF-16 is read when the
file starts with a UTF-16 byte-order mark. There is no guessing fallback such as Latin-1, which
decodes any bytes at all and would turn a binary file or a wrong guess into confident garbage.
"""

from __future__ import annotations

import codecs
import io
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, cast, get_args

from hfchat.errors import InputError

Kind = Literal["text", "markdown", "csv", "json", "code", "pdf"]

_KINDS: Final[dict[str, Kind]] = {
    ".txt": "text", ".text": "text", ".log": "text", ".rst": "text",
    ".md": "markdown", ".markdown": "markdown",
    ".csv": "csv", ".tsv": "csv",
    ".json": "json",
    ".pdf": "pdf",
}  # fmt: skip

_CODE = (
    ".py .pyi .ipynb .js .mjs .cjs .ts .tsx .jsx .java .kt .kts .scala .groovy .c .h .cc .cpp .cxx .hpp .hh "
    ".cs .fs .go .rs .rb .php .swift .m .mm .r .jl .lua .pl .pm .dart .ex .exs .erl .hs .ml .clj .sql "
    ".sh .bash .zsh .fish .ps1 .bat .html .htm .css .scss .less .vue .svelte .xml .yaml .yml .toml .ini "
    ".cfg .conf .env .properties .gradle .cmake .mk .tex .proto .graphql .tf"
)
CODE_EXTENSIONS: Final = frozenset(_CODE.split())
"""Source code and configuration, read as text (`.ipynb` is JSON, shown as it is on disk)."""

DOCUMENT_EXTENSIONS: Final = tuple(sorted(set(_KINDS) | CODE_EXTENSIONS))
"""Every extension an attachment box should accept for documents (next to images)."""

_NAMED_FILES: Final = frozenset({"dockerfile", "makefile", "license", "readme", "requirements.txt"})


def file_kind(name: str) -> Kind | None:
    """What kind of document a file name says it is, or None when it is not one hfchat reads.

    By name only (the extension, case-insensitive): the content is checked by `extract`."""
    path = Path(name)
    suffix = path.suffix.lower()
    if suffix in _KINDS:
        return _KINDS[suffix]
    if suffix in CODE_EXTENSIONS or path.name.lower() in _NAMED_FILES:
        return "code"
    return None


def is_document(name: str) -> bool:
    """Whether `name` is a document attachment (as opposed to an image, or a type hfchat refuses)."""
    return file_kind(name) is not None


@dataclass(frozen=True)
class DocumentLimits:
    """What one attachment may cost the server. The defaults suit a public demo; a deployment
    raises the first two with --max-attachment-mb and --max-pdf-pages."""

    max_bytes: int = 10 * 2**20
    """The file on disk; checked before anything is read."""
    max_pdf_pages: int = 50
    max_chars: int = 2_000_000
    """Extracted text (about 500k tokens): retrieval indexes it all, per question."""
    max_json_depth: int = 64
    """Nesting of arrays and objects; checked by a scan without recursion, before parsing."""
    max_pdf_objects: int = 100_000
    """A real 50-page PDF has a few thousand; millions make the parser crawl."""
    max_pdf_stream_bytes: int = 16 * 2**20
    """What one compressed PDF stream may inflate to (pypdf stops decompressing there), which
    bounds the memory a decompression bomb can take."""
    max_seconds: float = 20.0
    """Extraction time, checked between PDF pages."""

    @classmethod
    def from_flags(cls, max_attachment_mb: float, max_pdf_pages: int) -> DocumentLimits:
        """The limits from the command line's --max-attachment-mb and --max-pdf-pages."""
        return cls(max_bytes=int(max_attachment_mb * 2**20), max_pdf_pages=max_pdf_pages)


DEFAULT_LIMITS: Final = DocumentLimits()


@dataclass(frozen=True)
class Part:
    """A run of a document's text and where it is: one PDF page, or a whole text file.

    `first_line` is the 1-based number of the part's first line in its page or file, so line
    `first_line + i` of the source is `text.splitlines()[i]`."""

    text: str
    page: int | None = None
    first_line: int = 1


@dataclass(frozen=True)
class Document:
    """An attachment's extracted text: its file name, kind, size on disk, and the text in parts
    (one per PDF page that has text, or one for a text file)."""

    name: str
    kind: Kind
    size: int
    parts: tuple[Part, ...]
    pages: int | None = None
    """A PDF's page count, pages without text included."""

    @property
    def text(self) -> str:
        """The whole text; a PDF's pages separated by blank lines."""
        return "\n\n".join(part.text for part in self.parts)

    @property
    def chars(self) -> int:
        return sum(len(part.text) for part in self.parts)


def extract(path: str | Path, name: str | None = None, limits: DocumentLimits = DEFAULT_LIMITS) -> Document:
    """The text of the attachment at `path`; raises InputError when it can't or mustn't be read.

    `name` is the file name the user gave (Gradio stores uploads under a temporary name that
    keeps it, but the caller knows best); it decides the kind and appears in every message."""
    file = Path(path)
    name = name or file.name
    kind = file_kind(name)
    if kind is None:
        raise InputError(
            f"{name!r} is not a document type hfchat can read.",
            "Attach text, Markdown, CSV, JSON, source code or PDF files (or images, where the model reads them).",
        )
    if not file.is_file():
        raise InputError(f"The attached file {name!r} is no longer available.", "Attach it again and resend.")
    size = file.stat().st_size
    if size > limits.max_bytes:
        raise InputError(
            f"{name!r} is {_mib(size)}; the limit for an attachment is {_mib(limits.max_bytes)}.",
            "Attach a smaller file, or split it and send the part you need"
            " (a deployment raises the limit with --max-attachment-mb).",
        )
    data = file.read_bytes()[: limits.max_bytes + 1]  # the file may have grown since stat()
    if kind == "pdf":
        pages, parts = _pdf_parts(data, name, limits)
        return Document(name, kind, size, parts, pages=pages)
    text = _decode(data, name)
    _check_chars(len(text), name, limits)
    if kind == "json":
        _check_json(text, name, limits)
    return Document(name, kind, size, (Part(text),))


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 1024:.0f} KB"


def _check_chars(chars: int, name: str, limits: DocumentLimits) -> None:
    if chars > limits.max_chars:
        raise InputError(
            f"{name!r} holds more than {limits.max_chars:,} characters of text, the limit for one attachment.",
            "Attach the part of it you need.",
        )


_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
"""C0 controls other than tab, newlines, form feed and escape: text files don't have them."""


def _decode(data: bytes, name: str) -> str:
    """UTF-8 (or UTF-16 with a byte-order mark) text, or InputError: binary, or another encoding."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
        if b"\x00" in data:
            raise _binary(name)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name!r} is not UTF-8 text: byte 0x{data[exc.start]:02X} at position {exc.start:,} is not valid UTF-8"
            " (it may be Latin-1 or Windows-1252, or not text at all).",
            "Save it as UTF-8 (or UTF-16 with a byte-order mark) and attach it again; hfchat does not guess encodings.",
        ) from None
    controls = len(_CONTROL.findall(text, 0, 65536))
    if controls > 0.01 * min(len(text), 65536) or "\x00" in text:
        raise _binary(name)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _binary(name: str) -> InputError:
    return InputError(
        f"{name!r} is a binary file, not text, although its name says {Path(name).suffix or 'text'}.",
        "Attach the text itself (export or save it as plain text), or a PDF.",
    )


def _check_json(text: str, name: str, limits: DocumentLimits) -> None:
    """Refuse JSON nested deeper than the limit (measured without recursion, strings skipped,
    by the import's own `json_depth`), then JSON that does not parse."""
    from hfchat.export import json_depth

    if json_depth(text, limits.max_json_depth) > limits.max_json_depth:
        raise InputError(
            f"{name!r} nests arrays and objects more than {limits.max_json_depth} levels deep, the limit.",
            "Flatten the JSON, or attach the part you need.",
        )
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{name!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            "Fix the JSON, or rename the file to .txt to send it as plain text.",
        ) from None


_DECLARED_SIZE = re.compile(rb"/Size\s+(\d{1,12})")
_PDF_HINT = "Open it in a PDF viewer to check it, save or print it as a new PDF, and attach that."


def _pdf_parts(data: bytes, name: str, limits: DocumentLimits) -> tuple[int, tuple[Part, ...]]:
    """The pages' text of a PDF (pages, parts), bounded by the limits, or InputError."""
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import LimitReachedError, PyPdfError

    if b"%PDF-" not in data[:1024]:
        raise InputError(f"{name!r} is not a PDF file (it does not start with %PDF).", _PDF_HINT)
    # Counted on the raw bytes, before pypdf parses the cross-reference table, which is where
    # millions of objects cost time: what the trailers declare, and what the file spells out.
    declared = max((int(n) for n in _DECLARED_SIZE.findall(data)), default=0)
    if max(declared, data.count(b" obj")) > limits.max_pdf_objects:
        raise _too_many_objects(name, max(declared, data.count(b" obj")), limits)
    stream = limits.max_pdf_stream_bytes
    deadline = time.monotonic() + limits.max_seconds
    parts: list[Part] = []
    chars = 0
    try:
        with apply_configuration(
            zlib_maximum_output_length=stream,
            zlib_maximum_recovery_input_length=min(stream, 2**20),
            lzw_maximum_output_length=stream,
            run_length_maximum_output_length=stream,
            array_based_stream_maximum_output_length=stream,
            brotli_maximum_output_length=stream,
            jbig2_maximum_output_length=stream,
            maximum_declared_stream_length=stream,
            stream_decoding_work_maximum_length=4 * stream,
        ):
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise InputError(
                    f"{name!r} is encrypted with a password.",
                    "Open it with its password, save or print an unprotected copy, and attach that.",
                )
            objects = len(reader.xref_objStm) + sum(len(section) for section in reader.xref.values())
            if objects > limits.max_pdf_objects:
                raise _too_many_objects(name, objects, limits)
            pages = len(reader.pages)
            if pages > limits.max_pdf_pages:
                raise InputError(
                    f"{name!r} has {pages:,} pages; the limit is {limits.max_pdf_pages}.",
                    f"Attach a shorter PDF, or extract the pages you need (at most {limits.max_pdf_pages})"
                    " into a new one (a deployment raises the limit with --max-pdf-pages).",
                )
            for number, page in enumerate(reader.pages, start=1):
                if time.monotonic() > deadline:
                    raise InputError(
                        f"Reading the text of {name!r} took longer than {limits.max_seconds:g} s"
                        f" (stopped at page {number} of {pages}).",
                        "Attach a simpler PDF, fewer pages, or the text itself.",
                    )
                text = _clean(page.extract_text())
                chars += len(text)
                _check_chars(chars, name, limits)
                if text.strip():
                    parts.append(Part(text, page=number))
    except LimitReachedError as exc:
        raise InputError(
            f"{name!r} exceeds a safety limit while it is read: a stream would inflate to more than"
            f" {_mib(stream)} (it may be a decompression bomb), or its structure is too large ({str(exc)[:80]}).",
            "Attach a smaller or simpler PDF, or its text as a .txt file.",
        ) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
        # pypdf reports a damaged file with its own errors and, deeper inside, with plain
        # lookup and type errors on the objects it finds: all of them mean "this PDF is broken".
        raise InputError(
            f"{name!r} is damaged or is not a valid PDF ({type(exc).__name__}: {str(exc)[:120]}).", _PDF_HINT
        ) from None
    if not parts:
        raise InputError(
            f"{name!r} has no text layer: it is probably scanned, or made only of images or drawings.",
            "Run OCR on it first (for example `ocrmypdf in.pdf out.pdf`) and attach the result, or paste the text.",
        )
    return pages, tuple(parts)


def _too_many_objects(name: str, count: int, limits: DocumentLimits) -> InputError:
    return InputError(
        f"{name!r} holds {count:,} PDF objects; the limit is {limits.max_pdf_objects:,}.",
        "Attach a smaller or simpler PDF (printing it to a new PDF often helps), or its text as a .txt file.",
    )


def _clean(text: str) -> str:
    """A page's text with Windows newlines and trailing spaces gone, NULs dropped."""
    lines = text.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


MAX_DOCUMENTS: Final = 10
"""Documents one conversation may hold: every question retrieves from all of them again."""


def describe(document: Document) -> str:
    """What the chip says beside the file name: its size on disk and, for a PDF, its pages."""
    pages = f" · {document.pages} page{'s' if document.pages != 1 else ''}" if document.pages else ""
    return f"{_size(document.size)}{pages}"


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    return f"{size / 1024:.1f} KB" if size < 2**20 else _mib(size)


def to_data(document: Document) -> dict[str, object]:
    """A document as JSON data, kept with the conversation (the file itself is removed after its
    turn): what later questions retrieve from, what a saved conversation and an export hold."""
    return {
        "name": document.name,
        "kind": document.kind,
        "size": document.size,
        "pages": document.pages,
        "parts": [{"text": p.text, "page": p.page, "first_line": p.first_line} for p in document.parts],
    }


def from_data(data: object, limits: DocumentLimits = DEFAULT_LIMITS) -> Document | None:
    """The document `to_data` made, or None for data of any other shape. The data comes back from
    the browser (a saved conversation) or an import, so it is checked, not trusted: a kind hfchat
    reads, parts of text, and no more text than an attachment may extract (`limits.max_chars`)."""
    if not isinstance(data, dict):
        return None
    name, kind, size, pages, parts = (data.get(k) for k in ("name", "kind", "size", "pages", "parts"))
    if not isinstance(name, str) or kind not in _KIND_NAMES or not isinstance(size, int) or not isinstance(parts, list):
        return None
    if pages is not None and not isinstance(pages, int):
        return None
    read: list[Part] = []
    for part in parts:
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            return None
        page, first = part.get("page"), part.get("first_line", 1)
        if (page is not None and not isinstance(page, int)) or not isinstance(first, int) or first < 1:
            return None
        read.append(Part(part["text"], page, first))
    if sum(len(p.text) for p in read) > limits.max_chars:
        return None
    return Document(name[:255], cast(Kind, kind), size, tuple(read), pages=pages)


_KIND_NAMES: Final = frozenset(get_args(Kind))


def _inside(path: str | Path, root: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def check_uploaded(path: str, upload_root: str | Path | None) -> None:
    """Refuse a document path that is not an upload the app received: a `/chat` caller can put
    any path in a message, and reading one would send a server file to the model. With no root
    (a caller of `ChatService` itself, such as a test), any path is the caller's own."""
    if upload_root is not None and not _inside(path, upload_root):
        raise InputError(
            f"The attached file {Path(path).name!r} was not uploaded to this app.",
            "Attach files through the chat box, or with gradio_client.handle_file(path) through the API.",
        )


def remove_uploads(paths: Sequence[str], upload_root: str | Path | None) -> None:
    """Remove a turn's uploaded document files once it has read them: their text lives on in
    the chips' data, and a public deployment keeps no visitor's file longer than its turn.
    Only files inside the app's upload folder are touched (never a path a caller named)."""
    if upload_root is None:
        return
    for path in paths:
        if _inside(path, upload_root):
            Path(path).unlink(missing_ok=True)
