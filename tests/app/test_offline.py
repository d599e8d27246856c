"""No network: the user learns it within seconds, in words about what they chose.

Each app here is `python app.py` with the Hub (HF_ENDPOINT) on a closed loopback port or a
name that does not resolve, and an empty Hugging Face cache. huggingface_hub retries a failed
connection for 24 s (1+2+4+8+8); a Hub repo ID must fail in under 5 s, and a model that is
in the cache must still load from it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from hfchat.reply import answer_text
from hfchat.testing.servers import free_port
from hfchat.updates import ERROR_MARK
from tests.fixtures.browser import AppProcess
from tests.fixtures.fakedns import PUBLIC_ADDRESS, FakeDNS

pytestmark = pytest.mark.timeout(300)

DNS_SITE = Path(__file__).resolve().parents[1] / "fixtures" / "dns_site"
HUB_REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
OFFLINE_WITHIN_S = 5.0


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens: connections are refused


def ask(app: AppProcess, message: str = "Hi", **settings: Any) -> tuple[str, float]:
    """One turn through `/chat`: the answer text and how long it took."""
    client = Client(app.url, verbose=False)
    started = time.monotonic()
    result = client.predict(message={"text": message, "files": []}, api_name="/chat", **settings)
    return answer_text(result), time.monotonic() - started


@pytest.mark.parametrize(
    "hub", [closed_port_url(), "http://hub.invalid"], ids=["connection-refused", "name-does-not-resolve"]
)
def test_a_hub_model_without_the_hub_fails_within_5_s_with_the_cache_message(
    hub: str, tmp_path: Path, launch_app: Callable[..., AppProcess]
) -> None:
    app = launch_app(
        "--backend", "local", "--model", HUB_REPO, "--device", "cpu",
        env={"HF_ENDPOINT": hub, "HF_HOME": str(tmp_path / "hf-home")},
    )  # fmt: skip
    shown, took = ask(app)
    assert "The Hugging Face Hub cannot be reached, and the model is not in the local cache." in shown, shown
    assert took < OFFLINE_WITHIN_S, f"the user waited {took:.1f} s to learn the Hub is out of reach"
    assert "Retrying in" not in app.log_text(), "no huggingface_hub retries"


def hf_cache_with(model_folder: Path, repo: str, home: Path) -> None:
    """`model_folder` laid out as huggingface_hub's cache keeps a download of `repo`."""
    entry = home / "hub" / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    shutil.copytree(model_folder, entry / "snapshots" / commit)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(commit)


def test_a_hub_model_in_the_cache_still_answers_without_the_hub(
    tmp_path: Path, tiny_models: dict[str, Path], launch_app: Callable[..., AppProcess]
) -> None:
    home = tmp_path / "hf-home"
    hf_cache_with(tiny_models["chat"], "hfchat-test/tiny-chat", home)
    app = launch_app(
        "--backend", "local", "--model", "hfchat-test/tiny-chat", "--device", "cpu", "--max-new-tokens", "8",
        env={"HF_ENDPOINT": closed_port_url(), "HF_HOME": str(home)},
    )  # fmt: skip
    shown, _ = ask(app)
    assert shown and ERROR_MARK not in shown, f"answered from the cache: {shown!r}"
    assert "Retrying in" not in app.log_text()


@pytest.mark.parametrize(
    ("answer", "why"),
    [([[PUBLIC_ADDRESS]], "the connection was refused"), ([[]], "its name does not resolve")],
    ids=["refused", "dns"],
)
def test_providers_without_a_network_say_inference_providers_cannot_be_reached(
    answer: list[list[str]], why: str, launch_app: Callable[..., AppProcess]
) -> None:
    """The user chose Inference Providers and set no endpoint URL: the message names the service."""
    dns = FakeDNS({"router.huggingface.co": answer}, routes={})  # a fake public address with no route: refused
    app = launch_app(
        "--backend", "providers", "--model", "deepseek-ai/DeepSeek-R1-0528",
        env={
            "HF_TOKEN": "hf_" + "x" * 34,
            "HF_ENDPOINT": closed_port_url(),
            "PYTHONPATH": str(DNS_SITE),
            "HFCHAT_TEST_DNS": dns.to_env(),
        },
    )  # fmt: skip
    shown, _ = ask(app)
    assert f"Inference Providers (router.huggingface.co) cannot be reached: {why}." in shown, shown
    assert "endpoint URL" not in shown and "endpoint's host" not in shown, "the user set no endpoint"
    assert "Retrying in" not in app.log_text()
