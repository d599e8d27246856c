"""Errors from the stack become messages that say how to fix the problem."""

from __future__ import annotations

import httpx
import pytest
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from hfchat.errors import (
    AccessError,
    AuthError,
    ConnectionFailedError,
    EndpointTimeoutError,
    ModelNotFoundError,
    OfflineModeError,
    OutOfMemoryError,
    QuantizationUnavailableError,
    RateLimitError,
    RequestRejectedError,
    ServerError,
    translate,
)


def http_error(status: int, headers: dict[str, str] | None = None) -> HfHubHTTPError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request, text="server says no")
    return HfHubHTTPError(f"{status} error", response=response)


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, AuthError, "token"),
        (403, AccessError, "request access"),
        (404, ModelNotFoundError, "repo ID"),
        (422, RequestRejectedError, "setting"),
        (400, RequestRejectedError, "setting"),
        (429, RateLimitError, "Try again in 7 s"),
        (500, ServerError, "send again"),
        (503, ServerError, "loading"),
    ],
)
def test_http_statuses(status: int, kind: type, words: str) -> None:
    error = translate(http_error(status, {"Retry-After": "7"}), "The endpoint")
    assert isinstance(error, kind)
    assert words in error.markdown()
    assert error.markdown().startswith("⚠ **")


def test_rate_limit_keeps_retry_after() -> None:
    error = translate(http_error(429, {"Retry-After": "3"}))
    assert isinstance(error, RateLimitError) and error.retry_after == 3.0


def test_transport_faults() -> None:
    refused = translate(httpx.ConnectError("[Errno 111] Connection refused"))
    assert isinstance(refused, ConnectionFailedError) and "refused" in refused.message
    dns = translate(httpx.ConnectError("[Errno -2] Name or service not known"))
    assert isinstance(dns, ConnectionFailedError) and "resolve" in dns.message
    assert isinstance(translate(httpx.ReadTimeout("timed out")), EndpointTimeoutError)
    cut = translate(httpx.RemoteProtocolError("peer closed connection"))
    assert isinstance(cut, ConnectionFailedError) and "middle" in cut.message


def test_offline_mode_names_the_variable() -> None:
    error = translate(OfflineModeIsEnabled("offline"))
    assert isinstance(error, OfflineModeError) and "HF_HUB_OFFLINE" in str(error)


def test_memory_and_quantization() -> None:
    assert "4-bit" in translate(MemoryError()).hint
    error = translate(ImportError("Using bitsandbytes 4-bit quantization requires bitsandbytes"))
    assert isinstance(error, QuantizationUnavailableError) and "pip install bitsandbytes" in error.hint
    assert isinstance(translate(RuntimeError("CUDA out of memory. Tried to allocate")), OutOfMemoryError)


def test_missing_model_folder() -> None:
    error = translate(OSError("nope is not a local folder and is not a valid model identifier"))
    assert isinstance(error, ModelNotFoundError)


def test_inference_providers_without_a_token_says_where_to_put_one() -> None:
    from hfchat.errors import MissingTokenError

    exc = ValueError("You must provide an api_key to work with auto API or log in with `hf auth login`.")
    error = translate(exc, "Inference Providers (auto)")
    assert isinstance(error, MissingTokenError) and "token box" in error.hint


def test_a_repo_id_typo_is_a_missing_model_not_a_missing_token() -> None:
    """transformers' message for an unknown repo also mentions `hf auth login`."""
    exc = OSError(
        "nobody/no-such-model is not a local folder and is not a valid model identifier listed on "
        "'https://huggingface.co/models'\nIf this is a private repository, make sure to pass a token having "
        "permission to this repo either by logging in with `hf auth login` or by passing `token=<your_token>`"
    )
    error = translate(exc, "The local model nobody/no-such-model")
    assert isinstance(error, ModelNotFoundError) and "nobody/no-such-model" in error.message


def _refused(url: str, text: str) -> httpx.ConnectError:
    return httpx.ConnectError(text, request=httpx.Request("POST", url))


def test_providers_without_a_network_name_inference_providers_not_an_endpoint() -> None:
    """The user chose Inference Providers and set no endpoint: the message says so."""
    dns = translate(
        _refused(
            "https://router.huggingface.co/v1/chat/completions", "router.huggingface.co: the name does not resolve"
        ),
        "Inference Providers (auto) for org/model",
    )
    assert isinstance(dns, ConnectionFailedError)
    assert dns.message == "Inference Providers (router.huggingface.co) cannot be reached: its name does not resolve."
    assert "endpoint URL" not in str(dns) and "internet connection" in dns.hint and "Local" in dns.hint


def test_an_unreachable_hub_is_named_the_hub() -> None:
    from huggingface_hub import constants

    refused = translate(_refused(f"{constants.ENDPOINT}/api/models/org/model", "[Errno 111] Connection refused"))
    assert refused.message.startswith("The Hugging Face Hub (") and "connection was refused" in refused.message
    assert "endpoint URL" not in str(refused)


def test_an_unreachable_custom_endpoint_still_points_at_its_url() -> None:
    dns = translate(
        _refused("http://my-server.invalid:8000/v1/chat/completions", "[Errno -2] Name or service not known")
    )
    assert dns.message == "The endpoint's host name does not resolve." and "endpoint URL" in dns.hint
