"""THE settings schema: every sidebar and `/chat` setting, declared once.

Each setting is one pydantic field of `SidebarSettings` (or `SessionSecrets`): its type,
default and range drive validation; its description is the help text of its flag; its
`Control` says how the sidebar draws it (label, widget, step, placeholder, info), which
backends it reaches and what role it plays. Everything else is derived from here:

- the sidebar and compare-panel controls (`hfchat.ui.controls`);
- the `/chat` parameters (`hfchat.chat.make_chat_fn`, in `API_ORDER`);
- the CLI flags and HFCHAT_* variables for the sidebar defaults (`hfchat.cli`);
- the values presets, exports and saved conversations keep (`hfchat.presets.ControlValues`);
- which backend takes which setting: the discriminated union `TURN_SETTINGS` has one
  variant per backend, holding the fields that reach it (`applies`), and
  `hfchat.config.build_settings` keeps exactly those.

Adding a setting is one declaration here, plus where its backend reads it (a field of
`hfchat.config.GenerationSettings` or `ModelSpec`, and that backend's `call_kwargs`).
`tests/unit/test_settings.py` walks this schema and fails when a consumer lacks a field.

`seed` has one convention everywhere it is stored or used: None = random. The old
spelling -1 (saved presets and exports, older API clients) is read as None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationInfo, create_model
from pydantic.fields import FieldInfo

from hfchat.providers import AUTO, chat_providers


class Backend(str, Enum):
    PROVIDERS = "providers"
    ENDPOINT = "endpoint"
    LOCAL = "local"

    @property
    def label(self) -> str:
        return BACKEND_LABELS[self]


BACKEND_LABELS = {
    Backend.PROVIDERS: "Inference Providers",
    Backend.ENDPOINT: "Custom endpoint",
    Backend.LOCAL: "Local",
}

ALL_BACKENDS = frozenset(Backend)
PROVIDERS, ENDPOINT, LOCAL = frozenset({Backend.PROVIDERS}), frozenset({Backend.ENDPOINT}), frozenset({Backend.LOCAL})
REMOTE = PROVIDERS | ENDPOINT

Task = Literal["text-generation", "image-text-to-text", "text2text-generation"]
Device = Literal["auto", "cpu", "cuda"]
QuantType = Literal["nf4", "fp4"]
ComputeDtype = Literal["float16", "bfloat16", "float32"]
TASKS: tuple[str, ...] = get_args(Task)
DEVICES: tuple[str, ...] = get_args(Device)
QUANT_TYPES: tuple[str, ...] = get_args(QuantType)
COMPUTE_DTYPES: tuple[str, ...] = get_args(ComputeDtype)


class Widget(str, Enum):
    """How the sidebar draws a setting."""

    RADIO = "radio"
    DROPDOWN = "dropdown"
    TEXT = "text"
    PASSWORD = "password"
    SLIDER = "slider"
    CHECKBOX = "checkbox"
    NUMBER = "number"
    CHECKBOXES = "checkboxes"
    """A list setting: one checkbox per choice (the tools)."""


class Group(str, Enum):
    """Where the settings panel puts a setting: its sections, in the panel's order."""

    MODEL = "Model"
    """What answers: backend, model, provider or endpoint, task (and the endpoint's key)."""
    GENERATION = "Generation"
    """The everyday generation settings, always in view."""
    TOOLS = "Tools"
    """What the model may call: built-in tools, MCP servers' tools."""
    ADVANCED = "Advanced"
    """The rare ones, in a folded accordion."""


class Role(str, Enum):
    """What a setting is for, which decides where it goes."""

    TURN = "turn"
    """Reaches the backend: validated by `build_settings`, on both compare sides, stored, a CLI flag."""
    DISPLAY = "display"
    """How the reply is shown (the speed footer): main sidebar only, stored, a CLI flag."""
    SECRET = "secret"
    """A credential for this browser session: main sidebar only, never stored, logged or a flag."""
    TOOLS = "tools"
    """Which tools the model may call: main sidebar only (compare sides chat without tools), stored,
    reaching `ChatService.respond` as its `ToolChoice`, not a backend setting."""


@dataclass(frozen=True)
class Control:
    """The sidebar side of a setting: everything but its type, default and range."""

    label: str
    """Exactly what the page shows: a human label (tests find controls by elem_id, or by this)."""
    widget: Widget
    backends: frozenset[Backend] = ALL_BACKENDS
    """The backends this setting reaches; for the others its control is hidden and its value dropped."""
    role: Role = Role.TURN
    info: str = ""
    """The small text under the control (the panel adds the API name to it, `help_text`)."""
    group: Group = Group.GENERATION
    """The settings panel's section for it."""
    shown_when: str = ""
    """A switch setting that must be on for this control to show (4-bit's sub-options)."""
    sampling: bool = False
    """Used only when sampling (do_sample) is on: the control is disabled while it is off."""
    placeholder: str = ""
    step: float | None = None
    lines: int = 1
    flag: bool = True
    """Whether the CLI has a flag (and HFCHAT_ variable) for its initial value."""

    def help_text(self, name: str) -> str:
        """The text under the control: its own info, then the API (and flag) name, so a
        human label still tells a script writer what to send."""
        return " · ".join(filter(None, [self.info, f"API: {name}"]))


def setting(default: Any, control: Control, *, help: str, **constraints: Any) -> Any:
    """A schema field: `default`, `help` (the flag's help and the API's description),
    range constraints (ge, le) for pydantic, and the `Control` kept in the field's metadata."""
    field: FieldInfo = Field(default, description=help, **constraints)
    field.metadata.append(control)
    return field


def _none_is_empty(value: Any) -> Any:
    return "" if value is None else value


def _random_is_none(value: Any) -> Any:
    """-1 is how saved presets, exports and older clients say "random"; an empty box is how
    the page says it (the seed is a text box: Gradio's number box draws empty as 0 and sends 0)."""
    if isinstance(value, str) and not value.strip():
        return None
    return None if isinstance(value, int | float) and not isinstance(value, bool) and value == -1 else value


@dataclass(frozen=True)
class OneOf:
    """Marks a setting's choices, and refuses any other value naming the field and the choices.

    Choices are a function, so the provider list follows the installed huggingface_hub."""

    choices: Callable[[], tuple[str, ...]]

    def check(self, value: Any, info: ValidationInfo) -> Any:
        choices = self.choices()
        shown = value.value if isinstance(value, Enum) else value
        if shown not in choices:
            raise ValueError(f"unknown {info.field_name} {shown!r}; choose one of: {', '.join(choices)}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.with_info_before_validator_function(self.check, handler(source))


def _provider_or_auto(value: Any) -> Any:
    return value or AUTO


def _names(value: Any) -> Any:
    """A list setting given as text (a flag, HFCHAT_TOOLS, a REST client): comma-separated names."""
    if isinstance(value, str):
        return [name.strip() for name in value.split(",") if name.strip()]
    return value


TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
"""A tool's name as models and OpenAI servers take it (MCP tools are renamed to fit)."""

BUILTIN_TOOLS = ("calculator", "web_search", "current_time")
"""The app's own tools (`hfchat.tools.builtin`), each off unless enabled."""

Text = Annotated[str, BeforeValidator(_none_is_empty)]
Seed = Annotated[int | None, BeforeValidator(_random_is_none)]
ProviderName = Annotated[str, OneOf(chat_providers), BeforeValidator(_provider_or_auto)]
TaskName = Annotated[Task, OneOf(lambda: TASKS)]
DeviceName = Annotated[Device, OneOf(lambda: DEVICES)]
QuantTypeName = Annotated[QuantType, OneOf(lambda: QUANT_TYPES)]
ComputeDtypeName = Annotated[ComputeDtype, OneOf(lambda: COMPUTE_DTYPES)]
BackendName = Annotated[Backend, OneOf(lambda: tuple(b.value for b in Backend))]
BuiltinTools = Annotated[list[Annotated[str, OneOf(lambda: BUILTIN_TOOLS)]], BeforeValidator(_names)]
ToolNames = Annotated[list[Annotated[str, Field(pattern=TOOL_NAME_PATTERN)]] | None, BeforeValidator(_names)]

SEED_MAX = 2**32 - 1

_SCHEMA = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)

_SAMPLING = "used when Sampling is on"
_ADV = Group.ADVANCED
_4BIT = "load_in_4bit"


class SidebarSettings(BaseModel):
    """Every setting but the secrets, in the sidebar's order: what presets, exports and the
    CLI hold, and (with the secrets) what `/chat` takes. The defaults are the app's own;
    the CLI's flags set the sidebar's (`hfchat.cli.AppOptions.sidebar`)."""

    model_config = _SCHEMA

    backend: BackendName = setting(
        Backend.LOCAL,
        Control("Backend", Widget.RADIO, group=Group.MODEL),
        help="providers (Inference Providers), endpoint (an OpenAI-compatible URL) or local",
    )
    model: Text = setting(
        "",
        Control("Repo ID or local folder", Widget.TEXT, placeholder="owner/name", group=Group.MODEL),
        help="repo ID (owner/name) or local folder",
    )
    provider: ProviderName = setting(
        AUTO,
        Control("Provider", Widget.DROPDOWN, PROVIDERS, group=Group.MODEL),
        help="Inference Provider, or 'auto'",
    )
    endpoint_url: Text = setting(
        "",
        Control("Endpoint URL", Widget.TEXT, ENDPOINT, placeholder="http://127.0.0.1:8000", group=Group.MODEL),
        help="base URL of an OpenAI-compatible server (TGI, vLLM, transformers serve)",
    )
    served_model: Text = setting(
        "",
        Control(
            "Served model name",
            Widget.TEXT,
            ENDPOINT,
            placeholder="found from /v1/models when empty",
            group=Group.MODEL,
        ),
        help="model name the endpoint expects in requests",
    )
    task: TaskName = setting(
        "text-generation",
        Control("Task", Widget.DROPDOWN, group=Group.MODEL),
        help="text-generation, or image-text-to-text for models that read images",
    )
    system_prompt: Text = setting(
        "", Control("System prompt", Widget.TEXT, lines=2), help="sent before the conversation as a system message"
    )
    max_new_tokens: int = setting(
        512, Control("Max new tokens", Widget.SLIDER, step=1), ge=1, le=8192, help="longest reply, in tokens"
    )
    do_sample: bool = setting(
        True,
        Control("Sampling", Widget.CHECKBOX, info="off: greedy, the same reply every time"),
        help="sample the reply (off: greedy decoding)",
    )
    temperature: float = setting(
        0.7,
        Control("Temperature", Widget.SLIDER, step=0.05, info=_SAMPLING, sampling=True),
        ge=0.0,
        le=2.0,
        help="sampling temperature",
    )
    top_p: float = setting(
        0.95,
        Control("Top-p (nucleus)", Widget.SLIDER, step=0.01, info=_SAMPLING, sampling=True),
        ge=0.01,
        le=1.0,
        help="nucleus sampling",
    )
    top_k: int = setting(
        50,
        Control("Top-k", Widget.SLIDER, LOCAL, step=1, info=f"{_SAMPLING}; 0 = off", group=_ADV, sampling=True),
        ge=0,
        le=200,
        help="sample among the k likeliest tokens; 0 = off",
    )
    repetition_penalty: float = setting(
        1.0,
        Control("Repetition penalty", Widget.SLIDER, LOCAL, step=0.01, info="1.0 = off", group=_ADV),
        ge=0.5,
        le=2.0,
        help="multiplicative penalty on repeated tokens; 1.0 = off",
    )
    frequency_penalty: float = setting(
        0.0,
        Control("Frequency penalty", Widget.SLIDER, REMOTE, step=0.05, info="OpenAI scale, 0 = off", group=_ADV),
        ge=-2.0,
        le=2.0,
        help="OpenAI's additive penalty on frequent tokens; 0 = off",
    )
    seed: Seed = setting(
        None,
        Control(
            "Seed",
            Widget.TEXT,
            placeholder="random",
            info="a whole number repeats a sample; empty = random",
            group=_ADV,
        ),
        ge=0,
        le=SEED_MAX,
        help="random seed, for repeatable sampling; empty (or -1) = random",
    )
    load_in_4bit: bool = setting(
        False,
        Control("Load in 4-bit (bitsandbytes)", Widget.CHECKBOX, LOCAL, group=_ADV),
        help="load local models in 4-bit (bitsandbytes)",
    )
    quant_type: QuantTypeName = setting(
        "nf4",
        Control("4-bit type", Widget.RADIO, LOCAL, group=_ADV, shown_when=_4BIT),
        help="4-bit quantization type",
    )
    compute_dtype: ComputeDtypeName = setting(
        "float16",
        Control("4-bit compute dtype", Widget.DROPDOWN, LOCAL, group=_ADV, shown_when=_4BIT),
        help="dtype 4-bit layers compute in",
    )
    double_quant: bool = setting(
        True,
        Control("4-bit double quantization", Widget.CHECKBOX, LOCAL, group=_ADV, shown_when=_4BIT),
        help="quantize the 4-bit quantization constants too",
    )
    device: DeviceName = setting(
        "auto", Control("Device", Widget.DROPDOWN, LOCAL, group=_ADV), help="device for local models"
    )
    tools: BuiltinTools = setting(
        [],
        Control(
            "Built-in tools",
            Widget.CHECKBOXES,
            role=Role.TOOLS,
            info="the model may call these; each is off unless ticked",
            group=Group.TOOLS,
        ),
        help="built-in tools the model may call, comma-separated: calculator, web_search, current_time",
    )
    mcp_tools: ToolNames = setting(
        None,
        Control(
            "MCP tools",
            Widget.CHECKBOXES,
            role=Role.TOOLS,
            info="tools of the MCP servers; untick one to switch it off",
            group=Group.TOOLS,
            flag=False,
        ),
        help="the MCP servers' tools the model may call, by name; omitted = all of them, [] = none",
    )
    show_speed: bool = setting(
        True,
        Control(
            "Show speed under each reply",
            Widget.CHECKBOX,
            role=Role.DISPLAY,
            info="model, time to first token, tokens/s, tokens",
            group=_ADV,
        ),
        help="show the speed footer under each reply",
    )


class SessionSecrets(BaseModel):
    """The credentials a visitor may type for this browser session only: `/chat`
    parameters and main-sidebar boxes, never stored, logged, shown or flags."""

    model_config = _SCHEMA

    hf_token: str | None = setting(
        None,
        Control(
            "HF token (this browser session only)",
            Widget.PASSWORD,
            role=Role.SECRET,
            placeholder="hf_…, overrides HF_TOKEN",
            group=Group.MODEL,
        ),
        help="a Hugging Face token for this session, instead of the server's",
        repr=False,
    )
    endpoint_api_key: str | None = setting(
        None,
        Control(
            "Endpoint API key (this browser session only)",
            Widget.PASSWORD,
            ENDPOINT,
            role=Role.SECRET,
            placeholder="sent only to the endpoint URL above; never the HF token",
            group=Group.MODEL,
        ),
        help="the key of your own endpoint, sent only to it",
        repr=False,
    )
    mcp_url: str | None = setting(
        None,
        Control(
            "Your MCP server URL (this browser session only)",
            Widget.TEXT,
            role=Role.SECRET,
            placeholder="https://…/mcp (streamable HTTP)",
            info="its tools are offered beside the built-in ones; never stored",
            group=Group.TOOLS,
        ),
        help="an MCP server (streamable HTTP) whose tools this session may use",
        repr=False,
    )


@dataclass(frozen=True)
class Setting:
    """One declared setting, as the consumers read it."""

    name: str
    field: FieldInfo
    control: Control

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def role(self) -> Role:
        return self.control.role

    @property
    def annotation(self) -> Any:
        """The field's full type, its validators included (for validating one value alone)."""
        return Annotated[(self.field.annotation, *self.field.metadata)]

    def bound(self, kind: str) -> float | None:
        """The field's `ge` or `le`, or None."""
        return next((getattr(m, kind) for m in self.field.metadata if hasattr(m, kind)), None)

    @property
    def range(self) -> tuple[float, float]:
        """(ge, le) of a setting that has both, such as a slider's."""
        low, high = self.bound("ge"), self.bound("le")
        if low is None or high is None:
            raise TypeError(f"{self.name} is declared without ge and le")
        return low, high

    @property
    def choices(self) -> tuple[str, ...] | None:
        one_of = next((m for m in self.field.metadata if isinstance(m, OneOf)), None)
        return one_of.choices() if one_of else None

    def applies(self, backend: Backend) -> bool:
        return backend in self.control.backends


def _declared(model: type[BaseModel]) -> dict[str, Setting]:
    found = {}
    for name, field in model.model_fields.items():
        control = next(m for m in field.metadata if isinstance(m, Control))
        found[name] = Setting(name, field, control)
    return found


SETTINGS: Mapping[str, Setting] = {**_declared(SidebarSettings), **_declared(SessionSecrets)}
"""Every setting by its API name, in the sidebar's order (secrets last)."""

STORED = tuple(n for n, s in SETTINGS.items() if s.role is not Role.SECRET)
"""What presets, exports and saved conversations keep: everything but the secrets."""
TURN = tuple(n for n, s in SETTINGS.items() if s.role is Role.TURN)
"""What reaches the backend, and what each compare side has."""

_API_V1 = (
    "backend",
    "model",
    "provider",
    "endpoint_url",
    "served_model",
    "task",
    "system_prompt",
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_p",
    "top_k",
    "repetition_penalty",
    "seed",
    "load_in_4bit",
    "hf_token",
    "endpoint_api_key",
    "frequency_penalty",
    "quant_type",
    "compute_dtype",
    "double_quant",
    "device",
    "show_speed",
)
"""The `/chat` parameters' positional order as published (REST clients send a list).
Frozen: a setting added later is not listed here; it comes after these, in declaration order."""

API_ORDER = (*(n for n in _API_V1 if n in SETTINGS), *(n for n in SETTINGS if n not in _API_V1))
"""The `/chat` parameters after `message` and `history`."""


def _variant(backend: Backend) -> type[BaseModel]:
    fields: dict[str, Any] = {
        name: (s.field.annotation, s.field) for name, s in SETTINGS.items() if name != "backend" and s.applies(backend)
    }
    return create_model(  # type: ignore[no-any-return]
        f"{backend.name.title()}Settings",
        __config__=_SCHEMA,
        __doc__=f"The settings that reach the {backend.label} backend.",
        backend=(Literal[backend], backend),  # type: ignore[arg-type]
        **fields,
    )


VARIANTS: Mapping[Backend, type[BaseModel]] = {backend: _variant(backend) for backend in Backend}
"""One model per backend, holding exactly the settings that reach it."""

TURN_SETTINGS: TypeAdapter[Any] = TypeAdapter(
    Annotated[Union[tuple(VARIANTS.values())], Field(discriminator="backend")]  # type: ignore[arg-type]  # noqa: UP007
)
"""The discriminated union on `backend`: validating a mapping gives that backend's variant."""


def applies(name: str, backend: Backend) -> bool:
    """Whether the setting `name` reaches `backend` (its variant has the field)."""
    return name in VARIANTS[backend].model_fields


@cache
def shown_for(backend: Backend) -> frozenset[str]:
    """The settings whose controls show for `backend`."""
    return frozenset(VARIANTS[backend].model_fields)


TOGGLED = tuple(n for n, s in SETTINGS.items() if s.control.shown_when or not all(applies(n, b) for b in Backend))
"""The controls that show for some backends only, or under a switch (the others always show)."""


CONDITIONS = tuple(dict.fromkeys(s.control.shown_when for s in SETTINGS.values() if s.control.shown_when))
"""The switches other controls show under (load_in_4bit)."""

SAMPLING = tuple(n for n, s in SETTINGS.items() if s.control.sampling)
"""The controls that do something only while sampling (do_sample) is on."""


def control_shown(name: str, backend: Backend, values: Mapping[str, Any]) -> bool:
    """Whether the control of `name` shows: it reaches `backend`, and the switch it shows
    under (if any) is on in `values` (the panel's values by name)."""
    switch = SETTINGS[name].control.shown_when
    return name in shown_for(backend) and (not switch or bool(values.get(switch)))
