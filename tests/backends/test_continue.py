"""Continue a reply that stopped for length, through `ChatService.respond` on real models and a
real `transformers serve`: the continuation joins the same answer, under one footer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.continuation import CONTINUE_INSTRUCTION, PREFILL_BODY, Continuation, CutReply, cut_reply
from hfchat.cpu import cpu_dtype_name
from hfchat.messages import Message, MessageKind, message_kind
from hfchat.reply import answer_text
from hfchat.testing.servers import Recorder, RecordingProxy, TransformersServe, chat_route_handler
from hfchat.ui.render import to_messages

QUESTION = "Tell me a story about a robot."


def last_reply(fn: Any, message: str, history: Sequence[Message], **kw: Any) -> list[Message]:
    """The reply's messages as the window shows them when the turn ends."""
    views = list(fn(message, list(history), **kw))
    return to_messages(views[-1])


def ask_and_continue(fn: Any, **kw: Any) -> tuple[CutReply, list[Message]]:
    """Ask QUESTION, check the reply stopped for length, then Continue it: the cut reply and
    the continued reply's messages."""
    first = last_reply(fn, QUESTION, [], **kw)
    cut = cut_reply([{"role": "user", "content": QUESTION}, *first])
    assert cut is not None, f"the first reply must stop for length: {first}"
    again = last_reply(fn, cut.question["content"], cut.history, continue_from=cut.continuation, **kw)
    return cut, again


def footers(reply: Sequence[Message]) -> list[Message]:
    return [m for m in reply if message_kind(m) is MessageKind.FOOTER]


def answers(reply: Sequence[Message]) -> list[Message]:
    return [m for m in reply if message_kind(m) is MessageKind.ANSWER]


def local_fn(model: Path) -> Any:
    options = parse_options(["--backend", "local", "--model", str(model), "--device", "cpu"], {})
    return make_chat_fn(ChatService(cache=ModelCache(1)), options)


def greedy(model: Path, prompt: str, max_new_tokens: int) -> str:
    """The model's own greedy text after `prompt`, with transformers alone (the oracle), in
    the dtype the app loads it in on this CPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, cpu_dtype_name()))
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    out = lm.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True))


def test_local_continue_prefills_the_partial_answer_and_joins_one_message(tiny_models: dict[str, Path]) -> None:
    """Tiny chat model: the continuation is exactly greedy decoding after the prompt that ends
    in the partial answer (`continue_final_message=True`); one answer, one footer of 16 tokens."""
    from transformers import AutoTokenizer

    model = tiny_models["chat"]
    cut, again = ask_and_continue(local_fn(model), max_new_tokens=8, do_sample=False)
    partial = cut.continuation.text
    assert cut.continuation.figures["output_tokens"] == 8
    tok = AutoTokenizer.from_pretrained(model)
    turns = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": partial}]
    prompt = tok.apply_chat_template(turns, continue_final_message=True, tokenize=False)
    assert isinstance(prompt, str) and prompt.endswith(partial)
    assert answer_text(again) == partial + greedy(model, prompt, 8)
    assert len(answers(again)) == 1 and len(footers(again)) == 1
    footer = footers(again)[0]
    assert footer["figures"]["output_tokens"] == 16 and "16 out (tokenizer)" in footer["content"]
    assert footer["figures"]["total_s"] >= cut.continuation.figures["total_s"]
    assert "stopped: length" in footer["content"], "the last part was cut by its 8 tokens too"


def test_local_greedy_continue_equals_one_16_token_reply(real_model: Path) -> None:
    """SmolLM2-135M-Instruct, greedy: 8 tokens, then Continue with 8 more, is the reply of one
    16-token turn, exactly (its text tokenizes back to the tokens it generated)."""
    fn = local_fn(real_model)
    whole = last_reply(fn, QUESTION, [], max_new_tokens=16, do_sample=False)
    cut, again = ask_and_continue(fn, max_new_tokens=8, do_sample=False)
    assert answer_text(again) == answer_text(whole)
    assert len(cut.continuation.text) < len(answer_text(whole))
    assert footers(again)[0]["figures"]["output_tokens"] == footers(whole)[0]["figures"]["output_tokens"] == 16


@pytest.fixture
def endpoint_fn(proxy: RecordingProxy) -> Iterator[Any]:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url], {})
    yield make_chat_fn(ChatService(cache=ModelCache(2), timeout=30), options)


def chat_requests(proxy: RecordingProxy) -> list[dict[str, Any]]:
    return [r.json for r in proxy.requests if r.path.endswith("/chat/completions")]


def test_transformers_serve_refuses_prefill_so_continue_asks_with_an_instruction(
    serve: TransformersServe, proxy: RecordingProxy, endpoint_fn: Any
) -> None:
    """A real `transformers serve` answers 422 to vLLM's `continue_final_message` fields (and
    500 when they come as chat_template_kwargs: it always adds the generation prompt). So
    Continue sends the partial answer, then the continue instruction, and joins the reply."""
    turns = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": "Once"}]
    base = {"model": serve.model_name, "messages": turns, "max_tokens": 4, "stream": False}
    refused = httpx.post(f"{serve.url}/v1/chat/completions", json={**base, **PREFILL_BODY}, timeout=60)
    assert refused.status_code == 422 and "continue_final_message" in refused.text
    kwargs = {**base, "chat_template_kwargs": {"continue_final_message": True}}
    assert httpx.post(f"{serve.url}/v1/chat/completions", json=kwargs, timeout=60).status_code >= 400

    cut, again = ask_and_continue(endpoint_fn, max_new_tokens=8)
    sent = chat_requests(proxy)
    assert len(sent) == 3, "the question, the refused prefill, the instruction"
    prefill, instructed = sent[1], sent[2]
    assert prefill["continue_final_message"] is True and prefill["add_generation_prompt"] is False
    assert prefill["messages"][-1] == {"role": "assistant", "content": cut.continuation.text}
    assert "continue_final_message" not in instructed
    assert instructed["messages"][-2:] == [
        {"role": "assistant", "content": cut.continuation.text},
        {"role": "user", "content": CONTINUE_INSTRUCTION},
    ]
    joined = answer_text(again)
    assert joined.startswith(cut.continuation.text) and len(joined) > len(cut.continuation.text)
    assert len(answers(again)) == 1 and len(footers(again)) == 1
    assert footers(again)[0]["figures"]["output_tokens"] == 16, "8 + 8, the server's own usage"

    last_reply(endpoint_fn, cut.question["content"], cut.history, continue_from=cut.continuation, max_new_tokens=8)
    assert "continue_final_message" not in chat_requests(proxy)[-1], "the cached client asks the second way at once"
    assert len(chat_requests(proxy)) == 4


def test_a_server_that_takes_the_prefill_fields_continues_in_one_request(recorder: Recorder) -> None:
    """A server that accepts vLLM's fields (a canned one here: no vLLM on this machine) gets
    one request: the partial answer as the final assistant message, with continue_final_message
    and add_generation_prompt false; what it streams joins the answer."""
    recorder.route("GET", "/v1/models", (404, {}, b""))
    recorder.route("POST", "/v1/chat/completions", chat_route_handler(" time, there was a robot."))
    fn = make_chat_fn(ChatService(cache=ModelCache(2), timeout=30), parse_options(["--backend", "endpoint"], {}))
    going_on = Continuation("Once upon a", {"finish_reason": "length", "output_tokens": 3, "total_s": 0.5})
    reply = last_reply(fn, QUESTION, [], endpoint_url=recorder.url, continue_from=going_on)
    (sent,) = [r.json for r in recorder.requests if r.path.endswith("/chat/completions")]
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    assert sent["messages"][-2:] == [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "Once upon a"},
    ]
    assert answer_text(reply) == "Once upon a time, there was a robot."
    assert len(answers(reply)) == 1 and len(footers(reply)) == 1
    assert footers(reply)[0]["figures"]["total_s"] >= 0.5, "the first part's time is counted in"


def test_continuing_a_reply_about_a_document_sends_the_document_again_and_adds_no_chip(
    proxy: RecordingProxy, tmp_path: Path
) -> None:
    """The turn's chip stays in the window before its question, so the continuation's question
    goes with the same document context as the first part's, and no second chip is shown."""
    from hfchat.conversations import turn_window, user_message
    from hfchat.testing import documents as docs

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    options = parse_options(["--backend", "endpoint", "--endpoint-url", proxy.url, "--max-new-tokens", "8"], {})
    service = ChatService(cache=ModelCache(2), timeout=30, limits=options.limits, upload_root=str(uploads))
    fn = make_chat_fn(service, options)
    pdf = docs.three_page_pdf(uploads / "report.pdf")
    question = "What is the launch code?"
    first = to_messages(list(fn({"text": question, "files": [str(pdf)]}, []))[-1])
    window = turn_window([], user_message({"text": question, "files": []}), first)
    cut = cut_reply(window)
    assert cut is not None and [m["metadata"]["id"] for m in cut.history] == ["hfchat-document"]
    again = last_reply(fn, cut.question["content"], cut.history, continue_from=cut.continuation)
    asked, *_, continued = chat_requests(proxy)
    assert docs.PAGE_SECRET in asked["messages"][-1]["content"]
    assert continued["messages"][-3] == asked["messages"][-1], "the question with its document, as first sent"
    assert not any(m.get("role") == "user" for m in again), "no second chip"
    assert len(answers(again)) == 1 and len(footers(again)) == 1
    assert answer_text(again).startswith(cut.continuation.text)
