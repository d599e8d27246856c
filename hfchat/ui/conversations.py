"""The conversation list and its buttons: new, switch, rename, delete, export, import.

The list is a `gr.BrowserState` of `hfchat.conversations` entries (titles, stable ids); the
chat's own events save into it (`saved_outputs`, part of the turn's last update), and every
event here sets what it changes in the same update: nothing runs when the list changes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio.components import Component

from hfchat import conversations as convos
from hfchat.errors import HFChatError
from hfchat.export import build_export, check_import_size, file_stem, import_conversation, to_json, to_markdown
from hfchat.presets import ControlValues, values_from_controls
from hfchat.ui.feedback import refused
from hfchat.ui.page import BROWSER_STORAGE_SECRET

if TYPE_CHECKING:
    from hfchat.ui.chat_tab import ChatPanel


@dataclass(frozen=True)
class ConversationPanel:
    store: gr.BrowserState
    """The saved list, in this browser's local storage (fixed key and secret: it survives restarts)."""
    current: gr.State
    """The id of the conversation in the window (None: a new one, not saved yet)."""
    opened: gr.BrowserState
    """The same id, kept in the browser: a reload (after an app restart too) opens it again."""
    listing: gr.Radio
    new: gr.Button
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    export: gr.Button
    json_file: gr.DownloadButton
    markdown_file: gr.DownloadButton
    upload: gr.UploadButton

    @property
    def saving(self) -> list[Component]:
        """What a save sets (`saved_outputs`): the list and which conversation is shown."""
        return [self.store, self.current, self.opened, self.listing, self.title, self.json_file, self.markdown_file]


def conversation_panel() -> ConversationPanel:
    """The saved-conversations list and its buttons (created in the sidebar, wired later)."""
    with gr.Accordion("Conversations", open=True):
        new = gr.Button("New conversation", variant="primary", size="sm")
        listing = gr.Radio([], label="Saved in this browser", elem_id="conversation-list")
        title = gr.Textbox(label="Title", placeholder="title of this conversation", elem_id="conversation-title")
        with gr.Row():
            rename = gr.Button("Rename", size="sm")
            delete = gr.Button("Delete", size="sm", variant="stop")
        with gr.Row():
            export = gr.Button("Export", size="sm")
            upload = gr.UploadButton("Import JSON", file_types=[".json"], file_count="single", size="sm")
        with gr.Row():  # offered by Export: the conversation as files named after its title
            json_file = gr.DownloadButton(size="sm", visible=False, elem_id="export-json")
            markdown_file = gr.DownloadButton(size="sm", visible=False, elem_id="export-markdown")
    return ConversationPanel(
        store=gr.BrowserState([], storage_key=convos.STORAGE_KEY, secret=BROWSER_STORAGE_SECRET),
        current=gr.State(None),
        opened=gr.BrowserState(None, storage_key="hfchat-open", secret=BROWSER_STORAGE_SECRET),
        listing=listing,
        new=new,
        title=title,
        rename=rename,
        delete=delete,
        export=export,
        json_file=json_file,
        markdown_file=markdown_file,
        upload=upload,
    )


def saved_outputs(panel: ConversationPanel, saved: convos.Saved) -> dict[Component, Any]:
    """The update for a changed list: stored, listed, and the current conversation's id and
    title shown (an earlier export's downloads are put away: they no longer match)."""
    shown = convos.find(saved.conversations, saved.current)
    hidden = gr.update(visible=False)
    return {
        panel.store: convos.dump(saved.conversations),
        panel.current: saved.current,
        panel.opened: saved.current,
        panel.listing: gr.update(choices=convos.choices(saved.conversations), value=saved.current),
        panel.title: shown.title if shown else "",
        panel.json_file: hidden,
        panel.markdown_file: hidden,
    }


def _values_or_none(data: dict[Any, Any], controls: dict[str, Any]) -> ControlValues | None:
    try:
        return values_from_controls({name: data[control] for name, control in controls.items()})
    except HFChatError:
        return None  # the turn reports the bad field itself; the conversation is saved without settings


def wire_conversations(
    demo: gr.Blocks,
    panel: ConversationPanel,
    chat: ChatPanel,
    controls: dict[str, Any],
    turns: list[Any],
) -> None:
    """Reopen on load, new, switch, rename, delete, export and import. Leaving a conversation
    while a reply streams stops it (`turns`) and keeps what was shown, as Stop does."""
    p = panel
    store, current = p.store, p.current
    upload_root = Path(gr.utils.get_upload_folder())

    def show(saved: convos.Saved) -> dict[Component, Any]:
        """The list, with the conversation `saved.current` (None: a new one) in the window."""
        conversation = convos.find(saved.conversations, saved.current)
        messages = convos.keep_available_files(conversation.messages, upload_root) if conversation else []
        return {
            **saved_outputs(p, saved),
            chat.chatbot: messages,
            chat.history: messages,
            chat.turn: None,
            chat.textbox: chat.idle(),
        }

    shown = [*p.saving, chat.chatbot, chat.history, chat.turn, chat.textbox]

    def left(data: dict[Any, Any]) -> list[convos.Conversation]:
        """The list after leaving the window's conversation: a reply cut short is kept as shown."""
        conversations = convos.load(data[store])
        turn = data[chat.turn]
        settings = ControlValues.model_validate(turn) if turn is not None else None
        done = convos.commit(conversations, data[current], data[chat.history] or [], settings)
        return done.conversations if done else conversations

    leaving: set[Any] = {store, current, chat.history, chat.turn}

    def reopen(data: dict[Any, Any]) -> dict[Any, Any]:
        """On page load: the list, and the conversation that was open, back in the window."""
        conversations = convos.load(data[store])
        opened = convos.find(conversations, data[p.opened])
        return show(convos.Saved(conversations, opened.id if opened else None))

    quick: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")
    demo.load(reopen, inputs={store, p.opened}, outputs=shown, **quick)

    def new(data: dict[Any, Any]) -> dict[Any, Any]:
        return show(convos.Saved(left(data), None))

    p.new.click(new, inputs=leaving, outputs=shown, cancels=turns, **quick)

    def switch(data: dict[Any, Any]) -> dict[Any, Any]:
        conversations = left(data)
        chosen = convos.find(conversations, data[p.listing])
        return show(convos.Saved(conversations, chosen.id if chosen else None))

    p.listing.input(switch, inputs={*leaving, p.listing}, outputs=shown, cancels=turns, **quick)

    def rename(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            renamed = convos.rename(convos.load(data[store]), data[current], data[p.title])
        except HFChatError as exc:
            return refused(exc, store)
        return saved_outputs(p, convos.Saved(renamed, data[current]))

    for trigger in (p.rename.click, p.title.submit):
        trigger(rename, inputs={store, current, p.title}, outputs=p.saving, **quick)

    def delete(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            remaining = convos.delete(convos.load(data[store]), data[current])
        except HFChatError as exc:
            return refused(exc, store)
        return show(convos.Saved(remaining, None))

    p.delete.click(delete, inputs={store, current}, outputs=shown, cancels=turns, **quick)

    def export(data: dict[Any, Any]) -> Iterator[dict[Any, Any]]:
        """The conversation as JSON and Markdown downloads named after its title; the files
        are written for this event only (Gradio serves its own copy of each)."""
        conversation = convos.find(convos.load(data[store]), data[current])
        messages = data[chat.history] or []
        title = conversation.title if conversation else convos.default_title(messages)
        settings = conversation.settings if conversation and conversation.settings else _values_or_none(data, controls)
        try:
            exported = build_export(title, messages, settings)
        except HFChatError as exc:
            yield refused(exc, p.json_file)
            return
        stem = file_stem(exported.title)
        with tempfile.TemporaryDirectory(prefix="hfchat-export-") as folder:
            json_path, md_path = Path(folder, f"{stem}.json"), Path(folder, f"{stem}.md")
            json_path.write_text(to_json(exported), encoding="utf-8")
            md_path.write_text(to_markdown(exported), encoding="utf-8")
            yield {
                p.json_file: gr.update(value=str(json_path), label=json_path.name, visible=True),
                p.markdown_file: gr.update(value=str(md_path), label=md_path.name, visible=True),
            }
            # Resumed once Gradio has copied both files into its cache: this folder goes now.

    p.export.click(
        export,
        inputs={store, current, chat.history, *controls.values()},
        outputs=[p.json_file, p.markdown_file],
        preprocess=False,  # the sidebar's values as sent: a bad one leaves the settings out
        api_visibility="private",
    )

    def import_file(data: dict[Any, Any]) -> dict[Any, Any]:
        path = Path(data[p.upload])
        try:
            check_import_size(path.stat().st_size)  # before reading it
            imported = import_conversation(path.read_bytes())
            added = convos.add(left(data), imported)
            convos.check_fits(added.conversations)
        except HFChatError as exc:
            return refused(exc, store)
        applied = imported.settings.as_controls() if imported.settings else {}
        return {**show(added), **{controls[name]: value for name, value in applied.items() if name in controls}}

    p.upload.upload(
        import_file,
        inputs={*leaving, p.upload},
        outputs=[*shown, *controls.values()],
        cancels=turns,
        api_visibility="private",
    )
