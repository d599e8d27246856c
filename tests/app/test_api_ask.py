"""`/chat` with a plain string and the stateless `/ask`, through gradio_client against
`python app.py` on the real SmolLM2 (greedy, given explicitly: the app's default samples)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from hfchat.reply import answer_text
from hfchat.updates import SPEED_MARK
from tests.app.test_api_client import run_readme
from tests.fixtures.browser import AppProcess

GREEDY = {"do_sample": False, "max_new_tokens": 24}
QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def app(real_model: Path) -> Iterator[AppProcess]:
    args = ["--backend", "local", "--model", str(real_model), "--device", "cpu", "--max-new-tokens", "24"]
    with AppProcess(*args) as running:
        yield running


def client(app: AppProcess) -> Client:
    return Client(app.url, verbose=False)


def test_chat_takes_a_plain_string_positional_or_named(app: AppProcess) -> None:
    positional = client(app).predict(QUESTION, api_name="/chat", **GREEDY)
    assert "Paris" in answer_text(positional), positional
    named = client(app).predict(message=QUESTION, api_name="/chat", **GREEDY)
    assert answer_text(named) == answer_text(positional)
    boxed = client(app).predict(message={"text": QUESTION, "files": []}, api_name="/chat", **GREEDY)
    assert answer_text(boxed) == answer_text(positional)


def test_chat_bad_setting_is_named_not_gradios_generic_error(app: AppProcess) -> None:
    reply = client(app).predict(QUESTION, api_name="/chat", max_new_tokens=0)
    text = answer_text(reply)
    assert "max_new_tokens" in text and "greater than or equal to 1" in text, reply
    assert "upstream Gradio app" not in text


def test_chat_bad_message_shape_is_a_readable_error(app: AppProcess) -> None:
    with pytest.raises(AppError) as raised:
        client(app).predict(message=["not", "a", "message"], api_name="/chat")
    assert "message: expected a string" in str(raised.value)
    assert "verbose error reporting" not in str(raised.value)
    with pytest.raises(AppError, match=r"handle_file"):  # a bare path could name any server file
        client(app).predict(message={"text": "hi", "files": ["/etc/hostname"]}, api_name="/chat")


def test_chat_files_still_come_through_handle_file(app: AppProcess, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "dot.png"
    Image.new("RGB", (4, 4), "red").save(picture)
    reply = client(app).predict(message={"text": "hi", "files": [handle_file(str(picture))]}, api_name="/chat")
    # The text-only model refuses the image by name: the upload reached the turn.
    assert "text-only" in answer_text(reply), reply


def test_ask_returns_the_answer_thinking_and_figures(app: AppProcess) -> None:
    answer, thinking, figures = client(app).predict(QUESTION, api_name="/ask", **GREEDY)
    assert "Paris" in answer and SPEED_MARK not in answer
    assert thinking == ""
    assert figures["backend"] == "local" and figures["output_tokens"] >= 1
    assert figures["finish_reason"] in ("stop", "length")


def test_ask_is_stateless(app: AppProcess) -> None:
    one = client(app)
    first = one.predict("My name is Zorblax. Say hello to me.", api_name="/ask", **GREEDY)[0]
    second = one.predict("My name is Zorblax. Say hello to me.", api_name="/ask", **GREEDY)[0]
    assert first == second, "the same client, the same greedy call: no history in between"
    assert (
        one.predict("What is my name?", api_name="/ask", **GREEDY)[0]
        == (client(app).predict("What is my name?", api_name="/ask", **GREEDY)[0])
    ), "the earlier calls left nothing behind in the session"


def test_ask_honours_the_history(app: AppProcess) -> None:
    history = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ]
    alone = client(app).predict("Repeat your last answer word for word.", api_name="/ask", **GREEDY)[0]
    after = client(app).predict("Repeat your last answer word for word.", history=history, api_name="/ask", **GREEDY)[0]
    assert after != alone
    assert "Paris" in after


def test_ask_errors_are_readable(app: AppProcess) -> None:
    with pytest.raises(AppError, match=r"max_new_tokens"):
        client(app).predict(QUESTION, api_name="/ask", max_new_tokens=100000)
    with pytest.raises(AppError, match=r"history\[0\]\.role.*system_prompt"):
        client(app).predict(QUESTION, history=[{"role": "system", "content": "x"}], api_name="/ask")


def test_readme_ask_snippet_runs(app: AppProcess) -> None:
    lines = run_readme("HFCHAT_URL", app.url, 'api_name="/ask"')
    assert lines[0].startswith("Loaded as API: ")
    answer, figures = lines[1:3]
    assert answer.strip() and SPEED_MARK not in answer
    tokens, reason = figures.split()
    assert int(tokens) > 0 and reason in ("stop", "length")


def test_chat_reads_a_document_sent_through_handle_file(app: AppProcess, tmp_path: Path) -> None:
    """A document through `/chat`: the reply's messages start with its chip (the API client's
    history keeps it, with the text as data), the model answers from it, the Sources block
    names it, and the upload is removed once the turn has read it."""
    note = tmp_path / "note.md"
    note.write_text("# Travel notes\n\nThe capital of France is Paris.\n")
    uploads = Path("/tmp/gradio")
    before = {p for p in uploads.rglob("note.md")} if uploads.exists() else set()
    reply = client(app).predict(
        message={"text": "According to the notes, what is the capital of France?", "files": [handle_file(str(note))]},
        api_name="/chat",
        **GREEDY,
    )
    chip, *rest = reply
    assert chip["role"] == "user" and chip["metadata"]["id"] == "hfchat-document" and "note.md" in chip["content"]
    assert "Paris" in answer_text(rest), reply
    sources = [m for m in rest if (m.get("metadata") or {}).get("id") == "hfchat-sources"]
    assert sources and "note.md (sent whole)" in sources[0]["content"]
    after = {p for p in uploads.rglob("note.md")} if uploads.exists() else set()
    assert after <= before, f"the upload is removed after its turn: {after - before}"
