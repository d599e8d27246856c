"""The offline notice's Gradio-free parts: finding the packaged GGUF, and what needs the Hub."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfchat.config import gguf_file
from hfchat.offline import SMOLLM2_GGUF, SMOLLM2_PACKAGE, needs_hub, packaged_gguf
from hfchat.settings import SidebarSettings


def test_the_packaged_gguf_is_found_without_importing_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert packaged_gguf() is None, "not installed here"
    package = tmp_path / SMOLLM2_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('llm is not installed')")  # as without its deps
    (package / SMOLLM2_GGUF).write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert packaged_gguf() == package / SMOLLM2_GGUF


def test_what_needs_the_hub(tmp_path: Path) -> None:
    assert needs_hub(SidebarSettings(backend="providers", model="org/model"))
    assert needs_hub(SidebarSettings(backend="local", model="hfchat-test/not-cached"))
    assert not needs_hub(SidebarSettings(backend="local", model=str(tmp_path)))
    assert not needs_hub(SidebarSettings(backend="endpoint", endpoint_url="http://127.0.0.1:8000"))


def test_a_gguf_is_a_file_or_the_one_in_a_folder_without_config(tmp_path: Path) -> None:
    one = tmp_path / "m.gguf"
    one.write_bytes(b"GGUF")
    assert gguf_file(str(one)) == one and gguf_file(str(tmp_path)) == one
    (tmp_path / "n.gguf").write_bytes(b"GGUF")
    assert gguf_file(str(tmp_path)) is None, "two: the user must name one"
    (tmp_path / "config.json").write_text("{}")
    assert gguf_file(str(tmp_path)) is None, "a transformers folder loads as one"
