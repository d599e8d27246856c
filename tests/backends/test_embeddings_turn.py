"""Retrieval by embeddings (--embeddings) through a whole turn: a loopback Text Embeddings
Inference server ranks a long document's chunks, the passage it ranks best reaches a real
`transformers serve` (through a recording proxy) and the Sources block names its lines; a
server that fails leaves BM25 to rank with a one-line notice; no token ever reaches it.

The fake server's embeddings (`hfchat.testing.embeddings`) merge a few synonyms, so the
question below shares no word with the secret line yet means it: BM25 finds nothing (and
sends the beginning of the file), embeddings find the line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hfchat import net
from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.conversations import turn_window, user_message
from hfchat.documents import Document, Part
from hfchat.embeddings import EmbeddingRanker, embeddings_client
from hfchat.retrieval import chunk_documents
from hfchat.testing import documents as docs
from hfchat.testing.embeddings import fake_tei, tei_answer
from hfchat.testing.servers import Recorder, RecordingProxy, free_port, json_response, provider_mapping_response
from hfchat.ui.render import to_messages
from hfchat.updates import Notice, ReplyView, Sources
from tests.fixtures import SENTINEL_TOKEN

MEANING = "Which person guards the safe code?"
"""Means `docs.LINE_SECRET` ("...combination... keeps it"), sharing none of its words."""

KEYWORDS = "Who keeps the vault combination?"
"""Shares the secret line's words: what BM25 finds."""


@pytest.fixture
def tei() -> Iterator[Recorder]:
    with fake_tei() as server:
        yield server


@pytest.fixture
def long_file(tmp_path: Path) -> tuple[Path, Path, int]:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    path, line = docs.long_text_file(uploads / "long.txt")
    return uploads, path, line


def chat_with(proxy: RecordingProxy, uploads: Path, embeddings: str, timeout_s: float = 5.0) -> Any:
    """The chat function of a service built as `hfchat.ui.app.build_service` builds it from --embeddings."""
    flags = ["--backend", "endpoint", "--endpoint-url", proxy.url, "--max-new-tokens", "4", "--embeddings", embeddings]
    options = parse_options(flags, {})
    service = ChatService(
        cache=ModelCache(2),
        timeout=5,
        limits=options.limits,
        upload_root=str(uploads),
        embeddings=EmbeddingRanker(options.embeddings, timeout_s=timeout_s),
    )
    return make_chat_fn(service, options)


def turn(fn: Any, text: str, files: list[Path], **values: Any) -> ReplyView:
    return list(fn({"text": text, "files": [str(f) for f in files]}, [], **values))[-1]


def sent_user_text(proxy: RecordingProxy) -> str:
    chats = [r for r in proxy.requests if r.path.endswith("/chat/completions")]
    content = chats[-1].json["messages"][-1]["content"]
    return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)


def line_ranges(view: ReplyView) -> list[tuple[int, int]]:
    labels = next(u for u in view if isinstance(u, Sources)).labels
    return [(int(a), int(b)) for a, b in (label.removeprefix("long.txt, lines ").split("–") for label in labels)]


def notice_of(view: ReplyView) -> str:
    return next(u for u in view if isinstance(u, Notice)).text


def test_the_passage_embeddings_rank_first_reaches_the_model_and_no_token_reaches_the_server(
    proxy: RecordingProxy,
    tei: Recorder,
    long_file: tuple[Path, Path, int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HF_TOKEN", SENTINEL_TOKEN)  # what huggingface_hub's get_token() would send
    caplog.set_level(logging.WARNING, logger="hfchat.net")
    uploads, path, line = long_file
    fn = chat_with(proxy, uploads, tei.url)
    view = turn(fn, MEANING, [path], hf_token=SENTINEL_TOKEN)
    sent = sent_user_text(proxy)
    assert docs.LINE_SECRET in sent, "the passage embeddings chose reached the model"
    assert any(first <= line <= last for first, last in line_ranges(view)), line_ranges(view)
    assert "most relevant to the question" in notice_of(view) and "keywords" not in notice_of(view)
    posted = [r for r in tei.requests if r.method == "POST"]
    assert posted and posted[0].json["inputs"] == [MEANING], "the question first"
    assert all("authorization" not in r.headers for r in tei.requests), [r.headers for r in tei.requests]
    assert all(SENTINEL_TOKEN not in str(r.headers) + r.body.decode() for r in tei.requests)
    assert all(len(r.json["inputs"]) <= 32 for r in posted), "batches of 32 at most"
    assert "dropped an Authorization header" not in caplog.text, "no token was even tried (net is the backstop)"


def test_a_url_gets_an_explicit_no_token_and_a_repo_id_the_visitors(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub sends `get_token()` when a client has no key: a URL's client must say "none"."""
    monkeypatch.setenv("HF_TOKEN", SENTINEL_TOKEN)
    assert embeddings_client("http://127.0.0.1:1", SENTINEL_TOKEN, 1.0).client.token == net.NO_CREDENTIALS
    assert embeddings_client("BAAI/bge-small-en-v1.5", "hf_visitor", 1.0).client.token == "hf_visitor"
    assert embeddings_client("BAAI/bge-small-en-v1.5", None, 1.0).client.token == net.NO_CREDENTIALS


def test_a_follow_up_embeds_only_its_question(
    proxy: RecordingProxy, tei: Recorder, long_file: tuple[Path, Path, int]
) -> None:
    uploads, path, _ = long_file
    fn = chat_with(proxy, uploads, tei.url)
    first = turn(fn, MEANING, [path])
    texts = [t for r in tei.requests for t in r.json["inputs"]]
    assert len(texts) == len(set(texts)) > 100, "each chunk embedded once"
    history = turn_window([], user_message({"text": MEANING, "files": []}), to_messages(first))
    tei.clear()
    proxy.clear()
    view = list(fn({"text": "Who holds the safe?", "files": []}, history))[-1]
    assert [r.json["inputs"] for r in tei.requests] == [["Who holds the safe?"]]
    assert docs.LINE_SECRET in sent_user_text(proxy) and any(isinstance(u, Sources) for u in view)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("down", "the server can't be reached"),
        ("503", "the server answered 503"),
        ("shape", "not a list of embeddings"),
        ("slow", "no answer within 1 s"),
    ],
)
def test_an_embeddings_server_that_fails_leaves_bm25_to_rank_with_a_notice(
    proxy: RecordingProxy, tei: Recorder, long_file: tuple[Path, Path, int], fault: str, reason: str
) -> None:
    uploads, path, line = long_file
    url = f"http://127.0.0.1:{free_port()}" if fault == "down" else tei.url
    if fault == "503":
        tei.fail_next(503, '{"error": "overloaded"}', times=None)
    elif fault == "shape":
        tei.route("POST", "/", json_response({"embeddings": "not a list"}))
    elif fault == "slow":
        tei.delay(3)
    fn = chat_with(proxy, uploads, url, timeout_s=1.0)
    view = turn(fn, KEYWORDS, [path])
    assert docs.LINE_SECRET in sent_user_text(proxy), "BM25 found the passage; the turn went on"
    assert any(first <= line <= last for first, last in line_ranges(view))
    notice = notice_of(view)
    assert notice.endswith("): ranked by keywords instead.") and "Embeddings unavailable (" in notice, notice
    assert reason in notice.split("Embeddings unavailable (")[1], notice
    assert "\n" not in notice.split("too long to send whole")[-1], "one line"


def test_a_repo_id_is_embedded_by_inference_providers_with_the_visitors_token(
    hub_recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repo ID goes to Hugging Face's router (here the recorder stands in for it and the Hub),
    with the token paying for the visitor: the only place a token goes."""
    from huggingface_hub.inference._providers import PROVIDERS

    # HF Inference's helper keeps the router's address from import time (`redirect_hub` can't move it)
    monkeypatch.setattr(PROVIDERS["hf-inference"]["feature-extraction"], "base_url", hub_recorder.url + "/hf-inference")
    repo = "org/embedder"
    mapping = provider_mapping_response(repo, "hf-inference", repo, task="feature-extraction")
    mapping["pipeline_tag"] = "feature-extraction"  # what HF Inference checks before calling
    hub_recorder.route("GET", f"/api/models/{repo}", json_response(mapping))
    hub_recorder.route("POST", "/hf-inference/", tei_answer)
    net.forget_hub_probe()
    chunks = chunk_documents([Document("notes.txt", "text", 0, (Part(docs.LINE_SECRET),)), *filler_documents()])
    ranked = EmbeddingRanker(repo).for_token("hf_visitor")(MEANING, chunks)
    assert docs.LINE_SECRET in ranked[0].chunk.text
    posted = [r for r in hub_recorder.requests if r.method == "POST"]
    assert posted and {r.headers.get("authorization") for r in posted} == {"Bearer hf_visitor"}, posted


def filler_documents() -> list[Document]:
    return [Document(f"f{n}.txt", "text", 0, (Part("\n".join(docs.filler_lines(5, seed=n))),)) for n in range(3)]
