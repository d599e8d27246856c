"""Retrieval with a ranker other than BM25: `plan` follows the ranker within its budget and chunk
rules and falls back to BM25 when the ranker can't rank; `EmbeddingRanker` ranks by cosine
similarity, caches chunk embeddings, and turns every failure into a fallback notice."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from langchain_core.embeddings import Embeddings

from hfchat.documents import Document, extract
from hfchat.embeddings import EmbeddingRanker
from hfchat.retrieval import Chunk, RankingUnavailable, Scored, Source, chunk_documents, plan
from hfchat.testing import documents as fixtures
from hfchat.testing.documents import LINE_SECRET
from hfchat.testing.embeddings import BagOfWords

SYNONYM_QUESTION = "Which person guards the safe code?"
"""Close in meaning to `LINE_SECRET`, sharing none of its words (nor the filler's): BM25 finds nothing."""


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory) -> tuple[Document, int]:
    path, line = fixtures.long_text_file(tmp_path_factory.mktemp("long") / "long.txt")
    return extract(path), line


def last_first(question: str, chunks: Sequence[Chunk]) -> list[Scored]:
    """A deterministic ranker BM25 would never agree with: the documents' end first."""
    return [Scored(chunk, float(chunk.position)) for chunk in sorted(chunks, key=lambda c: -c.position)]


def test_plan_sends_what_the_ranker_ranks_best_within_max_chunks(long: tuple[Document, int]) -> None:
    document, _ = long
    chunks = chunk_documents([document])
    planned = plan([document], "What is the vault combination?", 4000, ranker=last_first, max_chunks=3)
    assert [s.chunk.position for s in planned.chunks] == [len(chunks) - 1, len(chunks) - 2, len(chunks) - 3]
    assert LINE_SECRET not in planned.context, "the ranker's choice, not BM25's"
    assert "the 1 part most relevant to the question" in planned.notice, planned.notice  # three touching: one


def test_plan_keeps_its_budget_with_a_ranker(long: tuple[Document, int]) -> None:
    document, _ = long
    planned = plan([document], "anything", 900, ranker=last_first)
    assert 0 < len(planned.chunks) < 6 and planned.tokens <= 900, (len(planned.chunks), planned.tokens)
    assert planned.chunks[0].chunk.position == max(c.position for c in chunk_documents([document]))


def test_a_ranker_that_is_unavailable_leaves_bm25_to_rank_and_the_notice_says_why(long: tuple[Document, int]) -> None:
    document, _ = long

    def down(question: str, chunks: Sequence[Chunk]) -> list[Scored]:
        raise RankingUnavailable("Embeddings unavailable (the server can't be reached): ranked by keywords instead.")

    planned = plan([document], "Who keeps the vault combination?", 4000, ranker=down)
    assert LINE_SECRET in planned.context, "BM25 found the passage"
    assert planned.notice.endswith(
        "most relevant to the question. Embeddings unavailable (the server can't be reached): ranked by keywords"
        " instead."
    ), planned.notice
    assert "\n" not in planned.notice


def test_embeddings_find_a_passage_by_meaning_where_bm25_finds_none(long: tuple[Document, int]) -> None:
    document, line = long
    by_keywords = plan([document], SYNONYM_QUESTION, 4000)
    assert LINE_SECRET not in by_keywords.context and "from the beginning" in by_keywords.notice
    ranker = EmbeddingRanker("http://embeddings.invalid", connect=lambda *_: BagOfWords())
    planned = plan([document], SYNONYM_QUESTION, 4000, ranker=ranker.for_token(None))
    best = planned.chunks[0].chunk
    assert LINE_SECRET in best.text and best.source.first_line <= line <= best.source.last_line
    assert LINE_SECRET in planned.context and "most relevant to the question" in planned.notice
    scores = [s.score for s in planned.chunks]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1] >= 0, scores


def test_each_chunk_is_embedded_once_across_two_questions(long: tuple[Document, int]) -> None:
    document, _ = long
    model = BagOfWords()
    ranker = EmbeddingRanker("http://embeddings.invalid", batch_size=50, connect=lambda *_: model)
    chunks = chunk_documents([document])
    first = ranker.rank(SYNONYM_QUESTION, chunks)
    assert len(first) == len(chunks), "every chunk is a candidate"
    assert len(model.texts) == 1 + len(chunks) and ranker.cache.embedded == len(chunks)
    ranker.rank("Who holds the safe?", chunks)
    assert model.texts[len(chunks) + 1 :] == ["Who holds the safe?"], "the follow-up embeds only the question"
    other = EmbeddingRanker("http://another-model.invalid", cache=ranker.cache, connect=lambda *_: model)
    other.rank("Who holds the safe?", chunks[:3])
    assert len(model.texts) == len(chunks) + 2 + 1 + 3, "another model's embeddings are its own"


def test_more_chunks_than_the_cap_fall_back_without_embedding_any(long: tuple[Document, int]) -> None:
    document, _ = long
    model = BagOfWords()
    ranker = EmbeddingRanker("http://embeddings.invalid", max_chunks=10, connect=lambda *_: model)
    planned = plan([document], "Who keeps the vault combination?", 4000, ranker=ranker.for_token(None))
    assert model.texts == [] and LINE_SECRET in planned.context
    assert "Embeddings skipped (" in planned.notice and "more than the 10 embedded per question" in planned.notice


class Odd(Embeddings):
    """Answers `vectors` whatever it is asked: the shapes a broken server might send."""

    def __init__(self, vectors: list[list[float]]) -> None:
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.vectors

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[0]


@pytest.mark.parametrize("vectors", [[], [[]], [[1.0, 2.0], [3.0]], [[float("nan"), 1.0]], [[1.0, 2.0]] * 3], ids=str)
def test_an_answer_of_the_wrong_shape_is_unavailable_not_an_error(vectors: list[list[float]]) -> None:
    chunks = [Chunk("some text", Source("a.txt"), 3, 0), Chunk("more text", Source("a.txt"), 3, 1)]
    ranker = EmbeddingRanker("http://embeddings.invalid", connect=lambda *_: Odd(vectors))
    with pytest.raises(RankingUnavailable, match=r"^Embeddings unavailable \(.+\): ranked by keywords instead\.$"):
        ranker.rank("question", chunks)


def test_stop_ends_the_embedding_between_batches_and_keeps_what_was_done(long: tuple[Document, int]) -> None:
    document, _ = long
    stop = threading.Event()

    class StopsAfterOneBatch(BagOfWords):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            if len(self.texts) > 1:
                stop.set()  # Stop pressed while the first batch of chunks was embedded
            return super().embed_documents(texts)

    model = StopsAfterOneBatch()
    ranker = EmbeddingRanker("http://embeddings.invalid", batch_size=10, connect=lambda *_: model)
    with pytest.raises(RankingUnavailable, match=r"^Embeddings stopped: ranked by keywords instead\.$"):
        ranker.for_token(None, stop)("question", chunk_documents([document]))
    assert len(model.texts) == 1 + 10 + 10 and ranker.cache.embedded == 20
