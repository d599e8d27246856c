"""A deterministic stand-in for an embeddings model, and a loopback TEI server that serves it.

The vectors are hashed bags of words in which a few synonyms share a word ("safe" is "vault",
"code" is "combination", "guards" is "keeps"), so a question can be close in meaning to a
passage while sharing none of its words: what BM25 can't find and embeddings can, which tells
the two rankings apart in a test.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import Embeddings

from hfchat.testing.servers import RecordedRequest, Recorder, Response, json_response

DIMENSIONS = 2048

SYNONYMS = {
    "safe": "vault",
    "safes": "vault",
    "code": "combination",
    "codes": "combination",
    "guards": "keeps",
    "guard": "keeps",
    "holds": "keeps",
}
"""What the fake model takes to mean the same thing."""

_IGNORED = frozenset(["a", "an", "and", "is", "it", "of", "the", "to", "which", "who", "what", "s"])
_WORD = re.compile(r"[a-z]+")


def bag_of_words(text: str) -> list[float]:
    """`text`'s embedding: word counts (synonyms merged, a few function words ignored), each
    word in a dimension picked by its hash."""
    vector = [0.0] * DIMENSIONS
    for word in _WORD.findall(text.lower()):
        if word in _IGNORED:
            continue
        digest = hashlib.sha256(SYNONYMS.get(word, word).encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % DIMENSIONS] += 1.0
    return vector


class BagOfWords(Embeddings):
    """LangChain `Embeddings` over `bag_of_words`, counting the texts it embeds."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.texts += texts
        return [bag_of_words(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def tei_answer(req: RecordedRequest) -> Response:
    """What a Text Embeddings Inference server answers to `POST /` ({"inputs": ...}): one
    embedding per input, as a JSON list of lists."""
    body: Any = req.json if isinstance(req.json, dict) else {}
    inputs = body.get("inputs")
    texts: Sequence[Any] = [inputs] if isinstance(inputs, str) else inputs if isinstance(inputs, list) else []
    if not texts or not all(isinstance(t, str) for t in texts):
        return json_response({"error": "inputs must be a string or a list of strings", "error_type": "Validation"}, 422)
    return json_response([bag_of_words(text) for text in texts])


def fake_tei() -> Recorder:
    """A loopback embeddings server answering every POST with `tei_answer` (close it after use)."""
    return Recorder({("POST", "/"): tei_answer})
