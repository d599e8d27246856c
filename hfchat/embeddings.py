"""Ranking document chunks by embeddings (--embeddings), instead of BM25's keywords.

The operator points --embeddings at a Text Embeddings Inference server (any URL that answers
huggingface_hub's `InferenceClient.feature_extraction`), or names a Hub repo ID that Inference
Providers serve for feature-extraction. LangChain's `HuggingFaceEndpointEmbeddings` makes the
calls; `EmbeddingRanker` ranks every chunk by the cosine similarity of its embedding and the
question's, best first, ties by position, and `hfchat.retrieval.plan` keeps its own budget and
chunk rules over that ranking.

The rules, and why:
- **Tokens.** A URL gets no credentials at all: huggingface_hub replaces a missing key with the
  machine's own token (`get_token()`), so the client is given `net.NO_CREDENTIALS`, which
  `hfchat.net`'s request hook removes. A repo ID goes to Inference Providers (Hugging Face's
  router) with the token paying for the visitor (`resolve_token`'s order).
- **Bounds.** At most `batch_size` texts a request and `BYTES_PER_TEXT` bytes of answer per text;
  all the calls of one question within `timeout_s` (the thread's `hfchat.deadline`, which every
  socket read honours); at most `max_chunks` chunks embedded for one question, past which BM25
  ranks (a 2 MB document is about 2,000 chunks).
- **Cache.** Chunk embeddings are kept (`VectorCache`, keyed by a hash of the model and the
  text, bounded), so a follow-up question about the same document embeds only the question,
  and a question whose embeddings ran out of time leaves the batches done for the next one.
- **Failure.** A server that refuses, times out, answers 5xx or an unexpected shape makes the
  turn fall back to BM25 with a one-line notice (`RankingUnavailable`); it never fails the turn.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import httpx
import numpy as np
from huggingface_hub.errors import HfHubHTTPError
from langchain_core.embeddings import Embeddings

from hfchat import net
from hfchat.deadline import io_budget, io_deadline
from hfchat.errors import RedirectRefusedError, ReplyTooLargeError
from hfchat.retrieval import Chunk, Ranker, RankingUnavailable, Scored

if TYPE_CHECKING:
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE: Final = 32
"""Texts per request: TEI's own default `--max-client-batch-size`."""

DEFAULT_TIMEOUT_S: Final = 20.0
"""All the embedding calls of one question: a CPU TEI embeds a few hundred 400-token chunks in
that time; what it did not finish is cached for the next question."""

MAX_EMBEDDED_CHUNKS: Final = 2000
"""Chunks embedded for one question at most (the largest document, 2M characters, is about 2,000)."""

CACHE_VECTORS: Final = 20_000
"""Chunk embeddings kept (about 80 MB at 1,024 dimensions): ten documents of the largest size."""

BYTES_PER_TEXT: Final = 256 * 2**10
"""Answer bytes allowed per text embedded: 8,192 floats of JSON with room to spare."""


def is_url(target: str) -> bool:
    """An embeddings server's address, rather than a Hub repo ID."""
    return target.lower().startswith(("http://", "https://"))


def embeddings_client(target: str, hf_token: str | None, timeout_s: float) -> HuggingFaceEndpointEmbeddings:
    """LangChain's `HuggingFaceEndpointEmbeddings` for `target`.

    For a URL, its client is built here with an explicit no-token: langchain-huggingface 1.x
    refuses a URL as `model`, and the client it builds would carry HF_TOKEN or the machine's
    login (huggingface_hub's `get_token()` fallback) to a host that is not Hugging Face's.
    `model_construct` skips that validator; `embed_documents` needs only `client`."""
    from huggingface_hub import InferenceClient
    from langchain_huggingface import HuggingFaceEndpointEmbeddings

    task, cut = "feature-extraction", {"truncate": True}  # TEI refuses an over-long input unless told to cut it
    if is_url(target):
        net.register_endpoint(target, None)  # no key may reach it; let through offline mode
        client = InferenceClient(model=target, token=net.NO_CREDENTIALS, timeout=timeout_s)
        return HuggingFaceEndpointEmbeddings.model_construct(client=client, model=target, task=task, model_kwargs=cut)
    net.install()
    token = hf_token or net.NO_CREDENTIALS  # never None: that would fall back to the machine's token
    return HuggingFaceEndpointEmbeddings(model=target, huggingfacehub_api_token=token, task=task, model_kwargs=cut)


class VectorCache:
    """Embeddings by key, least recently used dropped past `size`; thread-safe."""

    def __init__(self, size: int = CACHE_VECTORS) -> None:
        self.size = size
        self._items: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.embedded = 0
        """Texts embedded into the cache so far (what the tests count)."""

    def get(self, key: str) -> np.ndarray[Any, Any] | None:
        with self._lock:
            vector = self._items.get(key)
            if vector is not None:
                self._items.move_to_end(key)
            return vector

    def put(self, key: str, vector: np.ndarray[Any, Any]) -> None:
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            self.embedded += 1
            while len(self._items) > self.size:
                self._items.popitem(last=False)


@dataclass
class EmbeddingRanker:
    """Ranks chunks by embeddings from `target` (a URL or a Hub repo ID), within the bounds above."""

    target: str
    batch_size: int = DEFAULT_BATCH_SIZE
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_chunks: int = MAX_EMBEDDED_CHUNKS
    cache: VectorCache = field(default_factory=VectorCache, repr=False)
    connect: Callable[[str, str | None, float], Embeddings] = field(default=embeddings_client, repr=False)
    """Builds the LangChain embeddings of a turn: (target, token, timeout) -> `Embeddings`."""

    def for_token(self, hf_token: str | None, cancel: threading.Event | None = None) -> Ranker:
        """The ranker of one turn; `hf_token` pays for a repo ID's calls (a URL never gets it);
        `cancel` (the turn's Stop) ends the embedding between batches."""
        return functools.partial(self.rank, hf_token=hf_token, cancel=cancel)

    def rank(
        self,
        question: str,
        chunks: Sequence[Chunk],
        hf_token: str | None = None,
        cancel: threading.Event | None = None,
    ) -> list[Scored]:
        """Every chunk, by cosine similarity to `question`, best first, ties by position.
        Raises RankingUnavailable (BM25 then ranks) when the embeddings can't be had, or
        when `cancel` is set before they all are (the batches done stay cached)."""
        if not chunks:
            return []
        keys = [self._key(chunk.text) for chunk in chunks]
        vectors = {key: vector for key in set(keys) if (vector := self.cache.get(key)) is not None}
        missing = list(dict.fromkeys(k for k in keys if k not in vectors))
        if len(missing) > self.max_chunks:
            raise RankingUnavailable(
                f"Embeddings skipped ({len(missing):,} parts, more than the {self.max_chunks:,} embedded per"
                " question): ranked by keywords instead."
            )
        texts = {key: chunk.text for key, chunk in zip(keys, chunks, strict=True)}
        if not is_url(self.target) and not net.hub_reachable():
            raise _unavailable("the Hugging Face Hub can't be reached")
        client = self.connect(self.target, hf_token, self.timeout_s)
        with io_deadline(time.monotonic() + self.timeout_s):
            query = self._embed(client, [question])[0]
            for start in range(0, len(missing), self.batch_size):
                if cancel is not None and cancel.is_set():
                    raise RankingUnavailable("Embeddings stopped: ranked by keywords instead.")
                batch = missing[start : start + self.batch_size]
                for key, vector in zip(batch, self._embed(client, [texts[k] for k in batch]), strict=True):
                    self.cache.put(key, vector)
                    vectors[key] = vector
        sizes = {query.shape[0], *(vector.shape[0] for vector in vectors.values())}
        if len(sizes) > 1:  # the server's model changed under the same URL, or an odd answer
            raise _unavailable(f"embeddings of {' and '.join(map(str, sorted(sizes)))} dimensions")
        matrix = np.stack([vectors[key] for key in keys])
        scores = (matrix @ query) / np.maximum(np.linalg.norm(matrix, axis=1) * np.linalg.norm(query), 1e-12)
        order = sorted(range(len(chunks)), key=lambda n: (-float(scores[n]), chunks[n].position))
        return [Scored(chunks[n], float(scores[n])) for n in order]

    def _key(self, text: str) -> str:
        """The cache key: the model and the text, hashed (no document text is held twice)."""
        return hashlib.sha256(f"{self.target}\0{text}".encode()).hexdigest()

    def _embed(self, client: Embeddings, texts: list[str]) -> list[np.ndarray[Any, Any]]:
        """One request's embeddings, one flat finite vector per text, or RankingUnavailable."""
        try:
            with io_budget(len(texts) * BYTES_PER_TEXT):
                answer = client.embed_documents(texts)
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise _unavailable(f"no answer within {self.timeout_s:g} s", exc) from exc
        except (HfHubHTTPError, httpx.HTTPStatusError) as exc:
            raise _unavailable(f"the server answered {exc.response.status_code}", exc) from exc
        except (httpx.HTTPError, OSError) as exc:  # refused, reset, offline mode
            raise _unavailable("the server can't be reached", exc) from exc
        except ReplyTooLargeError as exc:  # past the byte budget
            raise _unavailable("the server's answer is too large", exc) from exc
        except RedirectRefusedError as exc:
            raise _unavailable("the server answered with a redirect", exc) from exc
        except (ValueError, TypeError) as exc:  # not JSON, ragged, or a model the provider doesn't serve
            raise _unavailable("the model doesn't embed text, or its answer is not a list of embeddings", exc) from exc
        try:
            matrix = np.asarray(answer, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise _unavailable("the server's answer is not a list of embeddings", exc) from exc
        if matrix.ndim != 2 or matrix.shape[0] != len(texts) or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
            raise _unavailable(f"the server's answer has shape {matrix.shape}, not one embedding per text")
        return [row.copy() for row in matrix]  # not views: an evicted row frees its memory


def _unavailable(reason: str, exc: BaseException | None = None) -> RankingUnavailable:
    """The fallback's notice; the details go to the log (scrubbed of credentials), not the page."""
    log.warning("embeddings unavailable: %s%s", reason, f" ({net.scrub(str(exc))})" if exc is not None else "")
    return RankingUnavailable(f"Embeddings unavailable ({reason}): ranked by keywords instead.")
