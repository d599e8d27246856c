"""Space and public-link behaviour: ZeroGPU, sign-in detection, --auth, the shared-token warning."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hfchat.backends import local
from hfchat.cli import parse_options
from hfchat.space import oauth_enabled, on_gpu, public_token_warning, zero_gpu
from tests.fixtures import SENTINEL_TOKEN
from tests.fixtures.browser import AppProcess

ROOT = Path(__file__).resolve().parents[2]


def generate() -> str:
    return "text"


@pytest.fixture
def spaces_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Callable[..., Any]]:
    """An importable `spaces` module whose GPU decorator records what it wrapped (the real package
    only works on ZeroGPU hardware)."""
    (tmp_path / "spaces.py").write_text(
        "wrapped = []\n"
        "def GPU(fn):\n"
        "    wrapped.append(fn)\n"
        "    def on_gpu(*args, **kwargs):\n"
        "        return fn(*args, **kwargs)\n"
        "    on_gpu.zero_gpu = True\n"
        "    return on_gpu\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    import spaces  # type: ignore[import-not-found]

    return spaces.wrapped  # type: ignore[no-any-return]


def test_zero_gpu_applies_spaces_gpu(spaces_package: list[Callable[..., Any]]) -> None:
    env = {"SPACES_ZERO_GPU": "true"}
    assert zero_gpu(env)
    wrapped = on_gpu(generate, env)
    assert wrapped is not generate and getattr(wrapped, "zero_gpu", False)
    assert spaces_package == [generate] and wrapped() == "text"


def test_not_zero_gpu_leaves_generation_alone(spaces_package: list[Callable[..., Any]]) -> None:
    assert not zero_gpu({})
    assert on_gpu(generate, {}) is generate
    assert on_gpu(generate, {"SPACES_ZERO_GPU": "false"}) is generate
    assert spaces_package == []


def test_zero_gpu_without_the_spaces_package_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces fails, find_spec says absent
    assert not zero_gpu({"SPACES_ZERO_GPU": "true"})
    assert on_gpu(generate, {"SPACES_ZERO_GPU": "true"}) is generate


def test_local_generation_is_the_unwrapped_function_here() -> None:
    assert local.LOCAL.stream is local._stream, "no ZeroGPU here: local generation runs as written"


def test_sign_in_only_where_the_space_enables_it() -> None:
    assert oauth_enabled({"OAUTH_CLIENT_ID": "abc"})
    assert not oauth_enabled({})
    assert parse_options([], {"OAUTH_CLIENT_ID": "abc"}).oauth
    assert not parse_options([], {}).oauth


def test_auth_flag_and_variable() -> None:
    assert parse_options(["--auth", "alice:s3cret:x"], {}).auth == ("alice", "s3cret:x")
    assert parse_options([], {"HFCHAT_AUTH": "bob:pw"}).auth == ("bob", "pw")
    assert parse_options([], {}).auth is None


@pytest.mark.parametrize("bad", ["secret-no-colon", "alice:", ":secret-pw", " :secret-pw"])
def test_bad_auth_is_refused_clearly_without_echoing_it(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_options(["--auth", bad], {})
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--auth" in err and "user:password" in err
    assert "secret" not in err, "the value (maybe a password) is never echoed"


def test_public_token_warning_seams() -> None:
    env = {"HF_TOKEN": SENTINEL_TOKEN}
    share = parse_options(["--share"], env)
    assert share.public
    warning = public_token_warning(share.public, share.auth is not None, env)
    assert warning and "--auth" in warning and "sign in" in warning and SENTINEL_TOKEN not in warning
    assert public_token_warning(True, True, env) is None, "--auth protects the link"
    assert public_token_warning(True, False, {}) is None, "no server-side token, nothing to spend"
    assert public_token_warning(False, False, env) is None, "on loopback only you can reach it"
    on_space = parse_options([], {**env, "SPACE_ID": "someone/hfchat"})
    assert public_token_warning(on_space.public, False, env)


def _app_log(*flags: str, env: dict[str, str | None]) -> str:
    with AppProcess(*flags, env=env) as app:
        return app.log_text()


def test_startup_warns_when_public_with_a_server_token() -> None:
    """As started from a shell: `--public` stands in for `--share`, which needs the internet."""
    log = _app_log("--public", "--backend", "endpoint", env={"HF_TOKEN": SENTINEL_TOKEN})
    assert "anyone who opens it spends that token" in log
    assert SENTINEL_TOKEN not in log
    quiet = _app_log("--public", "--backend", "endpoint", env={"HF_TOKEN": SENTINEL_TOKEN, "HFCHAT_AUTH": "alice:pass"})
    assert "spends that token" not in quiet and "alice:pass" not in quiet
