"""Flags and HFCHAT_* variables set the app's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfchat.cli import DEFAULT_LOCAL_MODEL, DEFAULT_REMOTE_MODEL, parse_options
from hfchat.config import Backend

ROOT = Path(__file__).resolve().parents[2]


def test_without_token_defaults_to_small_local_model() -> None:
    options = parse_options([], {})
    assert options.sidebar.backend is Backend.LOCAL
    assert options.sidebar.model == DEFAULT_LOCAL_MODEL


@pytest.mark.parametrize("var", ["HF_TOKEN", "HUGGINGFACEHUB_API_TOKEN"])
def test_with_token_defaults_to_inference_providers(var: str) -> None:
    options = parse_options([], {var: "hf_x"})
    assert options.sidebar.backend is Backend.PROVIDERS
    assert (options.sidebar.model, options.sidebar.provider) == (DEFAULT_REMOTE_MODEL, "auto")


def test_environment_variables_set_defaults_and_flags_win() -> None:
    env = {"HFCHAT_BACKEND": "endpoint", "HFCHAT_ENDPOINT_URL": "http://127.0.0.1:8000", "HFCHAT_CACHE_SIZE": "3"}
    options = parse_options([], env)
    assert options.sidebar.backend is Backend.ENDPOINT
    assert options.sidebar.endpoint_url == "http://127.0.0.1:8000"
    assert options.cache_size == 3
    options = parse_options(["--cache-size", "5", "--load-in-4bit", "--served-model", "m"], env)
    assert (options.cache_size, options.sidebar.load_in_4bit, options.sidebar.served_model) == (5, True, "m")


def test_host_port_share_and_task_flags() -> None:
    options = parse_options(["--host", "0.0.0.0", "--port", "9000", "--share", "--task", "text-generation"], {})
    assert (options.host, options.port, options.share, options.sidebar.task) == (
        "0.0.0.0",
        9000,
        True,
        "text-generation",
    )
    assert parse_options([], {"SPACE_ID": "me/space"}).host == "0.0.0.0"


def test_bad_flag_values_exit_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(["--cache-size", "0"], {})
    assert "must be at least 1" in capsys.readouterr().err


def test_bad_environment_choices_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options([], {"HFCHAT_PROVIDER": "nebius-typo"})
    err = capsys.readouterr().err
    assert "HFCHAT_PROVIDER='nebius-typo' is not one of" in err and "together" in err
    with pytest.raises(SystemExit):
        parse_options(["--provider", "nebius-typo"], {})


def test_concurrency_limits_are_chosen_per_backend_and_configurable() -> None:
    """Remote chats run many at once; local generations take turns per device (see fairqueue)."""
    options = parse_options([], {})
    assert options.concurrency >= 16, "Gradio's default of 1 would serialise remote calls"
    assert options.local_concurrency == 1
    options = parse_options(["--local-concurrency", "2"], {"HFCHAT_CONCURRENCY": "64"})
    assert (options.concurrency, options.local_concurrency) == (64, 2)
    with pytest.raises(SystemExit):
        parse_options(["--local-concurrency", "0"], {})


def test_retry_and_limit_flags_and_variables() -> None:
    env = {"HFCHAT_RETRIES": "4", "HFCHAT_RETRY_MAX_WAIT": "2.5", "HFCHAT_MAX_MESSAGE_CHARS": "100"}
    options = parse_options(["--retry-backoff", "0.2", "--max-history-chars", "0"], env)
    assert (options.retry.retries, options.retry.backoff, options.retry.max_wait) == (4, 0.2, 2.5)
    assert (options.limits.max_message_chars, options.limits.max_history_chars) == (100, 0)
    assert parse_options(["--retries", "0"], env).retry.retries == 0


@pytest.mark.parametrize(
    "argv", [["--retries", "-1"], ["--retry-max-wait", "nan"], ["--retry-backoff", "1e9"], ["--max-message-chars", "0"]]
)
def test_bad_retry_and_limit_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_options(argv, {})
    assert argv[0] in capsys.readouterr().err


def test_embeddings_take_a_url_or_a_repo_id_and_default_to_bm25(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_options([], {}).embeddings == ""
    assert parse_options(["--embeddings", " http://127.0.0.1:8080 "], {}).embeddings == "http://127.0.0.1:8080"
    assert parse_options([], {"HFCHAT_EMBEDDINGS": "BAAI/bge-small-en-v1.5"}).embeddings == "BAAI/bge-small-en-v1.5"
    with pytest.raises(SystemExit):
        parse_options(["--embeddings", "not a model"], {})
    assert "expected an http(s) URL of an embeddings server or a Hub repo ID" in capsys.readouterr().err
