"""Break 4 and 5 of issue 10: a hostile or broken server cannot make a reply unbounded.

Every test runs a real loopback fault server (a Recorder whose handler returns a generator
body) behind the real endpoint backend, and checks four things: the reply ends with a cut
notice naming the limit, the text kept is bounded, the server saw its connection end (the
generator was closed), and the next message in the conversation works.

A turn that today would never end is driven with a guard: the test stops reading after
GIVE_UP_S, so on unfixed code it fails instead of hanging.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.testing import answer_text
from hfchat.testing.app import RunningApp
from hfchat.testing.servers import RecordedRequest, Recorder, Response, chat_route_handler, sse_response
from hfchat.updates import ReplyView

GIVE_UP_S = 20.0
"""How long a test reads a turn before calling it unbounded."""
MAX_NEW_TOKENS = 40


def chunk(content: str = "", reasoning: str = "", usage: int | None = None) -> str:
    delta: dict[str, Any] = {"content": content} if content else {}
    if reasoning:
        delta["reasoning_content"] = reasoning
    payload: dict[str, Any] = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fault",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    if usage is not None:
        payload["usage"] = {"prompt_tokens": 1, "completion_tokens": usage, "total_tokens": usage + 1}
    return f"data: {json.dumps(payload)}\n\n"


@dataclass
class FaultServer:
    """A loopback OpenAI-compatible server whose replies are a chosen fault.

    `closed` is set when the server side of a faulty stream ended: the client went away
    and the generator body was closed (or finished). `mode` picks the next reply.
    """

    recorder: Recorder
    mode: str = "ok"
    closed: threading.Event = field(default_factory=threading.Event)
    sent_chunks: int = 0
    sent_bytes: int = 0

    @property
    def url(self) -> str:
        return self.recorder.url

    def handle(self, req: RecordedRequest) -> Response:
        asked = json.dumps(req.json)
        if self.mode == "ok" or (self.mode == "trickle-attack" and "attack" not in asked):
            return chat_route_handler("All good here.")(req)
        self.closed.clear()
        return sse_response(self._body(self.mode))

    def _body(self, mode: str) -> Iterator[str]:
        try:
            if mode == "trickle-first":  # 1 byte every 0.5 s from the start: no first chunk ever
                while True:
                    time.sleep(0.5)
                    yield ":"
            yield chunk("Start. ")
            if mode == "endless":  # tokens forever, no usage
                while True:
                    self.sent_chunks += 1
                    yield chunk("tok ")
            elif mode == "lying-usage":  # tokens forever, each chunk claiming the reply is 1 token
                while True:
                    self.sent_chunks += 1
                    yield chunk("tok ", usage=1)
            elif mode == "endless-reasoning":  # thinking forever, never an answer
                while True:
                    self.sent_chunks += 1
                    yield chunk(reasoning="hmm ")
            elif mode == "huge-chunk":  # one chunk of 4 M characters, claimed to be 1 token
                yield chunk("x" * 4_000_000, usage=1)
                yield "data: [DONE]\n\n"
            elif mode == "huge-line":  # one 64 MB line, sent 1 MB at a time as the client reads it
                yield 'data: {"choices": [{"index": 0, "delta": {"content": "'
                piece = "x" * 2**20
                for _ in range(64):
                    self.sent_bytes += len(piece)
                    yield piece
                yield '"}}]}\n\n'
            elif mode in ("trickle", "trickle-attack"):  # 1 byte every 0.5 s of a chunk that never ends
                yield 'data: {"choices": [{"index": 0, "delta": {"content": "'
                while True:
                    time.sleep(0.5)
                    yield "a"
            elif mode == "stall":  # two chunks, then only keep-alive comments: no read ever times out
                yield chunk("then ")
                while True:
                    time.sleep(0.2)
                    yield ": keep-alive\n\n"
        finally:
            self.closed.set()


@pytest.fixture
def fault(recorder: Recorder) -> FaultServer:
    server = FaultServer(recorder)
    recorder.route("POST", "/v1/chat/completions", server.handle)
    return server


def chat_fn(url: str, *flags: str, timeout: int = 10) -> Any:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", url, *flags], {})
    service = ChatService(
        cache=ModelCache(2),
        timeout=timeout,
        turn_timeout=options.turn_timeout,
        stall_timeout=options.stall_timeout,
    )
    return make_chat_fn(service, options)


@dataclass
class Turn:
    text: str
    seconds: float
    gave_up: bool


def run_turn(fn: Any, message: str = "Hello", history: list[dict[str, Any]] | None = None, **kw: Any) -> Turn:
    """Read a turn to its end, or give up after GIVE_UP_S (closing it, as Stop would)."""
    started = time.monotonic()
    updates = fn(message, list(history or []), **kw)
    last: ReplyView = ()
    gave_up = False
    try:
        for update in updates:
            last = update
            if time.monotonic() - started > GIVE_UP_S:
                gave_up = True
                break
    finally:
        updates.close()
    return Turn(answer_text(last), time.monotonic() - started, gave_up)


def assert_next_message_works(fn: Any, fault: FaultServer, **kw: Any) -> None:
    fault.mode = "ok"
    history = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Start. tok tok"}]
    again = run_turn(fn, "And now?", history, **kw)
    assert again.text == "All good here.", again.text


@pytest.mark.parametrize("mode", ["endless", "lying-usage", "endless-reasoning"])
def test_a_reply_longer_than_max_new_tokens_is_cut(fault: FaultServer, mode: str) -> None:
    fn = chat_fn(fault.url, "--max-new-tokens", str(MAX_NEW_TOKENS))
    fault.mode = mode
    turn = run_turn(fn)
    assert not turn.gave_up, f"the reply never ended: {len(turn.text):,} characters after {turn.seconds:.0f} s"
    assert "cut: the server sent more than max_new_tokens" in turn.text, turn.text[-300:]
    if mode != "endless-reasoning":
        assert turn.text.startswith("Start. tok tok")  # the partial reply is kept
    assert len(turn.text) < 16 * MAX_NEW_TOKENS + 500
    assert fault.closed.wait(10), "the server never saw the stream closed"
    assert fault.sent_chunks < 10_000, "the app kept reading after the cut"
    assert_next_message_works(fn, fault)


def test_one_huge_chunk_is_capped_before_it_is_kept(fault: FaultServer) -> None:
    fn = chat_fn(fault.url, "--max-new-tokens", str(MAX_NEW_TOKENS))
    fault.mode = "huge-chunk"
    turn = run_turn(fn)
    assert "cut: the server sent more than max_new_tokens" in turn.text, turn.text[-300:]
    assert len(turn.text) < 16 * MAX_NEW_TOKENS + 500, f"{len(turn.text):,} characters kept"
    assert_next_message_works(fn, fault)


def test_a_huge_line_is_stopped_while_it_is_read_not_after(fault: FaultServer) -> None:
    """A single 64 MB SSE line (as in the report's 62.9 M-character reply) used to be read
    whole into memory before anything parsed it; now the wire's byte budget stops it."""
    fn = chat_fn(fault.url, "--max-new-tokens", str(MAX_NEW_TOKENS))
    fault.mode = "huge-line"
    turn = run_turn(fn)
    assert "cut: the server sent more than max_new_tokens" in turn.text, turn.text[-300:]
    assert fault.closed.wait(10), "the server never saw the stream closed"
    # The budget is about 300 KB for 40 tokens; loopback socket buffers hold a few MB more.
    assert fault.sent_bytes < 16 * 2**20, f"the server got to send {fault.sent_bytes / 2**20:.0f} MB"
    assert_next_message_works(fn, fault)


def test_a_one_byte_a_second_stream_ends_at_the_turn_timeout(fault: FaultServer) -> None:
    fn = chat_fn(fault.url, "--turn-timeout", "3", "--stall-timeout", "60")
    fault.mode = "trickle"
    turn = run_turn(fn)
    assert not turn.gave_up and turn.seconds < 8, f"the turn ran {turn.seconds:.1f} s"
    assert "cut: the turn took longer than 3 s (--turn-timeout)" in turn.text, turn.text
    assert turn.text.startswith("Start.")
    assert fault.closed.wait(10), "the server never saw the stream closed"
    assert_next_message_works(fn, fault)


def test_a_server_that_trickles_before_its_first_chunk_times_out_at_the_read_timeout(fault: FaultServer) -> None:
    """--timeout meant "how long an endpoint may take to answer": now it holds for a trickle too.
    Nothing arrived, so it is the usual timeout error, not a cut."""
    fn = chat_fn(fault.url, "--turn-timeout", "60", timeout=2)
    fault.mode = "trickle-first"
    turn = run_turn(fn)
    assert not turn.gave_up and turn.seconds < 7, f"the turn ran {turn.seconds:.1f} s"
    assert turn.text.startswith("⚠ **Timed out.**") and "send again" in turn.text, turn.text
    assert fault.closed.wait(10), "the server never saw the stream closed"
    assert_next_message_works(fn, fault)


def test_a_stalled_stream_ends_at_the_stall_timeout(fault: FaultServer) -> None:
    fn = chat_fn(fault.url, "--turn-timeout", "60", "--stall-timeout", "2", timeout=30)
    fault.mode = "stall"
    turn = run_turn(fn)
    assert not turn.gave_up and turn.seconds < 7, f"the turn ran {turn.seconds:.1f} s"
    assert "cut: the server sent nothing for 2 s" in turn.text, turn.text
    assert turn.text.startswith("Start. then")
    assert fault.closed.wait(10), "the server never saw the stream closed"
    assert_next_message_works(fn, fault)


def test_a_local_generation_past_the_turn_timeout_is_cut_and_stops(tiny_models: dict[str, Path]) -> None:
    """The local backend's deltas come from a generate thread: the deadline must stop it."""
    options = parse_options(["--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu"], {})
    service = ChatService(cache=ModelCache(1), turn_timeout=1.0, stall_timeout=60.0)
    fn = make_chat_fn(service, options)
    run_turn(fn, max_new_tokens=2)  # load the model: loading is not part of the turn's time
    turn = run_turn(fn, max_new_tokens=8192, do_sample=True, seed=1)
    assert not turn.gave_up and turn.seconds < 6, f"the turn ran {turn.seconds:.1f} s"
    assert "cut: the turn took longer than 1 s (--turn-timeout)" in turn.text, turn.text[-300:]
    started = time.monotonic()
    while any(t.name == "hfchat-generate" for t in threading.enumerate()) and time.monotonic() - started < 5:
        time.sleep(0.05)
    assert not any(t.name == "hfchat-generate" for t in threading.enumerate()), "generation went on"


def test_turn_and_stall_timeouts_are_flags_and_variables() -> None:
    options = parse_options(["--turn-timeout", "30", "--stall-timeout", "5"], {})
    assert (options.turn_timeout, options.stall_timeout) == (30, 5)
    env = {"HFCHAT_TURN_TIMEOUT": "45", "HFCHAT_STALL_TIMEOUT": "7"}
    assert (parse_options([], env).turn_timeout, parse_options([], env).stall_timeout) == (45, 7)
    defaults = parse_options([], {})
    assert defaults.turn_timeout == 300 and defaults.stall_timeout == 60
    with pytest.raises(SystemExit):
        parse_options(["--turn-timeout", "0"], {})


def test_slow_streams_free_their_workers_for_a_bystander(
    fault: FaultServer, start_app: Callable[..., RunningApp]
) -> None:
    """Break 5: trickling streams held every worker, so a bystander waited for ever."""
    options = parse_options(
        ["--backend", "endpoint", "--endpoint-url", fault.url, "--concurrency", "2", "--turn-timeout", "3"], {}
    )
    app = start_app(options)
    fault.mode = "trickle-attack"
    attacks = [app.client().submit(message={"text": "attack", "files": []}, api_name="/chat") for _ in range(2)]
    time.sleep(1)  # both workers are taken by the trickles
    started = time.monotonic()
    bystander = app.client().submit(message={"text": "Hi", "files": []}, api_name="/chat")
    assert answer_text(bystander.result(timeout=GIVE_UP_S)) == "All good here."
    assert time.monotonic() - started < 8, "the bystander waited for the slow streams"
    for attack in attacks:
        assert "cut: the turn took longer than 3 s" in answer_text(attack.result(timeout=GIVE_UP_S))
