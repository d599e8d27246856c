"""Images attached to chat messages: where Gradio puts them, and how they reach a model.

Every backend gets an image as an OpenAI-style `image_url` content part holding a data URL,
so the same LangChain message works on endpoints and (decoded again) on the local pipeline.
Files are checked here, once: only real images, not too large, not too many.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from hfchat.errors import InputError

IMAGE_TASK: Final = "image-text-to-text"
"""The only task whose models read images; with any other task an image is refused."""

MAX_IMAGES = 4
"""Images sent with one request (the new message and the history together)."""

MAX_IMAGE_BYTES = 10 * 1024 * 1024
"""Per image file; larger uploads are refused before they are decoded."""

MAX_IMAGE_PIXELS = 40_000_000
"""Width x height; a small file can decode to a huge image (a decompression bomb)."""

_PASS_THROUGH = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
"""Formats every vision API reads as they are; others are converted to PNG."""

_DATA_URL_PREFIX = "data:image/"


def file_paths(content: Any) -> list[str]:
    """Paths of the files in a message's content, in any shape Gradio uses.

    The multimodal box sends `{"text": ..., "files": [path | {"path": ...}]}`; history
    holds `{"type": "file", "file": {"path": ...}}` parts (the browser) or bare
    `{"path": ...}` dicts (the API's own history), next to text parts and strings.
    """
    if content is None or isinstance(content, str):
        return []
    if isinstance(content, Mapping):
        if "files" in content:
            return [path for item in content.get("files") or [] for path in _file_path(item)]
        return _file_path(content)
    if isinstance(content, Iterable):
        return [path for part in content for path in file_paths(part)]
    return []


def _file_path(item: Any) -> list[str]:
    if isinstance(item, str):
        return [item]
    if isinstance(item, Mapping):
        if isinstance(item.get("file"), Mapping):
            return _file_path(item["file"])
        if isinstance(item.get("path"), str):
            return [item["path"]]
    path = getattr(item, "path", None)  # a gradio FileData object
    return [path] if isinstance(path, str) else []


def image_part(url: str) -> dict[str, Any]:
    """The OpenAI / LangChain content part for one image."""
    return {"type": "image_url", "image_url": {"url": url}}


def to_data_url(path: str) -> str:
    """The image at `path` as a data URL; raises InputError for anything that isn't a usable image."""
    from PIL import Image, UnidentifiedImageError

    name = Path(path).name
    file = Path(path)
    if not file.is_file():
        raise InputError(f"The attached file {name!r} is no longer available.", "Attach it again and resend.")
    size = file.stat().st_size
    if size > MAX_IMAGE_BYTES:
        raise InputError(
            f"The image {name!r} is {size / 2**20:.1f} MiB; the limit is {MAX_IMAGE_BYTES / 2**20:.0f} MiB.",
            "Attach a smaller or more compressed image.",
        )
    data = file.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise InputError(
                    f"The image {name!r} is {image.width}x{image.height} pixels; the limit is "
                    f"{MAX_IMAGE_PIXELS / 1e6:.0f} million pixels.",
                    "Attach a smaller image.",
                )
            image.load()  # a truncated or corrupt file fails here, not in the model
            fmt = image.format or ""
            if fmt not in _PASS_THROUGH:
                out = io.BytesIO()
                image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, format="PNG")
                data, fmt = out.getvalue(), "PNG"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as exc:
        raise InputError(
            f"The attached file {name!r} is not an image that can be read ({type(exc).__name__}).",
            "Only images (PNG, JPEG, WebP, GIF, ...) can be attached.",
        ) from None
    return f"data:{_PASS_THROUGH[fmt]};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> Any:
    """A PIL image from a data URL made by `to_data_url` (the local pipeline's input)."""
    from PIL import Image

    if not url.startswith(_DATA_URL_PREFIX) or ";base64," not in url:
        raise InputError("Only images attached to the chat can be sent to a local model.", "Attach the image.")
    try:
        data = base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise InputError("An attached image could not be decoded.", "Attach it again.") from None
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def refuse_images(task: str) -> InputError:
    """The error for an image sent to a text-only configuration."""
    return InputError(
        f"This configuration is text-only (task {task}): it cannot read images.",
        f"To send images, set Task to {IMAGE_TASK} and choose a vision-language model "
        "(or an endpoint serving one); or send the message without the image.",
    )


def check_count(count: int) -> None:
    """Refuse a single message with more images than one request may carry."""
    if count > MAX_IMAGES:
        raise InputError(
            f"{count} images are attached; at most {MAX_IMAGES} can be sent at once.",
            f"Remove {count - MAX_IMAGES} of them and send again.",
        )
