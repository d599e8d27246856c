"""Local loading on a public deployment: off unless allowed, sizes read before any download."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import parse_options
from hfchat.config import Backend, ModelSpec
from hfchat.errors import LocalModelNotAllowedError
from hfchat.policy import (
    DeploymentPolicy,
    folder_param_count,
    format_params,
    internal_address,
    is_public,
    parse_param_count,
)
from hfchat.reply import answer_text
from hfchat.testing.servers import Recorder, chat_route_handler, json_response

TINY_PARAMS = 125_824  # the tiny models' parameter count, as PyTorch counts it


def last_text(fn: Any, message: str = "Hello", **kw: Any) -> str:
    """The final chat-window text of one turn."""
    return answer_text(list(fn(message, [], **kw))[-1])


@pytest.mark.parametrize(
    ("text", "count"),
    [("2B", 2 * 10**9), ("1.5b", 1_500_000_000), ("500M", 500 * 10**6), ("135m", 135 * 10**6), ("7e9", 7 * 10**9)],
)
def test_param_counts_parse(text: str, count: int) -> None:
    assert parse_param_count(text) == count
    assert parse_param_count(str(count)) == count


@pytest.mark.parametrize("bad", ["", "two billion", "-1", "0", "2X", "1e999"])
def test_bad_param_counts_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="parameter count"):
        parse_param_count(bad)


def test_counts_read_well() -> None:
    assert [format_params(n) for n in (1_500_000_000, 135_000_000, TINY_PARAMS, 12)] == ["1.5B", "135M", "126K", "12"]


def test_what_counts_as_a_public_deployment() -> None:
    assert not is_public("127.0.0.1", False, {})
    assert not is_public("localhost", False, {})
    assert is_public("127.0.0.1", False, {"SPACE_ID": "me/demo"}), "a Space"
    assert is_public("127.0.0.1", True, {}), "a share link"
    assert is_public("0.0.0.0", False, {}), "every interface"
    assert is_public("127.0.0.1", False, {}, forced=True), "--public behind a reverse proxy"
    assert parse_options([], {"SPACE_ID": "me/demo"}).public
    assert parse_options(["--share"], {}).public
    assert parse_options(["--public"], {}).public
    assert not parse_options([], {}).public


def test_flags_and_variables_configure_the_policy() -> None:
    options = parse_options(["--local-models", "a/b, c/d", "--max-local-params", "2B"], {"SPACE_ID": "me/x"})
    assert options.deployment_policy == DeploymentPolicy(True, frozenset({"a/b", "c/d"}), 2 * 10**9)
    env = {"SPACE_ID": "me/x", "HFCHAT_LOCAL_MODELS": "e/f", "HFCHAT_MAX_LOCAL_PARAMS": "500M"}
    assert parse_options([], env).deployment_policy == DeploymentPolicy(True, frozenset({"e/f"}), 500 * 10**6)


def test_bad_ceiling_flag_exits_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--max-local-params", "lots"], {})
    assert "parameter count such as 2B" in capsys.readouterr().err


def test_folder_count_comes_from_the_safetensors_headers(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    assert folder_param_count(tiny_models["chat"]) == TINY_PARAMS
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    for i in (1, 2):
        shutil.copy(tiny_models["chat"] / "model.safetensors", sharded / f"model-0000{i}-of-00002.safetensors")
    assert folder_param_count(sharded) == 2 * TINY_PARAMS
    assert folder_param_count(tmp_path / "nothing-here") is None


@pytest.fixture
def local_options(tiny_models: dict[str, Path]) -> Any:
    def make(*flags: str, env: dict[str, str] | None = None) -> Any:
        argv = ["--backend", "local", "--model", str(tiny_models["chat"]), "--device", "cpu", "--max-new-tokens", "4"]
        return parse_options([*argv, *flags], env or {})

    return make


def chat_under(options: Any) -> tuple[Any, ChatService]:
    service = ChatService(cache=ModelCache(1), policy=options.deployment_policy)
    return make_chat_fn(service, options), service


def test_public_deployment_refuses_local_models_unless_configured(local_options: Any) -> None:
    chat, service = chat_under(local_options(env={"SPACE_ID": "me/demo"}))
    text = last_text(chat)
    assert text.startswith("⚠ **Local model not allowed here.**")
    assert "--local-models" in text and "--max-local-params" in text, "the message says how to turn it on"
    assert len(service.cache) == 0 and service.cache.stats.builds == 0, "nothing was loaded"


def test_allow_list_lets_its_models_through(local_options: Any, tiny_models: dict[str, Path]) -> None:
    chat, service = chat_under(local_options("--share", "--local-models", str(tiny_models["chat"])))
    assert not last_text(chat).startswith("⚠")
    assert service.cache.stats.builds == 1
    other = last_text(chat, model=str(tiny_models["plain"]))
    assert other.startswith("⚠ **Local model not allowed here.**") and str(tiny_models["chat"]) in other


def test_folder_ceiling_on_a_private_deployment(local_options: Any) -> None:
    chat, service = chat_under(local_options("--max-local-params", "1000"))
    text = last_text(chat)
    assert "126K parameters" in text and "limit of 1K" in text and "--max-local-params" in text
    assert service.cache.stats.builds == 0
    chat, service = chat_under(local_options("--max-local-params", "1M"))
    assert not last_text(chat).startswith("⚠")


def test_public_deployment_never_loads_folders_outside_the_allow_list(local_options: Any) -> None:
    chat, service = chat_under(local_options("--public", "--max-local-params", "2B"))
    text = last_text(chat)
    assert "local folders outside its allow-list" in text
    assert service.cache.stats.builds == 0


def hub_metadata(repo_id: str, total: int | None) -> Any:
    """The Hub's model_info answer with (or without) its safetensors summary."""
    body: dict[str, Any] = {"_id": "0" * 24, "id": repo_id}
    if total is not None:
        body["safetensors"] = {"parameters": {"BF16": total}, "total": total}
    return json_response(body)


def test_hub_size_is_read_before_any_download(hub_recorder: Recorder, local_options: Any) -> None:
    hub_recorder.route("GET", "/api/models/big-org/huge", hub_metadata("big-org/huge", 70 * 10**9))
    chat, service = chat_under(local_options("--public", "--max-local-params", "2B"))
    text = last_text(chat, model="big-org/huge")
    assert text.startswith("⚠ **Local model not allowed here.**")
    assert "70B parameters" in text and "limit of 2B" in text and "--max-local-params" in text
    assert [r.path for r in hub_recorder.requests] == ["/api/models/big-org/huge"]
    assert hub_recorder.requests[0].query["expand"] == ["safetensors"]
    assert service.cache.stats.builds == 0


def test_hub_model_without_safetensors_is_refused(hub_recorder: Recorder, local_options: Any) -> None:
    hub_recorder.route("GET", "/api/models/old-org/bin-only", hub_metadata("old-org/bin-only", None))
    chat, _ = chat_under(local_options("--public", "--max-local-params", "2B"))
    text = last_text(chat, model="old-org/bin-only")
    assert "no safetensors weights" in text and "2B" in text
    assert not [r for r in hub_recorder.requests if "/resolve/" in r.path], "no file was fetched"


def test_hub_model_under_the_ceiling_goes_on_to_load(
    hub_recorder: Recorder, local_options: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    # File downloads use their own URL template (fixed at import): send them here too.
    template = hub_recorder.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    hub_recorder.route("GET", "/api/models/small-org/tiny", hub_metadata("small-org/tiny", 135 * 10**6))
    chat, _ = chat_under(local_options("--public", "--max-local-params", "2B"))
    text = last_text(chat, model="small-org/tiny")
    assert "Local model not allowed" not in text
    paths = [r.path for r in hub_recorder.requests]
    assert paths[0] == "/api/models/small-org/tiny", "size first"
    assert any("/resolve/" in p for p in paths[1:]), "then loading began (this Hub has no files, hence an error)"


def test_the_policy_covers_every_build_not_just_the_chat_box(tiny_models: dict[str, Path]) -> None:
    service = ChatService(cache=ModelCache(1), policy=DeploymentPolicy.of(public=True))
    spec = ModelSpec(backend=Backend.LOCAL, model=str(tiny_models["chat"]), device="cpu")
    with pytest.raises(LocalModelNotAllowedError):
        service.model_for(spec, None)
    endpoint = ModelSpec(backend=Backend.ENDPOINT, endpoint_url="http://8.8.8.8:9")
    DeploymentPolicy.of(public=True).check(endpoint, None)  # a public endpoint: the local rules don't apply


def test_no_control_or_api_parameter_offers_remote_code() -> None:
    fn = make_chat_fn(ChatService(), parse_options([], {}))
    assert not [name for name in fn.__code__.co_varnames if "remote" in name]


def with_remote_code(model_dir: Path, dest: Path, marker: Path, model_type: str | None = None) -> Path:
    """A copy of a tiny model whose config and tokenizer point at code that would leave `marker`."""
    shutil.copytree(model_dir, dest)
    (dest / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass Evil: pass\n")
    for name, auto in (("config.json", "AutoModelForCausalLM"), ("tokenizer_config.json", "AutoTokenizer")):
        data = json.loads((dest / name).read_text())
        data["auto_map"] = {auto: "evil.Evil", "AutoConfig": "evil.Evil"}
        if model_type and name == "config.json":
            data["model_type"] = model_type
        (dest / name).write_text(json.dumps(data))
    return dest


@pytest.mark.parametrize("model_type", [None, "evil-custom"])
def test_code_shipped_with_a_model_never_runs(tiny_models: dict[str, Path], tmp_path: Path, model_type: str) -> None:
    marker = tmp_path / "remote-code-ran"
    custom = with_remote_code(tiny_models["chat"], tmp_path / "custom", marker, model_type)
    chat, _ = chat_under(parse_options(["--backend", "local", "--model", str(custom), "--device", "cpu"], {}))
    text = last_text(chat, max_new_tokens=4)
    assert not marker.exists(), "trust_remote_code stays off"
    if model_type:  # only custom code could run it: refused with a message, not a crash
        assert text.startswith("⚠")


@pytest.mark.parametrize(
    ("host", "internal"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("10.1.2.3", True),
        ("192.168.0.7", True),
        ("169.254.169.254", True),  # cloud metadata services
        ("::1", True),
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("no-such-host.invalid", False),  # does not resolve: the request fails on its own
    ],
)
def test_internal_addresses_are_recognised(host: str, internal: bool) -> None:
    assert (internal_address(host) is not None) == internal


def endpoint_chat(recorder: Recorder, *flags: str) -> tuple[Any, ChatService]:
    recorder.route("GET", "/v1/models", json_response({"data": [{"id": "m"}]}))
    recorder.route("POST", "/v1/chat/completions", chat_route_handler("hello from the endpoint"))
    options = parse_options(["--backend", "endpoint", *flags], {})
    service = ChatService(cache=ModelCache(1), policy=options.deployment_policy)
    return make_chat_fn(service, options), service


def test_public_deployment_refuses_visitor_endpoints_on_its_own_network(recorder: Recorder) -> None:
    chat, service = endpoint_chat(recorder, "--public", "--endpoint-url", "https://api.example.com")
    text = last_text(chat, endpoint_url=recorder.url)
    assert text.startswith("⚠ **Endpoint not allowed here.**") and "127.0.0.1" in text
    assert recorder.requests == [], "nothing was sent to it, not even the model list request"
    assert service.cache.stats.builds == 0


def test_operators_own_endpoint_and_private_deployments_are_allowed(recorder: Recorder) -> None:
    chat, _ = endpoint_chat(recorder, "--public", "--endpoint-url", recorder.url)
    assert last_text(chat) == "hello from the endpoint"
    chat, _ = endpoint_chat(recorder, "--endpoint-url", "https://api.example.com")
    assert last_text(chat, endpoint_url=recorder.url) == "hello from the endpoint"


@pytest.mark.parametrize(
    "content", [b"", b"\x05\x00", (8).to_bytes(8, "little") + b"not json", (2).to_bytes(8, "little") + b"[]"]
)
def test_unreadable_weights_are_called_corrupt_by_the_size_check(tmp_path: Path, content: bytes) -> None:
    from hfchat.errors import CorruptModelError

    (tmp_path / "model.safetensors").write_bytes(content)
    with pytest.raises(CorruptModelError, match=r"model\.safetensors"):
        folder_param_count(tmp_path)
