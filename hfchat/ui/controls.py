"""The settings controls (settings panel and compare sides), each built from its declaration in
`hfchat.settings`: grouped as declared, which backend (and switch) shows which, the sampling
sliders disabled while greedy, and the model's own sampling defaults when the model changes."""

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat.cli import AppOptions
from hfchat.model_defaults import SAMPLING_KEYS, model_defaults
from hfchat.settings import (
    CONDITIONS,
    SAMPLING,
    SETTINGS,
    TOGGLED,
    Backend,
    Group,
    Role,
    Setting,
    Widget,
    control_shown,
)


def _choices(setting: Setting) -> list[Any]:
    """The choices as Gradio takes them; an enum's as (label, value) pairs."""
    if isinstance(setting.default, Enum):
        return [(getattr(member, "label", member.value), member.value) for member in type(setting.default)]
    return list(setting.choices or ())


def control(
    setting: Setting, value: Any, label: str, interactive: bool | None = None, choices: list[Any] | None = None
) -> Component:
    """The widget a setting declares, holding `value`, labelled `label`; its info text names
    the API parameter, so the human label still tells a script writer what to send.
    `interactive` None leaves it to Gradio's page (see `settings_controls`)."""
    c = setting.control
    info = c.help_text(setting.name)
    value = value.value if isinstance(value, Enum) else value
    if c.widget is Widget.RADIO:
        return gr.Radio(_choices(setting), value=value, label=label, info=info, interactive=interactive)
    if c.widget is Widget.DROPDOWN:
        return gr.Dropdown(_choices(setting), value=value, label=label, info=info, interactive=interactive)
    if c.widget is Widget.CHECKBOX:
        return gr.Checkbox(value, label=label, info=info, interactive=interactive)
    if c.widget is Widget.SLIDER:
        low, high = setting.range
        return gr.Slider(low, high, value=value, step=c.step, label=label, info=info, interactive=interactive)
    if c.widget is Widget.NUMBER:
        return gr.Number(value, precision=0, label=label, info=info, interactive=interactive)
    if c.widget is Widget.CHECKBOXES:  # the choices come from the deployment (`hfchat.ui.tools`)
        return gr.CheckboxGroup(
            choices or [],
            value=list(value or []),
            label=label,
            info=info,
            visible=choices is None or bool(choices),
            interactive=interactive,
        )
    return gr.Textbox(
        "" if value is None else str(value),
        label=label,
        info=info,
        placeholder=c.placeholder or None,
        lines=c.lines,
        type="password" if c.widget is Widget.PASSWORD else "text",
        interactive=interactive,
    )


GROUPS_OPEN = {Group.MODEL: True, Group.GENERATION: True, Group.TOOLS: False, Group.ADVANCED: False}
"""Which sections of the settings panel start open: the rare settings are folded."""


def settings_controls(
    options: AppOptions,
    side: str = "",
    after: Mapping[Group, Callable[[], Any]] | None = None,
    choices: Mapping[str, list[Any]] | None = None,
) -> dict[str, Component]:
    """One set of settings controls, keyed by API name, rendered where it is called, in the
    schema's order and starting from the flags' values (`options.sidebar`).

    The main settings panel (`side=""`) has every setting, in one accordion per
    `Control.group` (Model, Generation, then Advanced, folded); each compare side ("A", "B":
    labels and element IDs carry the side) has those that reach a backend, in one list, as
    the secrets and the speed footer belong to the page.

    Every control says it is interactive (the sampling sliders: while sampling), rather
    than leaving it to Gradio's page, which infers it from the events of the config the
    page loaded with: a compare side is built later, in a `gr.render` (`compare_tab`), and
    its events are not among those, so the page would show its filled-in controls
    disabled.
    """
    prefix = f"{side}: " if side else ""
    ids = f"compare-{side.lower()}" if side else "settings"
    initial = options.sidebar.model_dump()
    sampling = bool(initial.get("do_sample"))
    wanted = [name for name, s in SETTINGS.items() if not side or s.role is Role.TURN]
    controls: dict[str, Component] = {}

    def build(name: str) -> None:
        setting = SETTINGS[name]
        interactive = sampling if setting.control.sampling else True
        value = initial.get(name, setting.default)
        listed = (choices or {}).get(name)
        controls[name] = control(setting, value, prefix + setting.control.label, interactive, listed)
        controls[name].elem_id = f"{ids}-{name.replace('_', '-')}"

    if side:
        for name in wanted:
            build(name)
    else:
        for group, is_open in GROUPS_OPEN.items():
            with gr.Accordion(group.value, open=is_open, elem_id=f"settings-group-{group.name.lower()}"):
                for name in wanted:
                    if SETTINGS[name].control.group is group:
                        build(name)
                if after and group in after:
                    after[group]()  # what the section shows below its controls (the tools' status)
        controls = {name: controls[name] for name in wanted}  # the schema's order, as before
    _follow_backend(controls, options.sidebar.backend, initial)
    _follow_sampling(controls)
    _follow_model_defaults(controls, str(initial.get("model") or ""))
    return controls


def _follow_backend(controls: dict[str, Component], initial: Backend, values: dict[str, Any]) -> None:
    """Show only the controls that reach the chosen backend (and the 4-bit options only
    while 4-bit is on), now and whenever the backend or such a switch changes."""
    toggled = {name: controls[name] for name in TOGGLED if name in controls}
    switches = [name for name in CONDITIONS if name in controls]
    for name, component in toggled.items():
        component.visible = control_shown(name, initial, values)

    def show_for(backend: str, *on: Any) -> dict[Component, dict]:
        now = dict(zip(switches, on, strict=True))
        return {c: gr.update(visible=control_shown(name, Backend(backend), now)) for name, c in toggled.items()}

    inputs = [controls["backend"], *(controls[name] for name in switches)]
    quiet: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")
    controls["backend"].change(show_for, inputs, list(toggled.values()), **quiet)  # type: ignore[attr-defined]
    # A switch shows and hides its options, never itself: no event writes back what triggers it.
    options = {name: c for name, c in toggled.items() if name not in switches}

    def show_options(backend: str, *on: Any) -> dict[Component, dict]:
        shown = show_for(backend, *on)
        return {c: shown[c] for c in options.values()}

    gr.on(
        [controls[name].change for name in switches],  # type: ignore[attr-defined]
        show_options,
        inputs,
        list(options.values()),
        **quiet,
    )


def _follow_sampling(controls: dict[str, Component]) -> None:
    """The sampling sliders are disabled while sampling is off (greedy): they would do nothing."""
    sliders = [controls[name] for name in SAMPLING if name in controls]

    def enable(on: bool) -> list[dict]:
        return [gr.update(interactive=bool(on)) for _ in sliders]

    controls["do_sample"].change(  # type: ignore[attr-defined]
        enable, controls["do_sample"], sliders, queue=False, show_progress="hidden", api_visibility="private"
    )


def _follow_model_defaults(controls: dict[str, Component], initial: str) -> None:
    """When the visitor enters another model, the sampling settings take the values it ships
    in its generation_config.json (`hfchat.model_defaults`), if any.

    Only a model typed into the box counts (submit or leaving the box with a new value):
    presets, opened conversations and "copy to main chat" set the model together with their
    own sampling values, which are kept.
    """
    names = [name for name in SAMPLING_KEYS if name in controls]
    last = gr.State(initial)

    def take(model: str, before: str) -> dict[Any, Any]:
        model = (model or "").strip()
        if model == before:
            return {last: before}
        found = model_defaults(model)
        return {last: model, **{controls[name]: value for name, value in found.items() if name in controls}}

    box = controls["model"]
    gr.on(
        [box.submit, box.blur],  # type: ignore[attr-defined]
        take,
        [box, last],
        [last, *(controls[name] for name in names)],
        show_progress="hidden",
        api_visibility="private",
    )
