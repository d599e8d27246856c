"""Documents that tests build for themselves: PDFs written here byte by byte, long text files,
CSV, JSON, and the bad files an attachment check must refuse.

Nothing is checked in: a minimal pure-Python PDF writer (`pdf_bytes`) makes text pages with
the standard Helvetica font, pages with no text layer, encrypted and broken files, and a
decompression bomb, so a test states what is inside the file it reads.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE_SECRET = "The launch code for Operation Bluebird is TANGERINE-4471."
"""The sentence on page 3 of `three_page_pdf` (and nowhere else)."""

LINE_SECRET = "The vault combination is 7-3-9-1, and only Marguerite Okonkwo keeps it."
"""The sentence on one line of `long_text_file` (and nowhere else)."""

_VOCABULARY = (
    "river stone garden window morning paper market silver orange yellow harbor forest letter "
    "station bridge winter summer candle mirror kitchen pocket ladder basket engine signal planet "
    "island meadow thunder pencil button blanket lantern cotton marble copper velvet pepper ginger "
    "walnut maple cedar willow falcon otter badger heron sparrow beetle turtle salmon anchor compass "
    "chapter whisper journey pattern season circle valley canyon glacier desert prairie lagoon "
    "quietly slowly gently often rarely almost always never carefully brightly softly loudly"
)
_WORDS = _VOCABULARY.split()
"""The long file's vocabulary: none of the secret's words (vault, combination, Marguerite...)."""


@dataclass(frozen=True)
class Page:
    """One PDF page: lines of text drawn in Helvetica, or no text at all (`image`, `drawing`)."""

    lines: Sequence[str] = ()
    image: bool = False
    """Paint a small grey image XObject (what a scanner makes: pixels, no text)."""
    drawing: bool = False
    """Paint filled rectangles (vector graphics, no text)."""


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (Latin-1 here): parentheses and backslashes escaped."""
    raw = text.encode("latin-1", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _content(page: Page) -> bytes:
    ops: list[bytes] = []
    if page.lines:
        ops.append(b"BT /F1 11 Tf 14 TL 72 740 Td")
        ops.extend(_pdf_string(line) + b" Tj T*" for line in page.lines)
        ops.append(b"ET")
    if page.drawing:
        ops.append(b"0.2 0.4 0.8 rg 100 500 200 120 re f 0.8 0.2 0.2 rg 150 300 80 80 re f")
    if page.image:
        ops.append(b"q 200 0 0 200 100 400 cm /Im1 Do Q")
    return b"\n".join(ops) + b"\n"


def pdf_bytes(pages: Iterable[Page | Sequence[str]], *, compress: bool = False) -> bytes:
    """A complete PDF file: a catalog, a page tree, Helvetica, and one content stream per page.

    A page given as a list of strings is a text page, one line each. `compress` deflates the
    content streams (FlateDecode), as most real PDFs do."""
    specs = [page if isinstance(page, Page) else Page(lines=tuple(page)) for page in pages]
    objects: list[bytes] = []  # object n is objects[n - 1]

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in below, once the page tree's number is known
    tree = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    image = add(b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceGray "
                b"/BitsPerComponent 8 /Length 4 >>\nstream\n\x20\x80\xc0\xff\nendstream")  # fmt: skip
    kids = []
    for spec in specs:
        data = _content(spec)
        if compress:
            data = zlib.compress(data)
        filters = b" /Filter /FlateDecode" if compress else b""
        stream = add(b"<< /Length %d%s >>\nstream\n" % (len(data), filters) + data + b"\nendstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> /XObject << /Im1 %d 0 R >> >> >>" % (tree, stream, font, image)
            )
        )
    objects[catalog - 1] = b"<< /Type /Catalog /Pages %d 0 R >>" % tree
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    objects[tree - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids))
    return _assemble(objects, catalog)


def _assemble(objects: Sequence[bytes], root: int) -> bytes:
    """Header, numbered objects, a cross-reference table with their byte offsets, trailer."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def filler_lines(count: int, seed: int, words_per_line: tuple[int, int] = (8, 14)) -> list[str]:
    """`count` lines of deterministic word salad from `_WORDS`."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(*words_per_line))) + "." for _ in range(count)]


def three_page_pdf(path: Path, *, compress: bool = True) -> Path:
    """A 3-page PDF; `PAGE_SECRET` is on page 3 only; each page starts "Page N of 3"."""
    pages = [[f"Page {n} of 3", *filler_lines(12, seed=n)] for n in (1, 2, 3)]
    pages[2].insert(6, PAGE_SECRET)
    path.write_bytes(pdf_bytes(pages, compress=compress))
    return path


def scanned_pdf(path: Path) -> Path:
    """Two pages with no text layer: an image (a scan) and vector drawing."""
    path.write_bytes(pdf_bytes([Page(image=True), Page(drawing=True)]))
    return path


def broken_pdf(path: Path) -> Path:
    """Starts like a PDF, then is not one: no objects, no cross-reference table."""
    path.write_bytes(b"%PDF-1.7\n" + bytes(random.Random(5).randrange(256) for _ in range(2000)))
    return path


def truncated_pdf(path: Path) -> Path:
    """A real PDF cut off before its page objects: what an interrupted download leaves."""
    whole = pdf_bytes([["Page 1", *filler_lines(20, seed=9)]])
    path.write_bytes(whole[: whole.index(b"3 0 obj")])
    return path


def encrypted_pdf(path: Path, password: str = "open-sesame") -> Path:
    """The 3-page PDF encrypted with a user password (RC4-128: pypdf writes it in pure Python)."""
    from pypdf import PdfReader, PdfWriter

    plain = three_page_pdf(path.with_suffix(".plain.pdf"))
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    with path.open("wb") as out:
        writer.write(out)
    plain.unlink()
    return path


def bomb_pdf(path: Path, inflated_mb: int = 400) -> Path:
    """A one-page PDF of a few MB whose content stream inflates to `inflated_mb` MiB.

    Compressed piece by piece, so building it never holds the inflated stream in memory."""
    piece = b"BT /F1 11 Tf 72 700 Td (AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA) Tj ET\n" * 16384  # ~1 MiB
    packer = zlib.compressobj(1)  # the fastest level: about 140:1 on this, a few MB
    data = bytearray()
    for _ in range(inflated_mb * 2**20 // len(piece)):
        data += packer.compress(piece)
    data += packer.flush()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(data) + bytes(data) + b"\nendstream",
    ]
    path.write_bytes(_assemble(objects, 1))
    return path


def many_objects_pdf(path: Path, count: int = 300_000) -> Path:
    """A one-page PDF padded with `count` tiny unused objects (a few MB)."""
    pdf = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << >> >>",
    ]
    pdf.extend(b"0" for _ in range(count))
    path.write_bytes(_assemble(pdf, 1))
    return path


def many_pages_pdf(path: Path, pages: int) -> Path:
    """`pages` short text pages."""
    path.write_bytes(pdf_bytes([[f"This is page {n}."] for n in range(1, pages + 1)]))
    return path


def long_text_file(path: Path, lines: int = 3600, secret_line: int = 2417) -> tuple[Path, int]:
    """About 50k tokens of prose (14 a line with SmolLM2's tokenizer), with `LINE_SECRET` on line
    `secret_line` (1-based). Returns the path and that line number."""
    text = filler_lines(lines, seed=17)
    text[secret_line - 1] = LINE_SECRET
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path, secret_line


def csv_file(path: Path) -> Path:
    """A small price list with a header row."""
    rows = ["sku,name,price_eur,stock"] + [f"A{n:03d},{word} widget,{n * 1.25:.2f},{n * 7 % 50}"
                                          for n, word in enumerate(_WORDS[:40], start=1)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def nested_json(path: Path, depth: int = 100_000) -> Path:
    """`[[[...]]]` nested `depth` deep: small on disk, a recursion bomb for a naive parser."""
    path.write_text("[" * depth + "]" * depth, encoding="utf-8")
    return path


def binary_as_text(path: Path) -> Path:
    """Bytes of a compiled program (NULs, control bytes) under a text file's name."""
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    return path


def latin1_text(path: Path) -> Path:
    """Text saved in Latin-1, not UTF-8: the é of café is the single byte 0xE9."""
    path.write_bytes("Le café est fermé le lundi.\n".encode("latin-1"))
    return path
