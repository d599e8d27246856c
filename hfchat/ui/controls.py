"""The settings controls (sidebar and compare sides), each built from its declaration in
`hfchat.settings`, and which backend shows which."""

from __future__ import annotations

from enum import Enum
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.cli import AppOptions
from hfchat.settings import SETTINGS, TOGGLED, Backend, Role, Setting, Widget, shown_for


def _choices(setting: Setting) -> list[Any]:
    """The choices as Gradio takes them; an enum's as (label, value) pairs."""
    if isinstance(setting.default, Enum):
        return [(getattr(member, "label", member.value), member.value) for member in type(setting.default)]
    return list(setting.choices or ())


def control(setting: Setting, value: Any, label: str) -> Component:
    """The widget a setting declares, holding `value`, labelled `label`."""
    c = setting.control
    info = c.info or None
    value = value.value if isinstance(value, Enum) else value
    if c.widget is Widget.RADIO:
        return gr.Radio(_choices(setting), value=value, label=label, info=info)
    if c.widget is Widget.DROPDOWN:
        return gr.Dropdown(_choices(setting), value=value, label=label, info=info)
    if c.widget is Widget.CHECKBOX:
        return gr.Checkbox(value, label=label, info=info)
    if c.widget is Widget.SLIDER:
        low, high = setting.range
        return gr.Slider(low, high, value=value, step=c.step, label=label, info=info)
    if c.widget is Widget.NUMBER:
        return gr.Number(value, precision=0, label=label, info=info)
    return gr.Textbox(
        value or "",
        label=label,
        info=info,
        placeholder=c.placeholder or None,
        lines=c.lines,
        type="password" if c.widget is Widget.PASSWORD else "text",
    )


def settings_controls(options: AppOptions, side: str = "") -> dict[str, Component]:
    """One set of settings controls, keyed by API name, rendered where it is called, in the
    schema's order and starting from the flags' values (`options.sidebar`).

    The main sidebar (`side=""`) has every setting; each compare side ("A", "B": labels
    and element IDs carry the side) has those that reach a backend, as the secrets and the
    speed footer belong to the page (compare mode shows both sides' speed always).
    """
    prefix = f"{side}: " if side else ""
    ids = f"compare-{side.lower()}" if side else "settings"
    initial = options.sidebar.model_dump()
    controls: dict[str, Component] = {}
    for name, setting in SETTINGS.items():
        if side and setting.role is not Role.TURN:
            continue
        controls[name] = control(setting, initial.get(name, setting.default), prefix + setting.control.label)
        controls[name].elem_id = f"{ids}-{name.replace('_', '-')}"
    _follow_backend(controls, options.sidebar.backend)
    return controls


def _follow_backend(controls: dict[str, Component], initial: Backend) -> None:
    """Show only the controls that reach the chosen backend, now and whenever it changes."""
    toggled = {name: controls[name] for name in TOGGLED if name in controls}
    for name, component in toggled.items():
        component.visible = name in shown_for(initial)

    def show_for(backend: str) -> dict[Component, dict]:
        wanted = shown_for(Backend(backend))
        return {component: gr.update(visible=name in wanted) for name, component in toggled.items()}

    controls["backend"].change(  # type: ignore[attr-defined]
        show_for, controls["backend"], list(toggled.values()), api_visibility="private"
    )
