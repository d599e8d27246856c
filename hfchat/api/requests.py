"""An OpenAI chat-completion request as an hfchat turn: which configuration (`model`), the
message, history and system prompt (`messages`), and the settings (the rest).

Gradio-free and server-free: plain data in, `Turn` or `ApiError` out. Every request field is
one of: honoured (mapped to a setting of `hfchat.settings`, validated by that setting's own
declaration), refused when set to anything but its neutral value (a 400 naming it, never
dropped silently), or ignored by design (`IGNORED`, each with its reason).
"""

from __future__ import annotations

import base64
import binascii
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hfchat.config import Backend, display_url
from hfchat.images import MAX_IMAGE_BYTES, MAX_IMAGES
from hfchat.presets import BUILTIN_PRESETS
from hfchat.providers import AUTO
from hfchat.settings import SETTINGS, SidebarSettings, applies


@dataclass
class ApiError(Exception):
    """An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None
    retry_after: float | None = None

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def bad_request(param: str, message: str) -> ApiError:
    return ApiError(400, f"{param}: {message}", param=param)


# -- model ids ---------------------------------------------------------------------------


def model_id(values: SidebarSettings) -> str | None:
    """The id a configuration is called by: `owner/name` or `owner/name:provider` (the router's
    own suffix) for Inference Providers, `local:<repo or folder>` (`:4bit` when loaded in 4-bit),
    `endpoint:<served model or host>` for a configured endpoint; None for one that cannot be
    called (an endpoint without a URL, a configuration without a model)."""
    if values.backend is Backend.ENDPOINT:
        if not values.endpoint_url:
            return None
        return f"endpoint:{values.served_model or display_url(values.endpoint_url).split('://', 1)[-1]}"
    if not values.model:
        return None
    if values.backend is Backend.LOCAL:
        return f"local:{values.model}" + (":4bit" if values.load_in_4bit else "")
    return values.model if values.provider == AUTO else f"{values.model}:{values.provider}"


@dataclass(frozen=True)
class Listed:
    """One callable configuration: its id, where it comes from, and its settings."""

    id: str
    source: str
    """"default" (the app's own configuration) or the preset's name."""
    values: SidebarSettings


def listed_models(default: SidebarSettings) -> list[Listed]:
    """What `GET /v1/models` lists: the app's default configuration first, then the built-in
    presets; an id listed twice keeps its first configuration."""
    found: dict[str, Listed] = {}
    for source, values in (("default", default), *((p.name, p.values) for p in BUILTIN_PRESETS)):
        if (mid := model_id(values)) is not None and mid not in found:
            found[mid] = Listed(mid, source, values)
    return list(found.values())


def find_model(requested: Any, listed: Sequence[Listed]) -> SidebarSettings:
    """The configuration of a listed id; a listed Inference Providers model may also be asked
    for with another provider's suffix (`owner/name:together`). Else a 404."""
    if not isinstance(requested, str) or not requested:
        raise bad_request("model", "required: one of the ids GET /v1/models lists.")
    for entry in listed:
        if entry.id == requested:
            return entry.values
    model, _, provider = requested.rpartition(":")
    for entry in listed:
        same = entry.values.backend is Backend.PROVIDERS and bool(model) and entry.values.model == model
        if same and provider in (SETTINGS["provider"].choices or ()):
            return entry.values.model_copy(update={"provider": provider})
    raise ApiError(
        404,
        f"The model {requested!r} does not exist here; GET /v1/models lists the ids this server serves.",
        param="model",
        code="model_not_found",
    )


# -- request fields ----------------------------------------------------------------------

SETTING_OF = {
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
    "top_p": "top_p",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "top_k": "top_k",
    "repetition_penalty": "repetition_penalty",
}
"""Request fields that are one hfchat setting each (validated by its declaration). `top_k` and
`repetition_penalty` are not OpenAI's, but vLLM and TGI take them the same way."""

HANDLED = frozenset({"model", "messages", "stream", "stream_options", "temperature", "stop", "n", *SETTING_OF})
"""Fields honoured by the gateway itself (see `parse_request`)."""

IGNORED = {
    "user": "an end-user id for the provider's abuse monitoring; hfchat keeps no per-user records",
    "safety_identifier": "the same, under its newer name",
    "prompt_cache_key": "a cache-routing hint; hfchat's cache holds built models, keyed by configuration",
    "service_tier": "hfchat has no service tiers; every request is served the same way",
    "parallel_tool_calls": "meaningful only with tools, which are refused",
    "metadata": "tags for a stored completion; hfchat stores none (store=true is refused)",
}
"""Fields accepted and not used, each with why that is right rather than a silent drop."""

NEUTRAL: dict[str, Any] = {
    "presence_penalty": (0, 0.0),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "tools": ([],),
    "tool_choice": ("none",),
    "functions": ([],),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "audio": (),
    "modalities": (["text"],),
    "prediction": (),
    "reasoning_effort": (),
    "web_search_options": (),
    "verbosity": (),
    "store": (False,),
}
"""Fields refused unless absent, null or one of these values (which ask for nothing)."""

REFUSED_WHY = {
    "presence_penalty": "no backend here applies OpenAI's presence penalty",
    "logprobs": "token log-probabilities are not returned",
    "top_logprobs": "token log-probabilities are not returned",
    "logit_bias": "logit bias is not supported",
    "tools": "tool calling is not supported yet",
    "tool_choice": "tool calling is not supported yet",
    "functions": "function calling is not supported",
    "function_call": "function calling is not supported",
    "response_format": "only plain text replies are supported",
    "audio": "audio output is not supported",
    "modalities": "only text output is supported",
    "prediction": "predicted outputs are not supported",
    "reasoning_effort": "a model's reasoning effort cannot be set through hfchat",
    "web_search_options": "web search is not supported",
    "verbosity": "verbosity cannot be set through hfchat",
    "store": "hfchat never stores completions",
}


@dataclass
class Turn:
    """One request as `ChatService.respond` takes it, plus what the gateway applies itself."""

    model: str
    message: dict[str, Any]
    """The chat box's `{"text", "files"}`: the last user message."""
    history: list[dict[str, Any]]
    values: dict[str, Any]
    """The settings by API name: the configuration's, with the request's on top."""
    stream: bool = False
    include_usage: bool = False
    stop: tuple[str, ...] = ()
    folder: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    """Where the request's images were written for the turn; removed by `close()`."""

    def close(self) -> None:
        if self.folder is not None:
            self.folder.cleanup()


def parse_request(body: Any, listed: Sequence[Listed]) -> Turn:
    """The turn a request asks for, or an ApiError (400 naming the field, 404 for the model)."""
    if not isinstance(body, Mapping):
        raise ApiError(400, "The request body must be a JSON object.")
    known = HANDLED | set(IGNORED) | set(NEUTRAL)
    if unknown := sorted(set(body) - known):
        raise bad_request(unknown[0], "not a chat-completion field this server knows; remove it.")
    for name, allowed in NEUTRAL.items():
        if body.get(name) is not None and body[name] not in allowed:
            raise bad_request(name, f"not supported: {REFUSED_WHY[name]}. Remove it.")
    config = find_model(body.get("model"), listed)
    values: dict[str, Any] = config.model_dump(mode="json")
    sent = {k: v for k, v in body.items() if v is not None}
    if sent.get("n", 1) != 1:
        raise bad_request("n", "only one choice per request (n=1) is supported.")
    if "max_tokens" in sent and "max_completion_tokens" in sent and sent["max_tokens"] != sent["max_completion_tokens"]:
        raise bad_request("max_completion_tokens", "differs from max_tokens; send one of them.")
    for param, name in SETTING_OF.items():
        if param in sent:
            values[name] = _setting_value(param, name, sent[param])
            if not applies(name, config.backend) and sent[param] != SETTINGS[name].default:
                raise bad_request(param, f"not supported by the {config.backend.label} backend; remove it.")
    if "temperature" in sent:
        temperature = _setting_value("temperature", "temperature", sent["temperature"])
        values["do_sample"] = temperature > 0  # OpenAI's temperature 0 is greedy decoding
        if temperature > 0:
            values["temperature"] = temperature
    elif "top_p" in sent:
        values["do_sample"] = True  # nucleus sampling was asked for: it needs sampling on
    stream_options = sent.get("stream_options") or {}
    if not isinstance(stream_options, Mapping) or set(stream_options) - {"include_usage"}:
        raise bad_request("stream_options", "only include_usage is supported.")
    stream = sent.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("stream", "expected true or false.")
    turn = _messages(sent.get("messages"), values)
    turn.model = str(body["model"])
    turn.stream = stream
    turn.include_usage = bool(stream_options.get("include_usage"))
    turn.stop = _stops(sent.get("stop"))
    return turn


def _setting_value(param: str, name: str, value: Any) -> Any:
    """`value` checked by the setting's own declaration (type, range), named as the caller sent it."""
    setting = SETTINGS[name]
    try:
        return TypeAdapter(setting.annotation).validate_python(value)
    except ValidationError as exc:
        detail = str(exc.errors()[0].get("msg", "invalid")).removeprefix("Value error, ")
        low, high = setting.bound("ge"), setting.bound("le")
        bounds = f" (allowed: {low:g} to {high:g})" if low is not None and high is not None else ""
        raise bad_request(param, f"{detail}{bounds}.") from None


def _stops(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if stops is None:
        return ()
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise bad_request("stop", "a string or a list of up to 4 non-empty strings.")
    return tuple(stops)


def _messages(raw: Any, values: dict[str, Any]) -> Turn:
    """The history, the last user message and the system prompt, from OpenAI's messages."""
    if not isinstance(raw, list) or not raw:
        raise bad_request("messages", "a non-empty list of messages is required.")
    system: list[str] = []
    history: list[dict[str, Any]] = []
    folder: tempfile.TemporaryDirectory[str] | None = None
    images = 0
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, Mapping) or set(item) - {"role", "content", "name"}:
            keys = sorted(set(item) - {"role", "content", "name"}) if isinstance(item, Mapping) else []
            extra = f"{where}.{keys[0]}" if keys else where
            raise bad_request(extra, "a message has role, content and optionally name (tool calls are not supported).")
        role, content = item.get("role"), item.get("content")
        if role in ("system", "developer"):
            system.append(_text_only(content, where))
        elif role == "assistant":
            history.append({"role": "assistant", "content": _text_only(content, where)})
        elif role == "user":
            text, pictures = _user_parts(content, where)
            if pictures:
                images += len(pictures)
                if images > MAX_IMAGES:
                    raise bad_request(where, f"at most {MAX_IMAGES} images per request.")
                folder = folder or tempfile.TemporaryDirectory(prefix="hfchat-api-")
                paths = [_saved(data, Path(folder.name), f"{index}-{n}") for n, data in enumerate(pictures)]
                history.append({"role": "user", "content": [{"path": p} for p in paths] + ([text] if text else [])})
            else:
                history.append({"role": "user", "content": text})
        else:
            raise bad_request(f"{where}.role", f"{role!r} is not supported; use system, user or assistant.")
    if not history or history[-1]["role"] != "user":
        raise bad_request("messages", "the last message must be the user's (the question to answer).")
    last = history.pop()
    content = last["content"]
    if isinstance(content, str):
        message = {"text": content, "files": []}
    else:
        message = {
            "text": "".join(p for p in content if isinstance(p, str)),
            "files": [p["path"] for p in content if isinstance(p, dict)],
        }
    if system:
        values["system_prompt"] = "\n\n".join(system)
    return Turn(model="", message=message, history=history, values=values, folder=folder)


def _text_only(content: Any, where: str) -> str:
    text, pictures = _user_parts(content, where)
    if pictures:
        raise bad_request(f"{where}.content", "only user messages may hold images.")
    return text


def _user_parts(content: Any, where: str) -> tuple[str, list[bytes]]:
    """A message's text and its images' bytes; images only as data: URLs (this server fetches
    no URL a caller names)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise bad_request(f"{where}.content", "a string or a list of content parts.")
    texts: list[str] = []
    pictures: list[bytes] = []
    for n, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            url = part.get("image_url", {}).get("url") if isinstance(part.get("image_url"), Mapping) else None
            pictures.append(_data_url_bytes(url, f"{where}.content[{n}]"))
        else:
            raise bad_request(f"{where}.content[{n}]", "only text and image_url parts are supported.")
    return "\n".join(texts), pictures


def _data_url_bytes(url: Any, where: str) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:image/") or ";base64," not in url:
        raise bad_request(where, "images must be data:image/...;base64 URLs; this server fetches no URL.")
    encoded = url.split(";base64,", 1)[1]
    if len(encoded) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise bad_request(where, f"the image is larger than {MAX_IMAGE_BYTES // 2**20} MiB.")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(where, "the image's base64 cannot be decoded.") from None


def _saved(data: bytes, folder: Path, name: str) -> str:
    """The image written where the turn reads attachments; `hfchat.images` checks it there."""
    path = folder / f"image-{name}"
    path.write_bytes(data)
    return str(path)
