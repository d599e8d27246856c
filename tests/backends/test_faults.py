"""The fault matrix: one row per real fault, each driven through the running app with
gradio_client and checked for the same four things:

1. the chat shows a clear message that says what to do;
2. the app still answers (the server, not just the handler, is up);
3. the history is unchanged: the next request carries the earlier turns exactly, and never
   the error notice;
4. the next message in the same session succeeds once the fault is gone.

Endpoint faults come from a recording proxy in front of a real `transformers serve` (or from
killing it); local faults from damaged copies of a tiny model on disk. The whole matrix runs
against the app launched in this process (so a row can break an import); a representative
set runs again against `python app.py` as its own process, whose survival is then checked.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.abc import MetaPathFinder
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client import Client

from hfchat.cli import parse_options
from hfchat.testing import answer_text
from hfchat.testing.app import running_app
from hfchat.testing.servers import Recorder, RecordingProxy, TransformersServe, chat_route_handler, free_port
from hfchat.updates import ERROR_MARK
from tests.fixtures.browser import AppProcess

APP_FLAGS = ["--device", "cpu", "--max-new-tokens", "8", "--timeout", "3"]
APP_FLAGS += ["--retries", "2", "--retry-backoff", "0.1", "--retry-max-wait", "1"]


class RunningApp:
    """An app under test: its URL, and whether its process is still running."""

    def __init__(self, url: str, alive: Callable[[], bool]) -> None:
        self.url = url
        self.alive = alive

    def answers(self) -> bool:
        """The process runs and the server still serves its page config."""
        return self.alive() and httpx.get(self.url + "config", timeout=30).status_code == 200

    def session(self) -> Client:
        """A new visitor with an empty history (gradio_client keeps it between calls, like a tab)."""
        return Client(self.url, verbose=False)


def allowed_roots(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return ["--local-dirs", f"{tiny_models['chat'].parent},{tmp_path_factory.getbasetemp()}"]


@pytest.fixture(scope="module")
def app(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """The app in this process, so rows can break imports (bitsandbytes) with monkeypatch."""
    with running_app(parse_options([*APP_FLAGS, *allowed_roots(tiny_models, tmp_path_factory)], {})) as running:
        yield RunningApp(running.url, lambda: True)


@pytest.fixture(scope="module")
def app_process(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """`python app.py` as its own process: a fault that killed it would show."""
    flags = [*APP_FLAGS, *allowed_roots(tiny_models, tmp_path_factory), "--max-local-params", "200K"]
    with AppProcess(*flags) as process:
        yield RunningApp(process.url, lambda: process.alive)


def say(session: Client, message: str, **settings: Any) -> str:
    """One turn's answer or error (without its thinking and speed footer)."""
    return answer_text(session.predict(message={"text": message, "files": []}, api_name="/chat", **settings))


@dataclass
class Env:
    """What a row may use to inject its fault; `heal` undoes what cannot undo itself."""

    serve: TransformersServe
    proxy: RecordingProxy
    recorder: Recorder
    models: dict[str, Path]
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def endpoint(self) -> dict[str, Any]:
        return {"backend": "endpoint", "endpoint_url": self.proxy.url}

    def local(self, model: Path | str, **settings: Any) -> dict[str, Any]:
        return {"backend": "local", "model": str(model), "device": "cpu", **settings}

    def damaged_copy(self, name: str, damage: Callable[[Path], None]) -> Path:
        """A copy of the tiny chat model whose weights file `damage` changes."""
        folder = self.tmp_path / name
        shutil.copytree(self.models["chat"], folder)
        damage(folder / "model.safetensors")
        return folder

    def heal(self) -> None:
        self.proxy.reset()
        self.monkeypatch.undo()
        if not self.serve.alive:
            self.serve.restart()


def _truncate(weights: Path) -> None:
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


def _garble_header(weights: Path) -> None:
    data = bytearray(weights.read_bytes())
    data[8:24] = b"\x00garbage\xff\xfe\x00\x01!!!!"
    weights.write_bytes(bytes(data))


def _nan_weights(weights: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {name: torch.full_like(t, float("nan")) for name, t in load_file(weights).items()}
    save_file(tensors, weights, metadata={"format": "pt"})


class _HideBitsandbytes(MetaPathFinder):
    """bitsandbytes looks uninstalled, as on a machine without it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "bitsandbytes" or name.startswith("bitsandbytes."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


def _forget_bitsandbytes(env: Env) -> None:
    for name in [m for m in sys.modules if m.startswith("bitsandbytes")]:
        env.monkeypatch.delitem(sys.modules, name)


def _no_bitsandbytes(env: Env) -> dict[str, Any]:
    env.monkeypatch.setattr(sys, "meta_path", [_HideBitsandbytes(), *sys.meta_path])
    _forget_bitsandbytes(env)
    return env.local(env.models["chat"], load_in_4bit=True)


def _broken_bitsandbytes(env: Env) -> dict[str, Any]:
    """An install whose native library is missing: the package is found, importing it fails."""
    broken = env.tmp_path / "broken-site" / "bitsandbytes"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        'raise OSError("libbitsandbytes_cpu.so: cannot open shared object file: No such file or directory")\n'
    )
    env.monkeypatch.syspath_prepend(str(broken.parent))
    _forget_bitsandbytes(env)
    return env.local(env.models["chat"], load_in_4bit=True)


def _http(status: int, **headers: str) -> Callable[[Env], dict[str, Any]]:
    def inject(env: Env) -> dict[str, Any]:
        env.proxy.fail_next(
            status=status, body='{"error": "injected"}', headers=headers, times=None, path="/v1/chat/completions"
        )
        return env.endpoint

    return inject


def _kill_server(env: Env) -> dict[str, Any]:
    env.serve.stop()
    return env.endpoint


def _read_timeout(env: Env) -> dict[str, Any]:
    env.proxy.delay(10, times=1, path="/v1/chat/completions")
    return env.endpoint


def _cut_stream(env: Env) -> dict[str, Any]:
    env.proxy.cut_stream_after(3, path="/v1/chat/completions")
    return {**env.endpoint, "max_new_tokens": 40}


def _grow(weights: Path) -> None:
    """300K more parameters in the header and the data: too big for --max-local-params 200K."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = {**load_file(weights), "extra.weight": torch.zeros(300_000)}
    save_file(tensors, weights, metadata={"format": "pt"})


def _cuda_without_gpu(env: Env) -> dict[str, Any]:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    return env.local(env.models["chat"], device="cuda")


def _empty_reply(env: Env) -> dict[str, Any]:
    env.recorder.route("GET", "/v1/models", (404, {}, b""))
    env.recorder.route("POST", "/v1/chat/completions", chat_route_handler(""))
    return {"backend": "endpoint", "endpoint_url": env.recorder.url}


@dataclass(frozen=True)
class Fault:
    """One row: how to inject the fault, and words the message must contain (what happened
    and what to do). `partial`: the reply had started, so its text stays before the notice."""

    name: str
    inject: Callable[[Env], dict[str, Any]]
    shown: tuple[str, ...]
    partial: bool = False


MATRIX = [
    Fault("401 bad token", _http(401), ("Not authorized", "token")),
    Fault("403 gated repo", _http(403), ("Access denied", "request access")),
    Fault("404 unknown model", _http(404), ("Model not found", "Check the repo ID")),
    Fault("422 rejected parameter", _http(422), ("rejected the request", "Lower max_new_tokens")),
    Fault("400 bad request", _http(400), ("rejected the request (400)",)),
    Fault("429 rate limited", _http(429, **{"Retry-After": "60"}), ("Rate limited", "Try again in 60 s")),
    Fault("500 server error", _http(500), ("HTTP 500", "send again")),
    Fault("503 model loading", _http(503), ("503", "still be loading", "Wait a minute")),
    Fault("server killed", _kill_server, ("Server error", "send again")),
    Fault("read timeout", _read_timeout, ("Timed out", "wait a moment")),
    Fault("server dies mid-stream", _cut_stream, ("cut off", "send again"), partial=True),
    Fault(
        "connection refused",
        lambda env: {"backend": "endpoint", "endpoint_url": f"http://127.0.0.1:{free_port()}"},
        ("refused the connection", "Check the endpoint URL"),
    ),
    Fault(
        "DNS failure",
        lambda env: {"backend": "endpoint", "endpoint_url": "http://no-such-host.invalid:8000"},
        ("does not resolve", "Check the endpoint URL"),
    ),
    Fault("empty reply", _empty_reply, ("Empty reply", "max_new_tokens")),
    Fault(
        "missing local folder",
        lambda env: env.local(env.tmp_path / "no-such-model"),
        ("Invalid setting", "does not exist", "model"),
    ),
    Fault(
        "truncated safetensors",
        lambda env: env.local(env.damaged_copy("truncated", _truncate)),
        ("Corrupt model files", "Download the model again"),
    ),
    Fault(
        "garbled safetensors header",
        lambda env: env.local(env.damaged_copy("garbled", _garble_header)),
        ("Corrupt model files", "Download the model again"),
    ),
    Fault(
        "empty safetensors",
        lambda env: env.local(env.damaged_copy("empty", lambda w: w.write_bytes(b""))),
        ("Corrupt model files", "Download the model again"),
    ),
    Fault(
        "exception in the generate thread",
        lambda env: env.local(env.damaged_copy("nan", _nan_weights), do_sample=True),
        ("Generation failed", "NaN", "Turn do_sample off"),
    ),
    Fault("4-bit, bitsandbytes missing", _no_bitsandbytes, ("4-bit", "pip install bitsandbytes")),
    Fault("4-bit, bitsandbytes broken", _broken_bitsandbytes, ("4-bit", "cannot be loaded", "turn 4-bit")),
    Fault("CUDA without a GPU", _cuda_without_gpu, ("CUDA", "'cpu'")),
]


OVER_THE_SIZE_LIMIT = Fault(
    "model over --max-local-params",
    lambda env: env.local(env.damaged_copy("big", _grow)),
    ("over this deployment's limit", "--max-local-params", "Pick a smaller model"),
)
IN_A_PROCESS = [
    *(f for f in MATRIX if f.name in {"503 model loading", "server killed", "server dies mid-stream"}),
    *(f for f in MATRIX if "safetensors" in f.name or f.name == "exception in the generate thread"),
    OVER_THE_SIZE_LIMIT,
]
"""A representative set run against `python app.py` itself: the process must survive each.
Its --max-local-params also makes damaged weights meet the size check's header reader first."""


@pytest.fixture
def env(
    serve: TransformersServe,
    proxy: RecordingProxy,
    recorder: Recorder,
    tiny_models: dict[str, Path],
    tmp_path: Path,
) -> Iterator[Env]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        environment = Env(serve, proxy, recorder, tiny_models, tmp_path, monkeypatch)
        try:
            yield environment
        finally:
            environment.heal()


def chat_requests(proxy: RecordingProxy) -> list[dict[str, Any]]:
    return [r.json for r in proxy.requests if r.path.endswith("/chat/completions")]


def assert_survives(fault: Fault, app: RunningApp, env: Env) -> str:
    """Run one fault row in a fresh session and check the four things; return what was shown."""
    session = app.session()
    first = say(session, "Hi", **env.endpoint)
    assert first and ERROR_MARK not in first, "a healthy turn before the fault"
    shown = say(session, "Tell me more", **fault.inject(env))

    # 1. a clear message that says what to do
    assert ERROR_MARK in shown and "Traceback" not in shown, shown
    for words in fault.shown:
        assert words in shown, f"{fault.name}: {words!r} missing from {shown!r}"
    partial = shown.split(f"\n\n{ERROR_MARK}")[0]
    if fault.partial:
        assert partial and not shown.startswith(ERROR_MARK), "the partial reply is kept above the notice"
    else:
        assert shown.startswith(ERROR_MARK)

    # 2. the app is still up
    assert app.answers()

    # 3 and 4. once healed, the next message works, and carries the earlier turns unchanged
    env.heal()
    env.proxy.clear()
    after = say(session, "Again", **env.endpoint)
    assert after and ERROR_MARK not in after, f"{fault.name}: the next message failed: {after}"
    sent = [(m["role"], m["content"]) for m in chat_requests(env.proxy)[-1]["messages"]]
    expected = [("user", "Hi"), ("assistant", first.strip())]
    if fault.partial:
        expected += [("user", "Tell me more"), ("assistant", partial.strip())]
    assert sent == [*expected, ("user", "Again")], "the history is unchanged and no notice reaches the model"
    return shown


@pytest.mark.parametrize("fault", MATRIX, ids=[f.name for f in MATRIX])
def test_fault_matrix(fault: Fault, app: RunningApp, env: Env) -> None:
    assert_survives(fault, app, env)


@pytest.mark.parametrize("fault", IN_A_PROCESS, ids=[f.name for f in IN_A_PROCESS])
def test_fault_matrix_against_the_app_process(fault: Fault, app_process: RunningApp, env: Env) -> None:
    assert_survives(fault, app_process, env)


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"backend": "providers", "model": "../../etc"}, "is a local folder path; pick Local"),
        ({"backend": "providers", "model": "/tmp"}, "is a local folder path; pick Local"),
        ({"backend": "local", "model": "../../etc"}, "outside the folders"),
        ({"backend": "providers", "model": "https://huggingface.co/org/model"}, "not a valid Hugging Face repo ID"),
        ({"backend": "local", "model": "https://huggingface.co/org/model"}, "not a valid Hugging Face repo ID"),
        ({"backend": "providers", "model": "org/" + "m" * 97}, "not a valid Hugging Face repo ID"),
        ({"backend": "providers", "model": ""}, "enter a repo ID"),
        ({"backend": "local", "model": "  "}, "enter a repo ID"),
        ({"backend": "providers", "model": "deepseek-ai/DeepSeek-R1-0528".replace("e", "\u0435")}, "CYRILLIC"),
        ({"backend": "local", "model": "HuggingFaceTB/SmolLM2-135M-Instruct".replace("o", "\u03bf")}, "GREEK"),
    ],
    ids=[
        "traversal",
        "traversal-local",
        "folder-on-providers",
        "url",
        "url-local",
        "too-long",
        "empty",
        "blank-local",
        "cyrillic",
        "greek",
    ],
)
def test_bad_repo_ids_are_refused_before_any_hub_request(
    app: RunningApp, hub_recorder: Recorder, settings: dict[str, Any], words: str
) -> None:
    shown = say(app.session(), "Hi", **settings)
    assert shown.startswith("⚠ **Invalid setting.**") and "model" in shown and words in shown, shown
    assert "repo_type" not in shown and "(or the API call)" not in shown, "our words, not the library's"
    # gradio_client (the test's visitor, not the app) announces itself to the Hub once.
    sent = [r.target for r in hub_recorder.requests if r.path != "/api/telemetry/py_client/initiated"]
    assert sent == [], "refused before any network access"


def test_a_readable_folder_outside_the_allowed_roots_is_refused_unread(
    app: RunningApp, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    outside = Path(tempfile.mkdtemp(prefix="hfchat-outside-")) / "model"
    try:
        shutil.copytree(tiny_models["chat"], outside)
        opened: list[str] = []

        def audit(event: str, args: tuple[Any, ...]) -> None:
            if event in ("open", "os.listdir", "os.scandir") and str(outside) in str(args[0] if args else ""):
                opened.append(event)

        sys.addaudithook(audit)  # hooks can't be removed; this one only records
        shown = say(app.session(), "Hi", **{"backend": "local", "model": str(outside), "device": "cpu"})
        assert "outside the folders" in shown and "--local-dirs" in shown
        assert opened == [], "nothing under the refused folder was opened"
        link = tiny_models["chat"].parent / "hfchat-test-link"
        link.symlink_to(outside)
        try:
            shown = say(app.session(), "Hi", **{"backend": "local", "model": str(link), "device": "cpu"})
            assert "outside the folders" in shown, "a symlink inside a root cannot lead out of it"
        finally:
            link.unlink()
        inside = say(app.session(), "Hi", **{"backend": "local", "model": str(tiny_models["chat"]), "device": "cpu"})
        assert inside and "⚠" not in inside
    finally:
        shutil.rmtree(outside.parent)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 5),
        ("temperature", -0.5),
        ("temperature", "hot"),
        ("top_p", 0),
        ("top_k", 1.5),
        ("top_k", -1),
        ("max_new_tokens", -3),
        ("max_new_tokens", 10**9),
        ("max_new_tokens", "many"),
        ("repetition_penalty", 0),
        ("frequency_penalty", 9),
        ("seed", -7),
        ("seed", "x"),
        ("do_sample", "perhaps"),
    ],
)
def test_bad_numbers_through_the_api_are_refused_naming_the_field(
    app: RunningApp, proxy: RecordingProxy, field: str, value: Any
) -> None:
    session = app.session()
    shown = say(session, "Hi", backend="endpoint", endpoint_url=proxy.url, **{field: value})
    assert shown.startswith("⚠ **Invalid setting.**") and f"{field}:" in shown, shown
    assert chat_requests(proxy) == [], "nothing reached the server"
    assert ERROR_MARK not in say(session, "Hi", backend="endpoint", endpoint_url=proxy.url)
