"""Whether attached documents go to the model whole or in parts, and which parts: chunks, BM25, the plan.

A document that fits in the room left in the model's context goes inline, whole, delimited and
labelled with its file name. One that doesn't is split into chunks of about
`DEFAULT_CHUNK_TOKENS` tokens along line boundaries, and the chunks that BM25 ranks best for the
question are sent instead, at most `DEFAULT_MAX_CHUNKS` of them and only as many as fit, each
with its source (file, page or line range) so the reply can show where its facts came from.
A deployment with --embeddings ranks the chunks by embeddings instead (`hfchat.embeddings`, a
`Ranker`); when that ranker cannot (`RankingUnavailable`), BM25 does, and the notice says so.

The figures, and why:
- Chunks of 400 tokens with 60 tokens (whole lines) of overlap: long enough to hold a paragraph
  or a function with its context, short enough that BM25 scores the passage the question is
  about rather than a page where the words are diluted; the overlap keeps a sentence that
  straddles a boundary whole in one of the two chunks.
- At most 6 chunks a question (about 2,400 tokens): room for an answer that draws on a few
  places, and still small next to a 4k context with a 1k reply; fewer when the budget is smaller.
- Only chunks that share a word with the question are sent; when none
  does ("summarize this"), the beginning of the documents is sent, and the notice says so.

Everything here is deterministic: the same documents and question give the same plan (ties
are broken by position in the documents).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from hfchat.documents import Document
from hfchat.errors import InputError

CountTokens = Callable[[str], int]
"""How many tokens a text is, for the model in use (its tokenizer), or an estimate."""

DEFAULT_CHUNK_TOKENS: Final = 400
DEFAULT_OVERLAP_TOKENS: Final = 60
DEFAULT_MAX_CHUNKS: Final = 6

_LETTERS = re.compile(r"[A-Za-z]+")
_SYMBOLS = re.compile(r"[0-9!-/:-@\[-`{-~]")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_BREAKS = re.compile(r"\n| {2,}")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token count that errs high for most text: one token per 5 letters of a
    word (rounded up), one per digit or punctuation mark, two per non-ASCII character, one per
    newline or run of spaces.

    Against SmolLM2's tokenizer (a BPE like most chat models'): English prose x1.6, Python x1.3,
    README Markdown x1.2, CSV x1.1, French x1.1, Japanese x1.2; long German compounds come out
    low (x0.7). Not `hfchat.limits.CHARS_PER_TOKEN` (16): that is the most a token can be,
    which would undercount four times over and inline documents that don't fit. Callers with
    a tokenizer pass its count instead."""
    letters = sum(1 + (len(word) - 1) // 5 for word in _LETTERS.findall(text))
    return letters + len(_SYMBOLS.findall(text)) + 2 * len(_NON_ASCII.findall(text)) + len(_BREAKS.findall(text))


@dataclass(frozen=True)
class Source:
    """Where a passage comes from: the file, the PDF page, the lines (1-based, inclusive).
    `whole`: the whole document was sent."""

    file: str
    page: int | None = None
    first_line: int = 1
    last_line: int = 1
    whole: bool = False
    pages: int | None = None
    """A whole PDF's page count."""

    @property
    def where(self) -> str:
        """ "page 3", "lines 120–140", "line 7", or "" for a whole text file ("pages 1–3" for a whole PDF)."""
        if self.whole:
            return "" if not self.pages else "page 1" if self.pages == 1 else f"pages 1–{self.pages}"
        if self.page is not None:
            return f"page {self.page}"
        if self.first_line == self.last_line:
            return f"line {self.first_line}"
        return f"lines {self.first_line}–{self.last_line}"

    def label(self) -> str:
        """The line of a "Sources" block: "report.pdf, page 3", "notes.txt, lines 120–140"."""
        return f"{self.file}, {self.where}" if self.where else self.file


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, the unit BM25 ranks. `position` orders all chunks of the
    documents given to `chunk_documents` (document by document, top to bottom)."""

    text: str
    source: Source
    tokens: int
    position: int
    document: int = 0
    """Index of the document in the list it was chunked from."""
    part: int = 0
    """Index of the document's part (a PDF page with text) the chunk lies in."""
    cut: bool = False
    """A piece of a line too long for one chunk."""


def chunk_document(
    document: Document,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count_tokens: CountTokens = estimate_tokens,
    *,
    index: int = 0,
    start: int = 0,
) -> list[Chunk]:
    """`document` in chunks of at most about `chunk_tokens`, made of whole lines, consecutive
    chunks sharing up to `overlap_tokens` of lines; a chunk never spans two PDF pages.

    A single line longer than a chunk (minified JSON, a paragraph without line breaks) is cut
    at spaces where there are some. A CSV chunk repeats the header row, so its columns keep
    their names. `index` and `start` number the document and the first chunk (`chunk_documents`)."""
    if chunk_tokens < 1 or not 0 <= overlap_tokens < chunk_tokens:
        raise ValueError(f"need 0 <= overlap_tokens < chunk_tokens, got {overlap_tokens} and {chunk_tokens}")
    chunks: list[Chunk] = []
    for part_index, part in enumerate(document.parts):
        for first, last, text, cut in _split_lines(part.text, document.kind == "csv" and part.first_line == 1,
                                                   chunk_tokens, overlap_tokens, count_tokens):  # fmt: skip
            source = Source(document.name, part.page, part.first_line + first, part.first_line + last)
            chunks.append(Chunk(text, source, count_tokens(text), start + len(chunks), index, part_index, cut))
    return chunks


def _split_lines(
    text: str, csv: bool, chunk_tokens: int, overlap_tokens: int, count_tokens: CountTokens
) -> list[tuple[int, int, str, bool]]:
    """(first line, last line, text, cut) of each chunk of `text`, lines numbered from 0."""
    lines = text.split("\n")
    costs = [count_tokens(line) + 1 for line in lines]  # + its newline
    header = lines[0] if csv else ""
    room = chunk_tokens - (costs[0] if header else 0)
    if room < max(1, chunk_tokens // 2):
        header, room = "", chunk_tokens  # a header that takes half a chunk isn't worth repeating
    out: list[tuple[int, int, str, bool]] = []

    def emit(first: int, last: int, body: str, cut: bool = False) -> None:
        if body.strip():
            out.append((first, last, f"{header}\n{body}" if header and first > 0 else body, cut))

    i = 0
    while i < len(lines):
        if costs[i] > room:
            for piece in _pieces(lines[i], costs[i], room):
                emit(i, i, piece, cut=True)
            i += 1
            continue
        j, total = i, 0
        while j < len(lines) and costs[j] <= room and total + costs[j] <= room:
            total += costs[j]
            j += 1
        emit(i, j - 1, "\n".join(lines[i:j]))
        if j >= len(lines):
            break
        back, shared = j, 0  # the next chunk starts with the last lines of this one
        while back - 1 > i and shared + costs[back - 1] <= overlap_tokens:
            back -= 1
            shared += costs[back]
        i = back
    return out


def _pieces(line: str, cost: int, room: int) -> list[str]:
    """A line too long for one chunk, in pieces of about `room` tokens, cut at a space near
    each boundary when there is one in its last fifth."""
    count = -(-cost // room)
    size = -(-len(line) // count)
    pieces, at = [], 0
    while at < len(line):
        end = min(len(line), at + size)
        if end < len(line):
            space = line.rfind(" ", at + size * 4 // 5, end)
            end = space + 1 if space > at else end
        pieces.append(line[at:end])
        at = end
    return pieces


def chunk_documents(
    documents: Sequence[Document],
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    count_tokens: CountTokens = estimate_tokens,
) -> list[Chunk]:
    """The chunks of all `documents`, numbered in one sequence."""
    chunks: list[Chunk] = []
    for index, document in enumerate(documents):
        chunks += chunk_document(document, chunk_tokens, overlap_tokens, count_tokens, index=index, start=len(chunks))
    return chunks


_WORD = re.compile(r"\w+")
_STOPWORD_LIST = (
    "a an and are as at be but by can could did do does for from had has have how i if in into is it its "
    "me my of on or our please say says said should so tell than that the their them then there these they "
    "this those to us was we were what when where which who whom whose why will with would you your"
)
_STOPWORDS: Final = frozenset(_STOPWORD_LIST.split())
"""Question words BM25 should not match on: "what is the ..." says nothing about where the answer is."""


def terms(text: str) -> list[str]:
    """BM25's view of a text: lower-case words (letters, digits, underscore), stopwords dropped."""
    return [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]


@dataclass(frozen=True)
class Scored:
    chunk: Chunk
    score: float


Ranker = Callable[[str, Sequence[Chunk]], list[Scored]]
"""Ranks chunks for a question, best first (ties by position); the chunks it leaves out are not
candidates. BM25 (`_ranked`) is the default; `hfchat.embeddings.EmbeddingRanker` ranks them all."""


class RankingUnavailable(Exception):
    """A ranker could not rank this time (its server failed, too many chunks to embed): `plan`
    ranks by keywords instead, and its notice ends with this message, which says why."""


def best_chunks(question: str, chunks: Sequence[Chunk], k: int = DEFAULT_MAX_CHUNKS) -> list[Scored]:
    """The `k` chunks BM25 scores highest for `question`, best first; only chunks that share at
    least one of its words. Ties go to the earlier chunk.

    BM25+ (rank-bm25's `BM25Plus`, its defaults): Okapi's idf turns negative for a word in more
    than half the chunks, so a short document whose every chunk names the topic matched nothing."""
    return _ranked(question, chunks)[:k]


def _ranked(question: str, chunks: Sequence[Chunk]) -> list[Scored]:
    from rank_bm25 import BM25Plus

    query = terms(question)
    corpus = [terms(chunk.text) for chunk in chunks]
    if not query or not any(corpus):
        return []
    scores = BM25Plus(corpus).get_scores(query)
    wanted = set(query)
    matching = [n for n in range(len(chunks)) if wanted.intersection(corpus[n])]
    ranked = sorted(matching, key=lambda n: (-scores[n], chunks[n].position))
    return [Scored(chunks[n], float(scores[n])) for n in ranked]


Mode = Literal["none", "inline", "retrieved"]


@dataclass(frozen=True)
class Plan:
    """What to send of the documents with one question.

    `context` goes into the user's message before the question (it is "" for no documents);
    `tokens` is its count; `sources` are what the reply's "Sources" block lists; `notice`
    tells the user when the documents were not sent whole ("" when they were)."""

    mode: Mode
    context: str = ""
    tokens: int = 0
    sources: tuple[Source, ...] = ()
    notice: str = ""
    chunks: tuple[Scored, ...] = field(default=(), repr=False)
    """The chunks chosen (retrieved mode), best first, with their scores."""

    def source_labels(self) -> list[str]:
        """The "Sources" block's lines: each passage sent, or each document sent whole."""
        return [source.label() + (" (sent whole)" if source.whole else "") for source in self.sources]


def plan(
    documents: Sequence[Document],
    question: str,
    budget_tokens: int,
    count_tokens: CountTokens = estimate_tokens,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int = DEFAULT_OVERLAP_TOKENS,
    max_chunks: int = DEFAULT_MAX_CHUNKS,
    ranker: Ranker | None = None,
) -> Plan:
    """Put `documents` inline when all of them fit in `budget_tokens`, otherwise the best chunks for `question`.

    `budget_tokens` is the room the caller leaves for documents: the context length minus the
    system prompt, the history, the question and max_new_tokens (and a margin when
    `count_tokens` is an estimate). `ranker` ranks the chunks (None: BM25); it is called only
    when the documents don't fit, and when it raises RankingUnavailable BM25 ranks them and the
    notice says why. Raises InputError when not even one chunk fits."""
    if not documents:
        return Plan("none")
    whole = "\n\n".join(_block(document.name, _whole_text(document)) for document in documents)
    tokens = count_tokens(whole)
    if tokens <= budget_tokens:
        sources = tuple(Source(d.name, whole=True, pages=d.pages) for d in documents)
        return Plan("inline", whole, tokens, sources)
    chunks = chunk_documents(documents, chunk_tokens, overlap_tokens, count_tokens)
    ranked, fallback = _rank(question, chunks, ranker)
    matched = bool(ranked)
    candidates = ranked or [Scored(chunk, 0.0) for chunk in chunks]  # no match: from the beginning
    chosen: list[Scored] = []
    used = 0
    for candidate in candidates:
        if len(chosen) == max_chunks:
            break
        cost = candidate.chunk.tokens + _BLOCK_TOKENS
        if used + cost <= budget_tokens:
            chosen.append(candidate)
            used += cost
    if not chosen:
        cost = candidates[0].chunk.tokens + _BLOCK_TOKENS
        raise InputError(
            f"The model's context has room for {max(budget_tokens, 0):,} tokens of documents, too few for"
            f" any part of {_names(documents)} (the {'best' if matched else 'first'} part takes about {cost:,}).",
            "Lower max_new_tokens, clear the conversation, or use a model with a longer context.",
        )
    passages = _merge(chosen, documents)
    context = "\n\n".join(_block(source.file, text, source.where) for source, text in passages)
    return Plan(
        "retrieved",
        context,
        count_tokens(context),
        tuple(source for source, _ in passages),
        " ".join(filter(None, [_notice(documents, tokens, budget_tokens, len(passages), matched), fallback])),
        tuple(chosen),
    )


def _rank(question: str, chunks: Sequence[Chunk], ranker: Ranker | None) -> tuple[list[Scored], str]:
    """The chunks ranked by `ranker`, or by BM25 when there is none or it is unavailable this
    time; with why it was unavailable ("" when it wasn't)."""
    if ranker is None:
        return _ranked(question, chunks), ""
    try:
        return ranker(question, chunks), ""
    except RankingUnavailable as exc:
        return _ranked(question, chunks), str(exc)


_BLOCK_TOKENS: Final = 24
"""What one `<document ...>` wrapper costs, counted generously."""


def _block(name: str, text: str, where: str = "") -> str:
    """A document or passage, delimited and labelled; a closing tag inside the text is defused."""
    label = re.sub(r'["<>\n\r]', "_", name)
    part = f' part="{where}"' if where else ""
    body = re.sub(r"</(document)", r"<\\/\1", text, flags=re.I)
    return f'<document name="{label}"{part}>\n{body}\n</document>'


def _whole_text(document: Document) -> str:
    """A document's text, PDF pages marked so the model can tell them apart (and cite them)."""
    if document.kind != "pdf":
        return document.text
    return "\n\n".join(f"[page {part.page}]\n{part.text}" for part in document.parts)


def _merge(chosen: Sequence[Scored], documents: Sequence[Document]) -> list[tuple[Source, str]]:
    """The chosen chunks as passages in document order; chunks of one page or file that overlap
    or touch become one passage, so no line is sent twice (pieces of a cut line stay apart)."""
    groups: list[list[Chunk]] = []
    for chunk in sorted((s.chunk for s in chosen), key=lambda c: c.position):
        previous = groups[-1][-1] if groups else None
        if (
            previous is not None
            and (previous.document, previous.part) == (chunk.document, chunk.part)
            and not (previous.cut or chunk.cut)
            and chunk.source.first_line <= max(c.source.last_line for c in groups[-1]) + 1
        ):
            groups[-1].append(chunk)
        else:
            groups.append([chunk])
    passages = []
    for group in groups:
        if len(group) == 1:
            passages.append((group[0].source, group[0].text))
            continue
        document = documents[group[0].document]
        part = document.parts[group[0].part]
        first, last = group[0].source.first_line, max(c.source.last_line for c in group)
        lines = part.text.split("\n")
        text = "\n".join(lines[first - part.first_line : last - part.first_line + 1])
        if document.kind == "csv" and first > part.first_line:
            text = f"{lines[0]}\n{text}"
        passages.append((Source(document.name, part.page, first, last), text))
    return passages


def _names(documents: Sequence[Document]) -> str:
    names = [repr(d.name) for d in documents]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _notice(documents: Sequence[Document], tokens: int, budget: int, parts: int, matched: bool) -> str:
    what = f"{parts} part{'s' if parts != 1 else ''}"
    chosen = "most relevant to the question" if matched else "from the beginning (no part matched the question's words)"
    return (
        f"{_names(documents)} {'is' if len(documents) == 1 else 'are'} too long to send whole"
        f" (about {tokens:,} tokens; {max(budget, 0):,} fit): sending the {what} {chosen}."
    )
