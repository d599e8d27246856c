"""The settings schema: every consumer has every declared setting.

Each test walks `hfchat.settings.SETTINGS`, so a setting added to the schema is checked
in the sidebar, the compare sides, the `/chat` API, the CLI (flags and HFCHAT_*
variables), presets, exports and `build_settings` without editing this file; a consumer
that lacks it fails here, naming the setting.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

import gradio as gr
import pytest

from hfchat.cli import build_parser, parse_options
from hfchat.config import build_settings
from hfchat.export import build_export, parse_export, to_json, to_markdown
from hfchat.presets import CONTROL_NAMES, ControlValues, dump_user_presets, load_user_presets, save_preset
from hfchat.settings import (
    API_ORDER,
    SETTINGS,
    STORED,
    TURN,
    VARIANTS,
    Backend,
    Role,
    Setting,
    SidebarSettings,
    Widget,
    applies,
    control_shown,
)
from hfchat.ui import build_app
from hfchat.ui.controls import settings_controls

TEXT_SAMPLES: dict[str, Any] = {
    "model": "org/other",
    "endpoint_url": "http://127.0.0.1:2",
    "system_prompt": "Be brief.",
    "tools": ["calculator"],
    "mcp_tools": ["add"],
}
"""Text values that are also valid for `build_settings` (any other text setting gets 'other')."""


def other_value(setting: Setting, current: Any = None) -> Any:
    """A valid value of `setting` other than `current` (its default when not given)."""
    current = setting.default if current is None and setting.name != "seed" else current
    current = current.value if isinstance(current, Enum) else current
    if setting.choices is not None:
        return next(choice for choice in setting.choices if choice != current)
    if setting.field.annotation is bool:
        return not current
    if setting.bound("le") is not None:
        high = setting.range[1]
        return int(high) if "int" in str(setting.field.annotation) else high
    return TEXT_SAMPLES.get(setting.name, "other")


def as_flag_text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(value)  # a list setting's flag: comma-separated names (--tools calculator,web_search)
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


STORED_SETTINGS = [SETTINGS[name] for name in STORED]
CHANGED = {s.name: other_value(s) for s in STORED_SETTINGS if s.name != "backend"}
"""A value of every stored setting other than its default (the backend stays local)."""
FLAGGED = {name: value for name, value in CHANGED.items() if SETTINGS[name].control.flag}
"""Those that have a flag (the MCP tools are listed from the servers, so they have none)."""


def test_the_schema_has_each_kind_of_setting_and_secrets_are_never_stored() -> None:
    secrets = {"hf_token", "endpoint_api_key", "mcp_url"}  # a visitor's MCP URL may carry a key
    assert set(SETTINGS) == set(STORED) | secrets
    assert {s.name for s in SETTINGS.values() if s.role is Role.SECRET} == secrets
    assert set(TURN) < set(STORED) and "show_speed" in set(STORED) - set(TURN)
    assert list(SidebarSettings.model_fields) == list(STORED), "stored settings are SidebarSettings' fields"
    for setting in SETTINGS.values():
        assert setting.control.label and setting.field.description, f"{setting.name}: label and help text"
        if setting.control.widget.value == "slider":
            low, high = setting.range
            assert low < high and setting.control.step, setting.name


def test_every_setting_is_a_sidebar_control_and_every_turn_setting_is_on_each_compare_side() -> None:
    options = parse_options([], {})
    with gr.Blocks():
        main = settings_controls(options)
        side = settings_controls(options, "A")
    assert list(main) == list(SETTINGS), "the main sidebar has every setting, in the schema's order"
    assert list(side) == list(TURN), "a compare side has the settings that reach a backend"
    initial = options.sidebar.model_dump(mode="json")
    for name, setting in SETTINGS.items():
        assert main[name].label == setting.control.label, name
        assert main[name].elem_id == "settings-" + name.replace("_", "-")
        start = initial.get(name, "")
        expected = "" if start is None else str(start) if setting.control.widget is Widget.TEXT else start
        if setting.control.widget is Widget.CHECKBOXES:
            expected = start or []  # an empty list; the MCP tools' are ticked when the page loads
        assert main[name].value == expected, f"{name} starts from the flags (a secret, or a random seed: empty)"
        shown = control_shown(name, options.sidebar.backend, initial)
        assert main[name].visible == shown, f"{name} shows for its backends (and under its switch) only"
    for name in TURN:
        assert side[name].label == "A: " + SETTINGS[name].control.label
        assert side[name].elem_id == "compare-a-" + name.replace("_", "-")


def shown_as(name: str, value: object) -> object:
    """A value as its control holds it: a text box (the seed's too) holds text."""
    return str(value) if SETTINGS[name].control.widget is Widget.TEXT else value


def test_the_controls_start_from_the_flags() -> None:
    argv = [arg for name, value in FLAGGED.items() for arg in ("--" + name.replace("_", "-"), as_flag_text(value))]
    options = parse_options(argv, {})
    with gr.Blocks():
        main = settings_controls(options)
    for name, value in FLAGGED.items():
        assert main[name].value == shown_as(name, value), f"{name}: the control starts from --{name}"


def test_every_setting_is_a_chat_api_parameter_defaulting_to_the_flags() -> None:
    argv = [arg for name, value in FLAGGED.items() for arg in ("--" + name.replace("_", "-"), as_flag_text(value))]
    demo = build_app(parse_options(argv, {}))
    params = demo.get_api_info()["named_endpoints"]["/chat"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["message", *API_ORDER]
    assert set(API_ORDER) == set(SETTINGS)
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in params}
    for name, value in FLAGGED.items():
        assert defaults[name] == shown_as(name, value), f"/chat's {name} defaults to --{name}"
    for name in SETTINGS.keys() - STORED:
        assert not defaults[name], f"{name}: a secret has no default"


@pytest.mark.parametrize("setting", STORED_SETTINGS, ids=lambda s: s.name)
def test_every_stored_setting_has_a_flag_and_a_variable(setting: Setting) -> None:
    flag, variable = "--" + setting.name.replace("_", "-"), "HFCHAT_" + setting.name.upper()
    if not setting.control.flag:
        assert flag + " " not in build_parser({}).format_help(), f"{setting.name} is declared without a flag"
        return
    assert flag in build_parser({}).format_help()
    value = other_value(setting)
    by_flag = parse_options([flag, as_flag_text(value)], {}).sidebar
    by_variable = parse_options([], {variable: as_flag_text(value)}).sidebar
    for sidebar in (by_flag, by_variable):
        got = getattr(sidebar, setting.name)
        assert (got.value if isinstance(got, Enum) else got) == value


def test_secrets_have_no_flag_of_their_own() -> None:
    """A token on the command line shows in the process list: HF_TOKEN is read instead, and
    --endpoint-api-key is the operator's key for their own endpoint, not the visitor's box."""
    assert "--hf-token" not in build_parser({}).format_help()
    assert parse_options(["--endpoint-api-key", "k"], {}).sidebar.model_dump().keys() == set(STORED)


def test_presets_and_exports_keep_every_stored_setting() -> None:
    values = ControlValues(**CHANGED)
    assert tuple(ControlValues.model_fields) == CONTROL_NAMES == STORED
    stored = load_user_presets(dump_user_presets(save_preset("all", values, [])))
    assert stored[0].values == values and set(stored[0].values.as_controls()) == set(STORED)
    export = build_export("t", [{"role": "user", "content": "hi"}], values)
    back = parse_export(to_json(export).encode())
    assert back.settings == values
    assert set(json.loads(to_json(export))["settings"]) == set(STORED)


@pytest.mark.parametrize("backend", list(Backend))
def test_the_export_table_lists_the_settings_that_reach_the_backend(backend: Backend) -> None:
    values = ControlValues(**{**CHANGED, "backend": backend})
    table = to_markdown(build_export("t", [{"role": "user", "content": "hi"}], values))
    for name in TURN:
        assert (f"| `{name}` |" in table) == applies(name, backend), name


def base_values(backend: Backend) -> dict[str, Any]:
    """Sidebar values that build on `backend` (4-bit on, so the 4-bit settings reach it)."""
    values = SidebarSettings(backend=backend, model="org/model", device="cpu", load_in_4bit=True)
    dumped = values.model_dump(mode="json", include=set(TURN))
    return {**dumped, "endpoint_url": "http://127.0.0.1:1"}


@pytest.mark.parametrize("backend", list(Backend))
def test_build_settings_keeps_exactly_the_settings_that_reach_the_backend(backend: Backend) -> None:
    """A setting the backend's variant has changes the turn's config; any other is dropped."""
    base = base_values(backend)
    before = build_settings(**base, token_fingerprint="anonymous")
    for name in TURN:
        if name == "backend":
            continue
        value = other_value(SETTINGS[name], base[name])
        after = build_settings(**{**base, name: value}, token_fingerprint="anonymous")
        if applies(name, backend):
            assert after != before, f"{name} reaches {backend.value} but build_settings drops it"
        else:
            assert after == before, f"{name} does not reach {backend.value} but changes its config"
    assert set(VARIANTS[backend].model_fields) == {n for n in SETTINGS if applies(n, backend)}
