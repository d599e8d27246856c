"""The conversation list and its buttons: new, switch, rename, delete, export, import."""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from hfchat import conversations as convos
from hfchat.errors import HFChatError
from hfchat.export import build_export, check_import_size, file_stem, import_conversation, to_json, to_markdown
from hfchat.presets import (
    ControlValues,
    values_from_controls,
)
from hfchat.ui.chat_tab import SavedChatInterface, sync_state
from hfchat.ui.feedback import refused
from hfchat.ui.page import BROWSER_STORAGE_SECRET


@dataclass(frozen=True)
class ConversationPanel:
    turn_settings: gr.State
    opened: gr.BrowserState
    listing: gr.Radio
    new: gr.Button
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    export: gr.Button
    upload: gr.UploadButton
    files: gr.File


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
        files = gr.File(
            label="Exported files", file_count="multiple", interactive=False, visible=False, elem_id="export-files"
        )
    return ConversationPanel(
        turn_settings=gr.State(None),
        # Which conversation the window shows, kept in the browser: a reload (after an app
        # restart too) opens it again, so the next message goes with its history.
        opened=gr.BrowserState(None, storage_key="hfchat-open", secret=BROWSER_STORAGE_SECRET),
        listing=listing,
        new=new,
        title=title,
        rename=rename,
        delete=delete,
        export=export,
        upload=upload,
        files=files,
    )


def _values_or_none(data: dict[Any, Any], controls: dict[str, Any]) -> ControlValues | None:
    try:
        return values_from_controls({name: data[control] for name, control in controls.items()})
    except HFChatError:
        return None  # the turn reports the bad field itself; the conversation is saved without settings


def wire_conversations(
    demo: gr.Blocks, panel: ConversationPanel, chat: SavedChatInterface, controls: dict[str, Any]
) -> None:
    """The list, new, switch, rename, delete, export and import; saving is the chat's own."""
    p = panel
    store, current = chat.saved_conversations, chat.conversation_id
    settings_inputs = set(controls.values())
    export_dir = Path(tempfile.mkdtemp(prefix="hfchat-export-"))
    upload_root = Path(gr.utils.get_upload_folder())

    def refresh(data: dict[Any, Any]) -> dict[Any, Any]:
        """After every save: the list, the title, and the settings of the turn just saved."""
        conversations = convos.load(data[store])
        shown = convos.find(conversations, data[current])
        out: dict[Any, Any] = {
            p.listing: gr.Radio(choices=convos.choices(conversations), value=shown.id if shown else None),
            p.title: shown.title if shown else "",
        }
        turn = data[p.turn_settings]
        if shown is not None and turn is not None:
            settings = ControlValues.model_validate(turn)
            if shown.settings != settings:
                updated = shown.model_copy(update={"settings": settings})
                out[store] = convos.dump([updated if c.id == shown.id else c for c in conversations])
            out[p.turn_settings] = None
        return out

    store.change(
        refresh,
        inputs={store, current, p.turn_settings},
        outputs=[p.listing, p.title, store, p.turn_settings],
        queue=False,
        api_visibility="private",
    )

    def remember_turn(data: dict[Any, Any]) -> dict[Any, Any]:
        """The sidebar as it was when a reply was asked for: saved with the conversation."""
        values = _values_or_none(data, controls)
        return {p.turn_settings: values.model_dump(mode="json") if values else None}

    for trigger in (chat.textbox.submit, chat.chatbot.retry, chat.chatbot.edit):
        trigger(remember_turn, inputs=settings_inputs, outputs=[p.turn_settings], queue=False, api_visibility="private")

    def shown_id(conversation: convos.Conversation | None) -> str | None:
        return conversation.id if conversation else None

    def show(conversation: convos.Conversation | None) -> dict[Any, Any]:
        """Put a conversation (or a new empty one) in the chat window."""
        return {
            current: conversation.id if conversation else None,
            p.opened: conversation.id if conversation else None,
            p.turn_settings: None,
            chat.chatbot: convos.keep_available_files(conversation.messages, upload_root) if conversation else [],
            p.title: conversation.title if conversation else "",
            p.listing: gr.Radio(value=conversation.id if conversation else None),
        }

    shown = [current, p.opened, p.turn_settings, chat.chatbot, p.title, p.listing]

    def reopen(data: dict[Any, Any]) -> dict[Any, Any]:
        """On page load: the list, and the conversation that was open, back in the window."""
        conversations = convos.load(data[store])
        conversation = convos.find(conversations, data[p.opened])
        return {
            **show(conversation),
            p.listing: gr.Radio(choices=convos.choices(conversations), value=shown_id(conversation)),
        }

    demo.load(reopen, inputs={store, p.opened}, outputs=shown, queue=False, api_visibility="private").then(
        **sync_state(chat)
    )

    def start_turn(data: dict[Any, Any]) -> dict[Any, Any]:
        """The question is saved as it is sent, marked interrupted until its reply is saved."""
        # Gradio has moved the message from the box into its saved_input state by now (the box
        # reads empty); both are server-side values when this runs.
        message = data[chat.saved_input] or data[chat.textbox]
        saved = convos.start_turn(convos.load(data[store]), data[current], data[chat.chatbot_state] or [], message)
        if saved is None:
            return {store: gr.skip()}
        return {store: convos.dump(saved.conversations), current: saved.current, p.opened: saved.current}

    chat.textbox.submit(
        start_turn,
        inputs={store, current, chat.chatbot_state, chat.saved_input, chat.textbox},
        outputs=[store, current, p.opened],
        queue=False,
        api_visibility="private",
    )

    p.new.click(lambda: show(None), outputs=shown, queue=False, api_visibility="private").then(**sync_state(chat))
    p.listing.input(
        lambda data: show(convos.find(convos.load(data[store]), data[p.listing])),
        inputs={store, p.listing},
        outputs=shown,
        queue=False,
        api_visibility="private",
    ).then(**sync_state(chat))

    def rename(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            renamed = convos.rename(convos.load(data[store]), data[current], data[p.title])
        except HFChatError as exc:
            return refused(exc, store)
        return {store: convos.dump(renamed)}

    for trigger in (p.rename.click, p.title.submit):
        trigger(rename, inputs={store, current, p.title}, outputs=[store], api_visibility="private")

    def delete(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            remaining = convos.delete(convos.load(data[store]), data[current])
        except HFChatError as exc:
            return refused(exc, store)
        return {store: convos.dump(remaining), **show(None)}

    p.delete.click(delete, inputs={store, current}, outputs=[store, *shown], api_visibility="private").then(
        **sync_state(chat)
    )

    def export(data: dict[Any, Any]) -> dict[Any, Any]:
        conversation = convos.find(convos.load(data[store]), data[current])
        messages = data[chat.chatbot_state] or []
        title = conversation.title if conversation else convos.default_title(messages)
        settings = conversation.settings if conversation and conversation.settings else _values_or_none(data, controls)
        try:
            exported = build_export(title, messages, settings)
        except HFChatError as exc:
            return refused(exc, p.files)
        folder = export_dir / uuid.uuid4().hex
        folder.mkdir()
        stem = file_stem(exported.title)
        json_file, md_file = folder / f"{stem}.json", folder / f"{stem}.md"
        json_file.write_text(to_json(exported), encoding="utf-8")
        md_file.write_text(to_markdown(exported), encoding="utf-8")
        return {p.files: gr.File(value=[str(json_file), str(md_file)], visible=True)}

    p.export.click(
        export,
        inputs={store, current, chat.chatbot_state, *settings_inputs},
        outputs=[p.files],
        api_visibility="private",
    )

    def import_file(data: dict[Any, Any]) -> dict[Any, Any]:
        path = Path(data[p.upload])
        try:
            check_import_size(path.stat().st_size)  # before reading it
            imported = import_conversation(path.read_bytes())
            added = convos.add(convos.load(data[store]), imported)
            convos.check_fits(added.conversations)
        except HFChatError as exc:
            return refused(exc, store)
        conversation = convos.find(added.conversations, added.current)
        applied = imported.settings.as_controls() if imported.settings else {}
        return {
            store: convos.dump(added.conversations),
            **show(conversation),
            **{controls[name]: value for name, value in applied.items() if name in controls},
        }

    p.upload.upload(
        import_file,
        inputs={store, p.upload},
        outputs=[store, *shown, *controls.values()],
        api_visibility="private",
    ).then(**sync_state(chat))
