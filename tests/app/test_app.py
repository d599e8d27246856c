"""End to end without a browser: the app launched in-process, called through gradio_client."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client, handle_file

from hfchat.backends import local
from hfchat.cache import ModelCache
from hfchat.chat import ChatService
from hfchat.cli import parse_options
from hfchat.settings import SETTINGS
from hfchat.testing import answer_text
from hfchat.testing.app import RunningApp, running_app
from hfchat.testing.fake_service import FakeService
from hfchat.testing.servers import RecordingProxy, TransformersServe, free_port
from hfchat.updates import FOOTER_ID
from tests.fixtures import SENTINEL_TOKEN


def box(text: str, *images: str) -> dict[str, Any]:
    """What the multimodal textbox sends: the text and uploaded files."""
    return {"text": text, "files": [handle_file(path) for path in images]}


class App:
    def __init__(self, url: str, service: ChatService) -> None:
        self.url = url
        self.service = service
        self.client = Client(url, verbose=False)

    def reply(self, message: str, *images: str, **settings: Any) -> list[dict[str, Any]]:
        """One turn's messages; gradio_client keeps this client's history between turns, like a browser tab."""
        return self.client.predict(message=box(message, *images), api_name="/chat", **settings)

    def chat(self, message: str, *images: str, **settings: Any) -> str:
        """One turn's answer (or error), without its thinking and speed footer."""
        return answer_text(self.reply(message, *images, **settings))

    def fresh(self) -> App:
        """A new visitor: an empty history."""
        return App(self.url, self.service)


@pytest.fixture(scope="module")
def app(tiny_models: dict[str, Path]) -> Iterator[App]:
    options = parse_options(
        [
            *("--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu", "--max-new-tokens", "8"),
            "--do-sample",
            "false",
        ],
        {},
    )
    service = ChatService(cache=ModelCache(options.cache_size))
    with running_app(options, service) as running:
        yield App(running.url, service)


def test_local_chat_with_the_defaults_set_by_flags(app: App) -> None:
    reply = app.fresh().chat("Hello!")
    assert reply and not reply.startswith(("⚠", "◔"))
    assert app.fresh().chat("Hello!") == reply, "greedy by the flags: the same reply twice"


def test_settings_override_by_name(app: App, tiny_models: dict[str, Path]) -> None:
    short = app.chat("Hello!", max_new_tokens=2, system_prompt="Be brief.")
    longer = app.chat("Hello!", max_new_tokens=12, system_prompt="Be brief.")
    assert len(short) < len(longer)
    plain = app.chat("Hello!", model=str(tiny_models["plain"]), max_new_tokens=4)
    assert plain and not plain.startswith("⚠")


def test_custom_endpoint_through_the_app(app: App, proxy: RecordingProxy, serve: TransformersServe) -> None:
    reply = app.chat("Hi", backend="endpoint", endpoint_url=proxy.url, max_new_tokens=6, seed=11)
    assert reply and not reply.startswith("⚠")
    body = next(r.json for r in proxy.requests if r.path.endswith("/chat/completions"))
    assert body["max_tokens"] == 6 and body["seed"] == 11 and body["model"] == serve.model_name
    assert body["messages"][-1]["content"] == "Hi"


def test_errors_show_in_the_chat_and_the_next_message_works(app: App, proxy: RecordingProxy) -> None:
    bad = app.chat("Hi", backend="providers", model="not a repo/../x")
    assert bad.startswith("⚠ **Invalid setting.**") and "model" in bad
    assert "Traceback" not in bad
    # Still loading after every retry (a single 503 is retried away: see test_backend_endpoint).
    proxy.fail_next(status=503, body='{"error": "Model is loading"}', times=None, path="/v1/chat/completions")
    loading = app.chat("Hi", backend="endpoint", endpoint_url=proxy.url, max_new_tokens=4)
    assert "503" in loading and "loading" in loading
    refused = app.chat("Hi", backend="endpoint", endpoint_url=f"http://127.0.0.1:{free_port()}", max_new_tokens=4)
    assert "Cannot connect" in refused
    assert not app.chat("Hi again").startswith("⚠")


def test_stop_ends_generation_and_the_app_keeps_answering(app: App) -> None:
    def generating() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == local.GENERATE_THREAD_NAME]

    job = app.client.submit(message=box("Tell me everything"), max_new_tokens=5000, api_name="/chat")
    deadline = time.monotonic() + 60
    while len(job.outputs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(job.outputs()) >= 3, "the reply streams in several updates"
    assert generating()
    job.cancel()
    deadline = time.monotonic() + 10
    while generating() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not generating(), "Stop must end the generate thread"
    assert not app.chat("Still there?").startswith("⚠")


def visible_by_label(url: str) -> dict[str, bool]:
    """Each labelled control of the page's config -> whether the page shows it."""
    config = httpx.get(url + "config").json()
    return {c["props"]["label"]: c["props"].get("visible") for c in config["components"] if c["props"].get("label")}


def test_hidden_controls_follow_the_backend(app: App, start_app: Callable[..., RunningApp]) -> None:
    def by_name(url: str) -> dict[str, bool]:
        shown = visible_by_label(url)
        return {name: shown[s.control.label] for name, s in SETTINGS.items() if s.control.label in shown}

    shown = by_name(app.url)  # the app started on the local backend
    assert (shown["provider"], shown["endpoint_url"]) == (False, False)
    assert (shown["load_in_4bit"], shown["top_k"]) == (True, True)
    providers = start_app(parse_options(["--backend", "providers", "--model", "org/model"], {}), FakeService())
    shown = by_name(providers.url)
    assert shown["provider"] is True, "Inference Providers take a provider"
    assert (shown["top_k"], shown["endpoint_url"], shown["load_in_4bit"]) == (False, False, False)


def test_session_token_never_comes_back(app: App, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reply = app.chat("Hi", hf_token=SENTINEL_TOKEN)
    assert SENTINEL_TOKEN not in reply
    for path in ("config", "", "gradio_api/info"):
        assert SENTINEL_TOKEN not in httpx.get(app.url + path).text
    keys = app.service.cache.cached_keys()
    assert [key for key in keys if key.token_fingerprint != "anonymous"], "the turn's model is keyed by its token"
    assert all(SENTINEL_TOKEN not in repr(key) for key in keys)
    assert caplog.records, "the turn was logged"
    assert SENTINEL_TOKEN not in caplog.text


def test_cache_hit_on_repeat_no_rebuild(app: App) -> None:
    before = app.service.cache.stats.builds
    app.chat("one", temperature=0.3, do_sample=True)
    app.chat("two", temperature=1.2, do_sample=True, top_p=0.5)
    assert app.service.cache.stats.builds == before


def test_a_plain_string_and_the_box_dict_are_the_same_message(app: App) -> None:
    """The API's `message` is a plain string or the box's dict (`{"text": ...}` alone is enough);
    a plain string was refused with Gradio's generic error before issue 13."""
    plain = answer_text(app.fresh().client.predict(message="Hello!", api_name="/chat"))
    boxed = answer_text(app.fresh().client.predict(message={"text": "Hello!"}, api_name="/chat"))
    assert plain and plain == boxed == app.fresh().chat("Hello!")


def test_a_text_only_configuration_refuses_an_image_and_keeps_going(app: App, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "red.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(picture)
    visitor = app.fresh()
    refused = visitor.chat("What is in this picture?", str(picture))
    assert refused.startswith("⚠ **Cannot send this message.**")
    assert "text-only" in refused and "image-text-to-text" in refused
    reply = visitor.chat("Hello!")
    assert reply == app.fresh().chat("Hello!"), "the refused turn never reaches the model"


def test_an_image_reaches_the_local_vision_model_through_the_api(
    app: App, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from PIL import Image

    vlm = {"model": str(tiny_models["vlm"]), "task": "image-text-to-text"}
    replies = {}
    for color in ("red", "blue"):
        picture = tmp_path / f"{color}.png"
        Image.new("RGB", (40, 30), color).save(picture)
        replies[color] = app.fresh().chat("What is in this picture?", str(picture), **vlm)
        assert replies[color] and not replies[color].startswith(("⚠", "◔"))
    assert replies["red"] != replies["blue"], "the reply depends on the picture"
    follow_ups = set()
    for color in ("red", "blue"):
        visitor = app.fresh()
        visitor.chat("What is in this picture?", str(tmp_path / f"{color}.png"), **vlm)
        follow_up = visitor.chat("And its color?", **vlm)
        assert follow_up and not follow_up.startswith("⚠")
        follow_ups.add(follow_up)
    assert len(follow_ups) == 2, "the history's image goes back to the model"


def test_a_path_on_the_server_that_was_not_uploaded_is_never_read(app: App, tmp_path: Path) -> None:
    """Gradio refuses file paths a visitor did not upload, before our code sees them."""
    from PIL import Image

    secret = tmp_path / "server-side.png"
    Image.new("RGB", (8, 8), (0, 255, 0)).save(secret)
    call = app.url + "gradio_api/call/chat"

    params = httpx.get(app.url + "gradio_api/info", timeout=30).json()["named_endpoints"]["/chat"]["parameters"]
    defaults = [p.get("parameter_default") for p in params[1:]]

    def send(message: dict[str, Any]) -> str:
        event = httpx.post(call, json={"data": [message, *defaults]}, timeout=30).json()["event_id"]
        return httpx.get(f"{call}/{event}", timeout=120).text

    assert "event: complete" in send({"text": "Hello!", "files": []}), "the same call without the file works"
    forged = send({"text": "x", "files": [{"path": str(secret), "meta": {"_type": "gradio.FileData"}}]})
    assert "event: error" in forged and "event: complete" not in forged  # the reason is hidden without show_error


# Reasoning and the speed footer, through the real app: both reasoning forms, real counts.

FOOTER = {"id": FOOTER_ID}


def parts(reply: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str, str | None]:
    """(the Thinking message, the answer, the footer text) of one reply."""
    thinking = next((m for m in reply if (m.get("metadata") or {}).get("title") == "Thinking"), None)
    footer = next((str(m["content"]) for m in reply if m.get("metadata") == FOOTER), None)
    return thinking, answer_text(reply), footer


def test_local_think_model_shows_its_thinking_apart_with_tokenizer_counts(
    app: App, tiny_models: dict[str, Path]
) -> None:
    """The think fixture's template opens `<think>`; the model closes it, then answers."""
    from transformers import AutoTokenizer

    think = str(tiny_models["think"])
    thinking, answer, footer = parts(app.fresh().reply("Hello!", model=think, max_new_tokens=40))
    assert thinking is not None and thinking["content"] == "Let us think about it"
    assert thinking["metadata"]["status"] == "done" and thinking["metadata"]["duration"] >= 0
    assert answer == "Paris is the capital of France."
    tok = AutoTokenizer.from_pretrained(think)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Hello!"}], tokenize=False, add_generation_prompt=True
    )
    said = tok.encode("Let us think about it</think>Paris is the capital of France.", add_special_tokens=False)
    counts = f"{len(tok.encode(prompt, add_special_tokens=False))} in / {len(said) + 1} out (tokenizer)"  # + EOS
    assert footer is not None and footer.startswith("◷ ") and " · think · Local · " in footer
    assert counts in footer and "stopped: stop" in footer and "s to first token" in footer and "tok/s" in footer

    _, cut, cut_footer = parts(app.fresh().reply("Hello!", model=think, max_new_tokens=9))
    assert cut == "Paris is" and cut_footer is not None
    assert " / 9 out (tokenizer)" in cut_footer and "stopped: length" in cut_footer and "cached" in cut_footer

    hidden = app.fresh().reply("Hello!", model=think, max_new_tokens=40, show_speed=False)
    assert parts(hidden)[2] is None and parts(hidden)[1] == answer


def test_all_tokens_spent_thinking_is_explained(app: App, tiny_models: dict[str, Path]) -> None:
    thinking, shown, _ = parts(app.fresh().reply("Hello!", model=str(tiny_models["think"]), max_new_tokens=3))
    assert thinking is not None and thinking["content"] == "Let us think"
    assert shown.startswith("⚠ **Empty reply.**") and "all 3 tokens thinking" in shown


def test_reasoning_content_from_a_server_is_thinking_and_never_sent_back(app: App) -> None:
    from hfchat.testing.servers import Recorder, chat_route_handler

    with Recorder() as server:
        server.route("GET", "/v1/models", (404, {}, b""))
        server.route("POST", "/v1/chat/completions", chat_route_handler("The answer is 4.", reasoning="Two plus two."))
        visitor = app.fresh()
        thinking, answer, footer = parts(visitor.reply("2+2?", backend="endpoint", endpoint_url=server.url))
        assert thinking is not None and thinking["content"] == "Two plus two."
        assert thinking["metadata"]["status"] == "done"
        assert answer == "The answer is 4."
        assert footer is not None and "~7 out (chunks)" in footer, "no usage sent: chunks counted, marked approximate"
        visitor.reply("And 3+3?", backend="endpoint", endpoint_url=server.url)
        sent = [r.json for r in server.requests if r.path == "/v1/chat/completions"][-1]["messages"]
        assert [m["content"] for m in sent] == ["2+2?", "The answer is 4.", "And 3+3?"], "thoughts and footer stay out"


def test_footer_counts_are_the_servers_usage(app: App, tiny_models: dict[str, Path]) -> None:
    """A real `transformers serve` sends usage: the footer shows exactly its numbers."""
    from huggingface_hub import InferenceClient

    with TransformersServe(tiny_models["think"]) as server, RecordingProxy(server.url) as proxy:
        thinking, answer, footer = parts(
            app.fresh().reply("Hello!", backend="endpoint", endpoint_url=proxy.url, max_new_tokens=7)
        )
        assert proxy.requests[-1].json["stream_options"] == {"include_usage": True}
        usage = (
            InferenceClient(base_url=server.url)
            .chat_completion(
                [{"role": "user", "content": "Hello!"}], model=server.model_name, max_tokens=7, temperature=0.0
            )
            .usage
        )
    assert thinking is not None and thinking["content"] == "Let us think about it", "closing tag only: R1 style"
    assert answer and "Paris is the capital of France.".startswith(answer), "cut off by the 7-token budget"
    assert footer is not None and f"{usage.prompt_tokens} in / {usage.completion_tokens} out (server)" in footer
    assert usage.completion_tokens == 7 and "stopped: length" in footer
