"""The conversation panel: New chat, then the saved list, newest first and grouped by day,
with search by title and rename / delete in place; Export and Import for the conversation shown.

The list is a `gr.BrowserState` of `hfchat.conversations` entries (titles, stable ids); the
chat's own events save into it (`saved_outputs`, part of the turn's last update), and every
event here sets what it changes in the same update: nothing runs when the list changes.

The list itself is one `gr.HTML` block (Gradio's public custom-HTML API), whatever its length:
the items are rendered here with every title escaped (titles are visitor text), and a little
JavaScript (`LIST_JS`) filters by the search box in the page and sends `select` (open),
`submit` (rename) and `delete` (after an inline confirm) with the item's id as event data.
Those events are queued, so a refusal reaches the page as a warning toast (a quick,
unqueued event cannot show one); a refused action returns `gr.skip()` and changes nothing.
"""

import html
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from gradio.components import Component

from hfchat import conversations as convos
from hfchat.errors import ConfigError, HFChatError
from hfchat.export import (
    already_saved,
    build_export,
    check_import_size,
    file_stem,
    import_conversation,
    to_json,
    to_markdown,
)
from hfchat.presets import ControlValues, values_from_controls
from hfchat.ui.feedback import refused
from hfchat.ui.page import BROWSER_STORAGE_SECRET

if TYPE_CHECKING:
    from hfchat.ui.chat_tab import ChatPanel

_PENCIL = (
    '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M12 20h9"/>'
    '<path d="M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4Z"/></svg>'
)
_TRASH = (
    '<svg viewBox="0 0 24 24" width="14" height="14" aria-hidden="true" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M3 6h18"/>'
    '<path d="M8 6V4h8v2"/><path d="M19 6l-1 14H6L5 6"/></svg>'
)

LIST_TEMPLATE = (
    '<input type="search" class="search" placeholder="Search conversations" aria-label="Search conversations"'
    ' autocomplete="off">${value}<p class="no-match" hidden>No conversation matches.</p>'
)

LIST_CSS = """
font-family: var(--font); color: var(--body-text-color); font-size: 14px; line-height: 1.3; padding: 0 !important;
.search { width: 100%; box-sizing: border-box; padding: 6px 10px; margin: 0 0 6px; font-size: 13px;
  border: 1px solid var(--border-color-primary); border-radius: 8px; background: var(--input-background-fill);
  color: var(--body-text-color); }
.search:focus { outline: 2px solid var(--color-accent-soft); border-color: var(--color-accent); }
.day h3 { margin: 12px 8px 2px; font-size: 12px; line-height: 1.2; font-weight: 600;
  color: var(--body-text-color-subdued); }
ul { list-style: none; margin: 0; padding: 0; }
li { display: flex; align-items: center; gap: 2px; margin: 0; border-radius: 8px; min-height: 30px;
  padding-right: 2px; }
li:hover, li:focus-within { background: color-mix(in srgb, var(--body-text-color) 7%, transparent); }
li.active { background: var(--color-accent-soft); }
li button { background: none; border: 0; cursor: pointer; color: inherit; font: inherit; }
.open { flex: 1; min-width: 0; text-align: left; padding: 6px 8px; font-size: 14px; }
.open span { display: block; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.actions { display: flex; visibility: hidden; }
li:hover .actions, li:focus-within .actions, li.active .actions { visibility: visible; }
@media (hover: none) { .actions { visibility: visible; } }
.actions button { padding: 4px; border-radius: 6px; color: var(--body-text-color-subdued); line-height: 0; }
.actions button:hover { color: var(--body-text-color); background: var(--background-fill-primary); }
.actions .delete:hover { color: var(--error-text-color); }
.rename-box { flex: 1; min-width: 0; margin: 2px; padding: 4px 6px; font-size: 14px;
  border: 1px solid var(--color-accent); border-radius: 6px; background: var(--input-background-fill);
  color: var(--body-text-color); }
.ask { flex: 1; min-width: 0; padding: 5px 8px; font-size: 13px; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.confirm-delete, .cancel { padding: 3px 8px !important; border-radius: 6px; font-size: 12px !important; }
.confirm-delete { background: var(--error-background-fill, #fee2e2) !important;
  color: var(--error-text-color, #b91c1c) !important; }
.empty, .no-match { margin: 6px 8px; font-size: 13px; color: var(--body-text-color-subdued); }
"""

LIST_JS = """
const search = element.querySelector('input.search');
const items = () => [...element.querySelectorAll('li.item')];
const filter = () => {
  const query = search.value.trim().toLowerCase();
  for (const li of items()) li.hidden = Boolean(query) && !(li.dataset.title || '').toLowerCase().includes(query);
  for (const day of element.querySelectorAll('section.day')) day.hidden = !day.querySelector('li.item:not([hidden])');
  element.querySelector('.no-match').hidden = !query || items().length === 0 || items().some((li) => !li.hidden);
};
const restore = (li) => { if (li.saved) { li.replaceChildren(...li.saved); li.saved = null; } };
const make = (tag, cls, text) => {
  const node = document.createElement(tag);
  node.className = cls;
  if (text) node.textContent = text;
  return node;
};
const rename = (li) => {
  li.saved = [...li.childNodes];
  const box = make('input', 'rename-box');
  box.value = li.dataset.title || '';
  box.maxLength = 80;
  box.setAttribute('aria-label', 'New title');
  let done = false;
  const finish = (save) => {
    if (done) return;
    done = true;
    const title = box.value.trim();
    if (save && title && title !== li.dataset.title) trigger('submit', {id: li.dataset.id, title});
    restore(li);
  };
  box.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') { ev.preventDefault(); finish(true); }
    if (ev.key === 'Escape') { ev.preventDefault(); finish(false); }
  });
  box.addEventListener('blur', () => finish(true));
  li.replaceChildren(box);
  box.focus();
  box.select();
};
const askDelete = (li) => {
  li.saved = [...li.childNodes];
  const ask = make('span', 'ask', 'Delete \u201c' + (li.dataset.title || '') + '\u201d?');
  ask.title = li.dataset.title || '';
  const yes = make('button', 'confirm-delete', 'Delete');
  const no = make('button', 'cancel', 'Cancel');
  li.replaceChildren(ask, yes, no);
  no.focus();
};
element.addEventListener('click', (ev) => {
  const button = ev.target.closest('button');
  const li = button && button.closest('li.item');
  if (!li || !element.contains(li)) return;
  const id = li.dataset.id;
  if (button.classList.contains('open')) { if (!li.classList.contains('active')) trigger('select', {id}); }
  else if (button.classList.contains('rename')) rename(li);
  else if (button.classList.contains('delete')) askDelete(li);
  else if (button.classList.contains('confirm-delete')) { restore(li); trigger('delete', {id}); }
  else if (button.classList.contains('cancel')) restore(li);
});
element.addEventListener('keydown', (ev) => {
  const li = ev.target.closest && ev.target.closest('li.item');
  if (ev.key === 'Escape' && li && li.saved && !ev.target.classList.contains('rename-box')) restore(li);
});
search.addEventListener('input', filter);
watch('value', filter);
"""


def list_html(conversations: Sequence[convos.Conversation], current: str | None, tz_offset: Any) -> str:
    """The saved list as HTML: day groups of items, each an open button with the title, and
    rename / delete buttons. Every title and id is escaped: they come from the browser."""
    if not conversations:
        return '<p class="empty">No saved conversations yet. Send a message to start one.</p>'
    out = []
    for day, members in convos.by_day(conversations, convos.viewer_now(tz_offset)):
        out.append(f'<section class="day"><h3>{html.escape(day)}</h3><ul>')
        for c in members:
            title, cid = html.escape(c.title), html.escape(c.id)
            active = c.id == current
            mark = ' class="item active" aria-current="true"' if active else ' class="item"'
            title_id = ' id="conversation-title"' if active else ""
            out.append(
                f'<li{mark} data-id="{cid}" data-title="{title}">'
                f'<button class="open" title="{title}"><span{title_id}>{title}</span></button>'
                f'<span class="actions"><button class="rename" aria-label="Rename" title="Rename">{_PENCIL}</button>'
                f'<button class="delete" aria-label="Delete" title="Delete">{_TRASH}</button></span></li>'
            )
        out.append("</ul></section>")
    return "".join(out)


@dataclass(frozen=True)
class ConversationPanel:
    store: gr.BrowserState
    """The saved list, in this browser's local storage (fixed key and secret: it survives restarts)."""
    current: gr.State
    """The id of the conversation in the window (None: a new one, not saved yet)."""
    opened: gr.BrowserState
    """The same id, kept in the browser: a reload (after an app restart too) opens it again."""
    tz: gr.State
    """The browser's UTC offset in minutes (read as the page loads): the list's days are the visitor's."""
    listing: gr.HTML
    new: gr.Button
    export: gr.Button
    json_file: gr.DownloadButton
    markdown_file: gr.DownloadButton
    upload: gr.UploadButton

    @property
    def saving(self) -> list[Component]:
        """What a save sets (`saved_outputs`): the list and which conversation is shown."""
        return [*self.stored, *self.shown]

    @property
    def stored(self) -> list[Component]:
        """The saved data alone (the store and which conversation is open): what a streamed
        reply writes as it begins, without redrawing the list on every update."""
        return [self.store, self.current, self.opened]

    @property
    def shown(self) -> list[Component]:
        """What draws the saved data: the list and the Export buttons (`saved_outputs`)."""
        return [self.listing, self.export, self.json_file, self.markdown_file]


def conversation_panel() -> ConversationPanel:
    """New chat, the saved list and Export / Import (created where it is called, wired later)."""
    new = gr.Button("New chat", variant="primary", size="sm", elem_id="new-chat")
    listing = gr.HTML(
        list_html([], None, 0),
        html_template=LIST_TEMPLATE,
        css_template=LIST_CSS,
        js_on_load=LIST_JS,
        apply_default_css=False,  # no prose margins: a compact list
        elem_id="conversation-list",
        padding=False,
    )
    with gr.Row():
        export = gr.Button("Export", size="sm", interactive=False, elem_id="export-conversation")
        upload = gr.UploadButton(
            "Import JSON", file_types=[".json"], file_count="single", size="sm", elem_id="import-conversation"
        )
    with gr.Row():  # offered by Export: the conversation as files named after its title
        json_file = gr.DownloadButton(size="sm", visible=False, elem_id="export-json")
        markdown_file = gr.DownloadButton(size="sm", visible=False, elem_id="export-markdown")
    return ConversationPanel(
        store=gr.BrowserState([], storage_key=convos.STORAGE_KEY, secret=BROWSER_STORAGE_SECRET),
        current=gr.State(None),
        opened=gr.BrowserState(None, storage_key="hfchat-open", secret=BROWSER_STORAGE_SECRET),
        tz=gr.State(0),
        listing=listing,
        new=new,
        export=export,
        json_file=json_file,
        markdown_file=markdown_file,
        upload=upload,
    )


def saved_outputs(
    panel: ConversationPanel, saved: convos.Saved, tz_offset: Any, changed: bool = True
) -> dict[Component, Any]:
    """The update for the list after an event: stored (unless it is `changed` not: every write
    re-encrypts it), listed with the current conversation marked, Export offered when there is
    a conversation to export (an earlier export's downloads are put away: they no longer match)."""
    shown = convos.find(saved.conversations, saved.current)
    hidden = gr.update(visible=False)
    return {
        panel.store: convos.dump(saved.conversations) if changed else gr.skip(),
        panel.current: saved.current,
        panel.opened: saved.current,
        panel.listing: list_html(saved.conversations, saved.current, tz_offset),
        panel.export: gr.update(interactive=shown is not None),
        panel.json_file: hidden,
        panel.markdown_file: hidden,
    }


def _values_or_none(data: dict[Any, Any], controls: dict[str, Any]) -> ControlValues | None:
    try:
        return values_from_controls({name: data[control] for name, control in controls.items()})
    except HFChatError:
        return None  # the turn reports the bad field itself; the conversation is saved without settings


def _sent(evt: gr.EventData, name: str) -> str | None:
    """A string the list's JavaScript sent with an event (`id`, `title`); None when it sent none."""
    value = getattr(evt, name, None)
    return value if isinstance(value, str) else None


TZ_JS = "(stored, opened, tz) => [stored, opened, -new Date().getTimezoneOffset()]"
"""The page's load event reads the browser's UTC offset (minutes east of UTC) into `tz`."""


def wire_conversations(
    demo: gr.Blocks,
    panel: ConversationPanel,
    chat: "ChatPanel",
    controls: dict[str, Any],
    turns: list[Any],
    refresh: Callable[[Any], None] = lambda event: None,
) -> None:
    """Reopen on load, new, open, rename, delete, export and import. Leaving a conversation
    while a reply streams stops it (`turns`) and keeps what was shown, as Stop does. `refresh`
    chains the context meter's redraw after each event that shows another conversation."""
    p = panel
    store, current, tz = p.store, p.current, p.tz
    upload_root = Path(gr.utils.get_upload_folder())

    def show(saved: convos.Saved, offset: Any, changed: bool = True) -> dict[Component, Any]:
        """The list, with the conversation `saved.current` (None: a new one) in the window."""
        conversation = convos.find(saved.conversations, saved.current)
        messages = convos.keep_available_files(conversation.messages, upload_root) if conversation else []
        return {
            **saved_outputs(p, saved, offset, changed),
            chat.chatbot: messages,
            chat.history: messages,
            chat.turn: None,
            chat.textbox: chat.idle(),
            chat.go_on: chat.continuable(messages),
        }

    shown = [*p.saving, chat.chatbot, chat.history, chat.turn, chat.textbox, chat.go_on]

    def left(data: dict[Any, Any]) -> tuple[convos.Saved, bool]:
        """The list after leaving the window's conversation (a reply cut short is kept as
        shown, if it had begun), with that conversation's id, and whether that changed it."""
        unchanged = convos.Saved(convos.load(data[store]), data[current])
        turn = data[chat.turn]
        settings = ControlValues.model_validate(turn) if turn is not None else None
        messages = convos.answered_turns(data[chat.history] or [])
        done = convos.commit(unchanged.conversations, data[current], messages, settings)
        return (done, True) if done else (unchanged, False)

    leaving: set[Any] = {store, current, tz, chat.history, chat.turn}

    def reopen(stored: Any, opened_id: Any, offset: Any) -> dict[Any, Any]:
        """On page load: the list, and the conversation that was open, back in the window."""
        conversations = convos.load(stored)
        opened = convos.find(conversations, opened_id)
        offset = offset if isinstance(offset, int | float) else 0
        return {**show(convos.Saved(conversations, opened.id if opened else None), offset, changed=False), tz: offset}

    quick: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")
    # Events that can refuse are queued: only a queued event's warning reaches the page as a toast.
    told: dict[str, Any] = dict(show_progress="hidden", api_visibility="private", concurrency_limit=None)
    refresh(demo.load(reopen, inputs=[store, p.opened, p.listing], outputs=[*shown, tz], js=TZ_JS, **quick))

    def new(data: dict[Any, Any]) -> dict[Any, Any]:
        saved, changed = left(data)
        return show(convos.Saved(saved.conversations, None), data[tz], changed)

    refresh(p.new.click(new, inputs=leaving, outputs=shown, cancels=turns, **quick))

    # Every list action stops a reply streaming into the window (it would save over the list
    # from the copy it started with), keeping what it showed, as Stop does, even when refused.
    def settle(data: dict[Any, Any]) -> tuple[convos.Saved, dict[Any, Any]]:
        """The list after the window's turn is put to rest, and the update that does it."""
        saved, changed = left(data)
        rest: dict[Any, Any] = {chat.turn: None, chat.textbox: chat.idle()}
        return saved, (rest | saved_outputs(p, saved, data[tz]) if changed else rest)

    def switch(data: dict[Any, Any], evt: gr.EventData) -> dict[Any, Any]:
        saved, rest = settle(data)
        chosen = convos.find(saved.conversations, _sent(evt, "id"))
        if chosen is None:
            return {**refused(_gone(), store), **rest}
        return show(convos.Saved(saved.conversations, chosen.id), data[tz], store in rest)

    refresh(p.listing.select(switch, inputs=leaving, outputs=shown, cancels=turns, **told))

    def rename(data: dict[Any, Any], evt: gr.EventData) -> dict[Any, Any]:
        saved, rest = settle(data)
        try:
            renamed = convos.rename(saved.conversations, _sent(evt, "id"), _sent(evt, "title") or "")
        except HFChatError as exc:
            return {**refused(exc, store), **rest}
        return {**rest, **saved_outputs(p, convos.Saved(renamed, saved.current), data[tz])}

    settling = [*p.saving, chat.turn, chat.textbox]
    p.listing.submit(rename, inputs=leaving, outputs=settling, cancels=turns, **told)

    def delete(data: dict[Any, Any], evt: gr.EventData) -> dict[Any, Any]:
        chosen = _sent(evt, "id")
        saved, rest = settle(data)
        try:
            remaining = convos.delete(saved.conversations, chosen)
        except HFChatError as exc:
            return {**refused(exc, store), **rest}
        if chosen != saved.current:  # another one: the window stays as it is
            return {**rest, **saved_outputs(p, convos.Saved(remaining, saved.current), data[tz])}
        return show(convos.Saved(remaining, None), data[tz])

    refresh(p.listing.delete(delete, inputs=leaving, outputs=shown, cancels=turns, **told))

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
        """A conversation from an export file, opened; one already in the list (the same
        file imported again, or the conversation it was exported from) is opened, not copied."""
        path = Path(data[p.upload])
        saved, rest = settle(data)
        try:
            check_import_size(path.stat().st_size)  # before reading it
            imported = import_conversation(path.read_bytes())
            copy = already_saved(saved.conversations, imported)
            if copy is None:
                added = convos.add(saved.conversations, imported)
            else:
                added = convos.Saved(saved.conversations, copy.id)
            convos.check_fits(added.conversations)
        except HFChatError as exc:
            return {**refused(exc, store), **rest}
        if copy is not None:
            gr.Info(html.escape(f"“{copy.title}” is already in your list: opened it."), title="Already imported")
            return show(added, data[tz])  # its own settings stay as they are
        applied = imported.settings.as_controls() if imported.settings else {}
        settings = {controls[name]: value for name, value in applied.items() if name in controls}
        return {**show(added, data[tz]), **settings}

    imported = p.upload.upload(
        import_file,
        inputs={*leaving, p.upload},
        outputs=[*shown, *controls.values()],
        cancels=turns,
        api_visibility="private",
    )
    refresh(imported)


def _gone() -> ConfigError:
    return ConfigError(
        "conversation: this conversation is no longer saved in this browser.",
        "It may have been deleted in another tab; reload the page to see the list as it is.",
    )
