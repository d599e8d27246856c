"""Images on the local and endpoint backends, with one tiny Llava built offline.

The local path runs transformers' image-text-to-text pipeline; the endpoint path is a real
`transformers serve` on the same weights behind a recording proxy. Greedy replies from
both must match, and differ between a red and a blue picture: the image reached the model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from PIL import Image

from hfchat.backends import backend_for, local, local_vision
from hfchat.backends.local import LOCAL
from hfchat.backends.local_vision import VISION
from hfchat.backends.types import joined_text
from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.config import Backend, ChatSettings, GenerationSettings, ModelSpec, Quantization
from hfchat.errors import UnsupportedTaskError
from hfchat.fairqueue import DeviceQueues
from hfchat.images import IMAGE_TASK
from hfchat.messages import build_messages
from hfchat.reply import answer_text
from hfchat.testing.servers import (
    Recorder,
    RecordingProxy,
    TransformersServe,
    chat_route_handler,
    json_response,
    provider_mapping_response,
)
from tests.fixtures import SENTINEL_TOKEN


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("pictures")
    out = {}
    for name, color in {"red": (255, 0, 0), "blue": (0, 0, 255)}.items():
        Image.new("RGB", (40, 30), color).save(folder / f"{name}.png")
        out[name] = str(folder / f"{name}.png")
    return out


def spec_for(path: Path, **kw: Any) -> ModelSpec:
    return ModelSpec(backend=Backend.LOCAL, model=str(path), task=IMAGE_TASK, device="cpu", **kw)


def settings_for(spec: ModelSpec, **gen: Any) -> ChatSettings:
    return ChatSettings(spec=spec, generation=GenerationSettings(**{"max_new_tokens": 8, "do_sample": False, **gen}))


def question(picture: str, text: str = "What is in this picture?", system: str = "Be brief.") -> list[Any]:
    return build_messages({"text": text, "files": [picture]}, [], system, IMAGE_TASK)


@pytest.fixture(scope="module")
def vlm(tiny_models: dict[str, Path]) -> tuple[local_vision.VisionChat, ModelSpec]:
    spec = spec_for(tiny_models["vlm"])
    return VISION.build(spec, None), spec


def reply(vlm: tuple[Any, ModelSpec], messages: list[Any], **gen: Any) -> str:
    chat, spec = vlm
    return joined_text(VISION.stream(chat, messages, settings_for(spec, **gen), threading.Event(), DeviceQueues()))


def test_the_registry_sends_local_image_chats_to_the_vision_module() -> None:
    assert backend_for(Backend.LOCAL, IMAGE_TASK) is VISION
    assert backend_for(Backend.LOCAL, "text-generation") is LOCAL


def test_local_reply_streams_and_depends_on_the_image(vlm: Any, pictures: dict[str, str]) -> None:
    chat, spec = vlm
    deltas = list(VISION.stream(chat, question(pictures["red"]), settings_for(spec), threading.Event(), DeviceQueues()))
    chunks = [d.text for d in deltas if d.text]
    assert len(chunks) >= 2, "token by token"
    last = deltas[-1]
    assert last.usage is not None and last.usage.counted_by == "tokenizer"
    assert last.finish_reason == "length" and last.usage.output_tokens == 8, "the default budget of 8 was used up"
    red = "".join(chunks)
    assert red.strip() and red == reply(vlm, question(pictures["red"])), "greedy: the same reply twice"
    assert reply(vlm, question(pictures["blue"])) != red


def test_history_images_reach_the_local_model(vlm: Any, pictures: dict[str, str]) -> None:
    def follow_up(picture: str) -> list[Any]:
        history = [
            {
                "role": "user",
                "content": [{"type": "file", "file": {"path": picture}}, {"type": "text", "text": "Look."}],
            },
            {"role": "assistant", "content": "I see it."},
        ]
        return build_messages({"text": "What color was it?", "files": []}, history, "", IMAGE_TASK)

    assert reply(vlm, follow_up(pictures["red"])) != reply(vlm, follow_up(pictures["blue"]))


def test_pipeline_chat_has_decoded_images_and_no_urls(pictures: dict[str, str]) -> None:
    chat = local_vision.to_pipeline_chat(question(pictures["red"]))
    assert [m["role"] for m in chat] == ["system", "user"]
    image, text = chat[1]["content"]
    assert image["type"] == "image" and image["image"].getpixel((0, 0)) == (255, 0, 0) and "url" not in image
    assert text == {"type": "text", "text": "What is in this picture?"}
    folded = local_vision.to_pipeline_chat([SystemMessage("S."), HumanMessage("Hi")], fold_system=True)
    assert folded == [{"role": "user", "content": [{"type": "text", "text": "S.\n\nHi"}]}]


def test_stop_ends_the_generate_thread(vlm: Any, pictures: dict[str, str]) -> None:
    chat, spec = vlm
    cancel = threading.Event()
    stream = VISION.stream(
        chat, question(pictures["red"]), settings_for(spec, max_new_tokens=5000), cancel, DeviceQueues()
    )
    assert next(stream)
    stream.close()  # what Stop does to the turn
    deadline = time.monotonic() + 30
    while any(t.name == local.GENERATE_THREAD_NAME for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cancel.is_set()
    assert not [t for t in threading.enumerate() if t.name == local.GENERATE_THREAD_NAME]


def test_a_text_only_model_is_refused_before_loading(tiny_models: dict[str, Path]) -> None:
    with pytest.raises(UnsupportedTaskError) as info:
        VISION.build(spec_for(tiny_models["chat"]), None)
    assert "llama" in info.value.message and "text-generation" in info.value.hint


def test_4bit_vision_model_loads_and_answers(tiny_models: dict[str, Path], pictures: dict[str, str]) -> None:
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    spec = spec_for(tiny_models["vlm"], quantization=Quantization(compute_dtype="float32"))
    chat = VISION.build(spec, None)
    assert chat.pipeline.model.is_loaded_in_4bit
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in chat.pipeline.model.modules())
    assert reply((chat, spec), question(pictures["red"])).strip()


@pytest.fixture
def vlm_proxy(serve_vlm: TransformersServe) -> Iterator[RecordingProxy]:
    if not serve_vlm.alive:
        serve_vlm.restart()
    with RecordingProxy(serve_vlm.url) as proxy:
        yield proxy


def test_endpoint_gets_image_url_data_parts_and_answers_like_the_local_pipeline(
    vlm: Any, vlm_proxy: RecordingProxy, pictures: dict[str, str]
) -> None:
    options = parse_options(["--backend", "endpoint", "--endpoint-url", vlm_proxy.url, "--task", IMAGE_TASK], {})
    chat_fn = make_chat_fn(ChatService(cache=ModelCache(1)), options)
    for color in ("red", "blue"):
        shown = list(chat_fn({"text": "What is in this picture?", "files": [pictures[color]]}, [], max_new_tokens=8))
        assert answer_text(shown[-1]) == reply(vlm, question(pictures[color], system="")), "same greedy reply"
    sent = [r.json for r in vlm_proxy.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 2
    content = sent[0]["messages"][-1]["content"]
    assert content[0]["type"] == "image_url"
    assert content[0]["image_url"]["url"] == question(pictures["red"])[-1].content[0]["image_url"]["url"]
    assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert content[1] == {"type": "text", "text": "What is in this picture?"}


def test_inference_providers_get_the_same_image_parts(hub_recorder: Recorder, pictures: dict[str, str]) -> None:
    """The provider route can't be reached from here; a loopback recorder stands in for it."""
    hub_recorder.route(
        "GET", "/api/models/org/vlm", json_response(provider_mapping_response("org/vlm", "together", "together/vlm"))
    )
    hub_recorder.route("POST", "/together/v1/chat/completions", chat_route_handler("A red square."))
    spec = ModelSpec(backend=Backend.PROVIDERS, model="org/vlm", provider="together", task=IMAGE_TASK)
    backend = backend_for(Backend.PROVIDERS, IMAGE_TASK)
    chat = backend.build(spec, SENTINEL_TOKEN)
    messages = question(pictures["red"])
    text = joined_text(backend.stream(chat, messages, ChatSettings(spec=spec), threading.Event(), DeviceQueues()))
    assert text == "A red square."
    body = next(r.json for r in hub_recorder.requests if r.path == "/together/v1/chat/completions")
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][1]["content"] == messages[-1].content
    assert body["messages"][1]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")


def test_an_image_without_text_is_a_message(tiny_models: dict[str, Path], pictures: dict[str, str]) -> None:
    options = parse_options(
        ["--backend", "local", "--model", str(tiny_models["vlm"]), "--task", IMAGE_TASK, "--device", "cpu"], {}
    )
    chat_fn = make_chat_fn(ChatService(cache=ModelCache(1)), options)
    shown = answer_text(list(chat_fn({"text": "", "files": [pictures["red"]]}, [], max_new_tokens=6))[-1])
    assert shown and not shown.startswith(("⚠", "◔"))
    empty = answer_text(list(chat_fn({"text": "  ", "files": []}, [], max_new_tokens=6))[-1])
    assert "Type a message" in empty


def test_the_token_is_not_kept_on_the_built_pipeline(tiny_models: dict[str, Path]) -> None:
    chat = VISION.build(spec_for(tiny_models["vlm"]), SENTINEL_TOKEN)
    pipe = chat.pipeline
    kept = [vars(pipe), vars(pipe.model.config), vars(pipe.processor), vars(pipe.processor.tokenizer)]
    assert SENTINEL_TOKEN not in repr(kept)
