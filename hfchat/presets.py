"""Config presets: the sidebar's values saved under a name, and the built-in ones.

A preset holds every sidebar control except the token, so applying it always gives the
same sidebar. Values are checked field by field (types, ranges, choices) when a preset is
saved, imported or read back from the browser; whether the combination works (a model
that exists, a reachable endpoint) is checked when a message is sent, as for typed values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hfchat.config import Backend, display_url
from hfchat.errors import ConfigError
from hfchat.providers import AUTO
from hfchat.settings import STORED, SidebarSettings

NAME_MAX = 60
"""Longest preset name: it has to fit the dropdown."""

MAX_USER_PRESETS = 50
"""How many presets one browser keeps; they live in its local storage, which is small."""

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)


class ControlValues(SidebarSettings):
    """The value of every sidebar control but the secrets, by API name, as presets, exports
    and saved conversations keep them: the schema's `SidebarSettings`, checked the same way.

    Never has a token field: `extra="forbid"` refuses one, so a preset or an export that
    carries a token is rejected rather than silently applied. An endpoint URL loses any
    user:password and query string.
    """

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        """A URL's user:password or query may hold a key: never keep them."""
        if urlparse(value).hostname:
            return display_url(value)
        return "" if "@" in value else value

    def as_controls(self) -> dict[str, Any]:
        """Values for the sidebar, keyed by control name (the backend as its plain value)."""
        return {**self.model_dump(), "backend": self.backend.value}


CONTROL_NAMES = STORED
"""The controls a preset sets: every sidebar control except the secrets."""


class Preset(BaseModel):
    """A named set of control values."""

    model_config = _FROZEN
    name: str = Field(min_length=1, max_length=NAME_MAX)
    values: ControlValues


SEED_NOTES = "Seed notes (greedy)"
"""The built-in preset with the seed notes' exact settings: greedy decoding, repetition_penalty
1.03, 512 new tokens. The app itself samples by default (temperature 0.7, top_p 0.95), so Retry
and Compare show different replies; this is the one switch back to the notes' behaviour."""


def _builtin(name: str, **values: Any) -> Preset:
    return Preset(name=name, values=ControlValues(**values))


BUILTIN_PRESETS: tuple[Preset, ...] = (
    _builtin(
        "DeepSeek-R1 on Inference Providers",
        backend=Backend.PROVIDERS,
        model="deepseek-ai/DeepSeek-R1-0528",
        provider=AUTO,
    ),
    _builtin(
        "Zephyr 7B beta, local",
        backend=Backend.LOCAL,
        model="HuggingFaceH4/zephyr-7b-beta",
        repetition_penalty=1.03,
    ),
    _builtin(
        "Zephyr 7B beta, local 4-bit (NF4)",
        backend=Backend.LOCAL,
        model="HuggingFaceH4/zephyr-7b-beta",
        repetition_penalty=1.03,
        load_in_4bit=True,
        quant_type="nf4",
        compute_dtype="float16",
        double_quant=True,
    ),
    _builtin(
        "SmolLM2 135M Instruct, local CPU",
        backend=Backend.LOCAL,
        model="HuggingFaceTB/SmolLM2-135M-Instruct",
        device="cpu",
    ),
    _builtin(
        SEED_NOTES,
        backend=Backend.LOCAL,
        model="HuggingFaceH4/zephyr-7b-beta",
        max_new_tokens=512,
        do_sample=False,
        repetition_penalty=1.03,
    ),
)
"""The seed notes' three setups (max_new_tokens 512, repetition_penalty 1.03 where the backend
takes it) with the app's sampling defaults, a small model that answers on a CPU in seconds,
and the seed notes' exact settings: greedy, as they were (`SEED_NOTES`)."""


def _error(exc: ValidationError, what: str) -> ConfigError:
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ()))
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        if error.get("type") == "extra_forbidden":
            msg = "not a sidebar setting (a token is never stored in a preset or an export)"
        parts.append(f"{field}: {msg}" if field else msg)
    return ConfigError(f"{what}: {'; '.join(parts)}", "Correct or remove the field named above.")


def control_values(raw: Mapping[str, Any], what: str = "settings") -> ControlValues:
    """Validate raw control values (from the sidebar, a file or local storage)."""
    try:
        return ControlValues.model_validate(dict(raw))
    except ValidationError as exc:
        raise _error(exc, what) from None


def values_from_controls(raw: Mapping[str, Any]) -> ControlValues:
    """The sidebar's current values as ControlValues; the token and unknown controls are left out."""
    return control_values({name: raw[name] for name in CONTROL_NAMES if name in raw and raw[name] is not None})


def preset_names(user_presets: Sequence[Preset]) -> list[str]:
    """Built-ins first, then the user's own, in the order saved."""
    return [p.name for p in BUILTIN_PRESETS] + [p.name for p in user_presets]


def find_preset(name: str, user_presets: Sequence[Preset]) -> Preset:
    for preset in (*BUILTIN_PRESETS, *user_presets):
        if preset.name == name:
            return preset
    raise ConfigError(f"preset: there is no preset named {name!r}.", "Choose a preset from the list.", field="preset")


def check_name(name: str) -> str:
    """A usable preset name, stripped; built-in names are reserved."""
    name = (name or "").strip()
    if not name:
        raise ConfigError("preset name: enter a name for the preset.", "Type a name, then press Save.", field="preset")
    if len(name) > NAME_MAX:
        raise ConfigError(
            f"preset name: at most {NAME_MAX} characters, got {len(name)}.", "Use a shorter name.", field="preset"
        )
    if any(p.name == name for p in BUILTIN_PRESETS):
        raise ConfigError(
            f"preset name: {name!r} is a built-in preset.", "Choose another name for your own preset.", field="preset"
        )
    return name


def save_preset(name: str, values: ControlValues, user_presets: Sequence[Preset]) -> list[Preset]:
    """The user's presets with `name` added, or replaced if it exists (kept in its place)."""
    preset = Preset(name=check_name(name), values=values)
    names = [p.name for p in user_presets]
    if preset.name in names:
        return [preset if p.name == preset.name else p for p in user_presets]
    if len(user_presets) >= MAX_USER_PRESETS:
        raise ConfigError(
            f"preset: this browser already keeps {MAX_USER_PRESETS} presets.",
            "Delete one you no longer use, then save again.",
            field="preset",
        )
    return [*user_presets, preset]


def delete_preset(name: str, user_presets: Sequence[Preset]) -> list[Preset]:
    if any(p.name == name for p in BUILTIN_PRESETS):
        raise ConfigError(f"preset: {name!r} is built in and cannot be deleted.", field="preset")
    if not any(p.name == name for p in user_presets):
        raise ConfigError(f"preset: there is no preset named {name!r}.", "Choose one of your presets.", field="preset")
    return [p for p in user_presets if p.name != name]


def load_user_presets(stored: Any) -> list[Preset]:
    """The presets kept in the browser; anything unreadable (an old or edited store) is skipped."""
    presets: list[Preset] = []
    for item in stored if isinstance(stored, list) else []:
        try:
            preset = Preset.model_validate(item)
        except ValidationError:
            continue
        if preset.name not in {p.name for p in (*BUILTIN_PRESETS, *presets)}:
            presets.append(preset)
    return presets[:MAX_USER_PRESETS]


def dump_user_presets(presets: Sequence[Preset]) -> list[dict[str, Any]]:
    """Plain JSON for the browser's local storage."""
    return [p.model_dump(mode="json") for p in presets]
