"""Attached images: every shape Gradio sends, and the checks before anything reaches a model."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from PIL import Image

from hfchat import images
from hfchat.errors import InputError
from hfchat.images import check_count, decode_data_url, file_paths, refuse_images, to_data_url


def picture(path: Path, color: tuple[int, int, int] = (255, 0, 0), fmt: str | None = None) -> str:
    Image.new("RGB", (8, 6), color).save(path, format=fmt)
    return str(path)


def test_file_paths_in_every_gradio_shape() -> None:
    assert file_paths({"text": "hi", "files": ["/a.png", {"path": "/b.png"}]}) == ["/a.png", "/b.png"]
    assert file_paths({"text": "hi"}) == []
    assert file_paths("hi") == [] and file_paths(None) == []
    browser = [{"type": "file", "file": {"path": "/c.png", "mime_type": "image/png"}}, {"type": "text", "text": "x"}]
    assert file_paths(browser) == ["/c.png"]
    api_history = [{"path": "/d.png"}, "look"]
    assert file_paths(api_history) == ["/d.png"]


def test_png_passes_through_as_a_data_url(tmp_path: Path) -> None:
    path = picture(tmp_path / "red.png")
    url = to_data_url(path)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == Path(path).read_bytes()
    assert decode_data_url(url).getpixel((0, 0)) == (255, 0, 0)


def test_jpeg_keeps_its_type_and_other_formats_become_png(tmp_path: Path) -> None:
    assert to_data_url(picture(tmp_path / "a.jpg")).startswith("data:image/jpeg;base64,")
    bmp = to_data_url(picture(tmp_path / "b.bmp", (0, 0, 255)))
    assert bmp.startswith("data:image/png;base64,")
    assert decode_data_url(bmp).getpixel((0, 0)) == (0, 0, 255)


def test_a_file_that_is_not_an_image_is_refused_by_name(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    with pytest.raises(InputError) as info:
        to_data_url(str(notes))
    assert "notes.txt" in info.value.message and "Only images" in info.value.hint


def test_a_truncated_image_is_refused(tmp_path: Path) -> None:
    whole = tmp_path / "whole.png"
    Image.frombytes("L", (64, 64), bytes(range(256)) * 16).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.png"):
        to_data_url(str(cut))


def test_a_too_large_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(images.MAX_IMAGE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(InputError) as info:
        to_data_url(str(big))
    assert "10 MiB" in info.value.message and "smaller" in info.value.hint


def test_too_many_pixels_is_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.png"
    Image.new("1", (7000, 6000)).save(bomb)  # 42 MP, a few kB on disk
    assert bomb.stat().st_size < images.MAX_IMAGE_BYTES
    with pytest.raises(InputError, match="million pixels"):
        to_data_url(str(bomb))


def test_a_vanished_file_says_to_attach_it_again(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no longer available"):
        to_data_url(str(tmp_path / "gone.png"))


def test_count_limit_and_text_only_refusal_say_what_to_do() -> None:
    check_count(images.MAX_IMAGES)
    with pytest.raises(InputError) as info:
        check_count(images.MAX_IMAGES + 2)
    assert "Remove 2" in info.value.hint
    refusal = refuse_images("text-generation").markdown()
    assert refusal.startswith("⚠") and "text-only" in refusal and "image-text-to-text" in refusal


def test_only_data_urls_are_decoded() -> None:
    with pytest.raises(InputError):
        decode_data_url("http://example.com/cat.png")
    with pytest.raises(InputError):
        decode_data_url("data:image/png;base64,!!!not base64!!!")
