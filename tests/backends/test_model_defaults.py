"""A model's own sampling defaults (`hfchat.model_defaults`): from a local folder's
generation_config.json, and from a Hub repo's, fetched from a loopback stand-in for the Hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hfchat.model_defaults import FILENAME, model_defaults, sampling_values
from hfchat.testing.servers import Recorder, json_response

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_local_folder_gives_its_sampling_values_and_only_those(tmp_path: Path) -> None:
    config = {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 20, "eos_token_id": 2, "max_length": 99}
    (tmp_path / FILENAME).write_text(json.dumps(config))
    assert model_defaults(str(tmp_path)) == {"do_sample": True, "temperature": 0.6, "top_p": 0.9, "top_k": 20}


def test_a_folder_without_sampling_values_or_file_gives_nothing(tmp_path: Path, tiny_models: dict[str, Path]) -> None:
    assert model_defaults(str(tiny_models["chat"])) == {}, "token ids only: nothing to take"
    assert model_defaults(str(tmp_path)) == {}, "no generation_config.json"
    (tmp_path / FILENAME).write_text("{not json")
    assert model_defaults(str(tmp_path)) == {}
    assert model_defaults("") == {} and model_defaults("not a repo/../x") == {}


def test_values_the_panel_would_refuse_are_left_out() -> None:
    odd = {"temperature": 0, "top_p": 1.5, "top_k": 500, "do_sample": "yes"}
    assert sampling_values(odd) == {}
    assert sampling_values({"temperature": 1, "top_k": 40.0, "do_sample": False}) == {
        "temperature": 1.0,
        "top_k": 40,
        "do_sample": False,
    }


def _hub_file(recorder: Recorder, repo: str, body: bytes) -> None:
    headers = {"ETag": '"abc"', "X-Repo-Commit": COMMIT, "X-Linked-Size": str(len(body)), "X-Linked-Etag": '"abc"'}
    path = f"/{repo}/resolve/main/{FILENAME}"
    recorder.route("HEAD", path, (200, {**headers, "Content-Type": "application/json"}, b""))
    recorder.route("GET", path, (200, {**headers, "Content-Type": "application/json"}, body))


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_a_hub_repo_gives_its_file_s_sampling_values(hub_recorder: Recorder, hub_cache: Path) -> None:
    _hub_file(hub_recorder, "org/sampled", json.dumps({"temperature": 0.3, "top_p": 0.8, "do_sample": True}).encode())
    assert model_defaults("org/sampled") == {"temperature": 0.3, "top_p": 0.8, "do_sample": True}
    assert any(r.path.endswith(f"/org/sampled/resolve/main/{FILENAME}") for r in hub_recorder.requests)


def test_a_repo_without_the_file_or_an_unreachable_hub_gives_nothing_fast(
    hub_recorder: Recorder, hub_cache: Path
) -> None:
    started = time.monotonic()
    assert model_defaults("org/no-such-model") == {}, "404 from the Hub"
    hub_recorder.route("HEAD", "/org/slow", lambda req: (time.sleep(5), json_response({}))[1])
    assert model_defaults("org/slow", timeout=0.5) == {}, "no answer within the timeout"
    assert time.monotonic() - started < 4, "a slow Hub costs the panel the timeout, not more"
