"""The presets panel: built-in presets and the user's own, kept in this browser."""

from dataclasses import dataclass
from typing import Any

import gradio as gr

from hfchat.errors import HFChatError
from hfchat.presets import (
    delete_preset,
    dump_user_presets,
    find_preset,
    load_user_presets,
    preset_names,
    save_preset,
    values_from_controls,
)
from hfchat.ui.feedback import refused
from hfchat.ui.page import BROWSER_STORAGE_SECRET


@dataclass(frozen=True)
class PresetPanel:
    store: gr.BrowserState
    choice: gr.Dropdown
    apply: gr.Button
    name: gr.Textbox
    save: gr.Button
    delete: gr.Button


def preset_panel() -> PresetPanel:
    """Built-in and saved presets (created in the sidebar, wired later)."""
    with gr.Accordion("Presets", open=False):
        choice = gr.Dropdown(preset_names([]), value=None, label="Preset", elem_id="preset-choice")
        with gr.Row():
            apply = gr.Button("Apply preset", size="sm", variant="primary")
            delete = gr.Button("Delete preset", size="sm")
        name = gr.Textbox(label="Save the current settings as", placeholder="preset name", elem_id="preset-name")
        save = gr.Button("Save preset", size="sm")
    store = gr.BrowserState([], storage_key="hfchat-presets", secret=BROWSER_STORAGE_SECRET)
    return PresetPanel(store=store, choice=choice, apply=apply, name=name, save=save, delete=delete)


def wire_presets(demo: gr.Blocks, panel: PresetPanel, controls: dict[str, Any]) -> None:
    """Apply a preset to the sidebar; save or delete the user's own (kept in this browser)."""
    p = panel
    targets = list(controls.values())

    def names(stored: Any, chosen: str | None = None) -> dict[Any, Any]:
        return {p.choice: gr.Dropdown(choices=preset_names(load_user_presets(stored)), value=chosen)}

    gr.on(
        [demo.load, p.store.change],
        lambda data: {p.choice: gr.Dropdown(choices=preset_names(load_user_presets(data[p.store])))},
        inputs={p.store},
        outputs=[p.choice],
        queue=False,
        api_visibility="private",
    )

    def apply(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            preset = find_preset(data[p.choice] or "", load_user_presets(data[p.store]))
        except HFChatError as exc:
            return refused(exc, targets[0])
        gr.Info(f"Applied the preset “{preset.name}”.", title="Preset applied")
        return {controls[name]: value for name, value in preset.values.as_controls().items() if name in controls}

    p.apply.click(apply, inputs={p.choice, p.store}, outputs=targets, api_visibility="private")

    def save(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            values = values_from_controls({name: data[control] for name, control in controls.items()})
            saved = save_preset(data[p.name], values, load_user_presets(data[p.store]))
        except HFChatError as exc:
            return refused(exc, p.store)
        stored = dump_user_presets(saved)
        name = data[p.name].strip()
        gr.Info(f"Saved the current settings as “{name}” in this browser.", title="Preset saved")
        return {p.store: stored, **names(stored, name), p.name: ""}

    p.save.click(
        save, inputs={p.name, p.store, *targets}, outputs=[p.store, p.choice, p.name], api_visibility="private"
    )

    def delete(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            remaining = delete_preset(data[p.choice] or "", load_user_presets(data[p.store]))
        except HFChatError as exc:
            return refused(exc, p.store)
        stored = dump_user_presets(remaining)
        return {p.store: stored, **names(stored)}

    p.delete.click(delete, inputs={p.choice, p.store}, outputs=[p.store, p.choice], api_visibility="private")
