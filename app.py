"""hfchat's Gradio app: wires the sidebar controls to hfchat's chat function. No logic here."""

from __future__ import annotations

import html
import inspect
import logging
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from gradio.components import Component

from hfchat import conversations as convos
from hfchat import net
from hfchat.backends import ALL_CONTROLS, CONTROLS
from hfchat.cache import ModelCache
from hfchat.chat import ChatService, make_chat_fn
from hfchat.cli import AppOptions, parse_options
from hfchat.compare import SIDES, Side, compare_turn, copy_settings, describe
from hfchat.config import COMPUTE_DTYPES, DEVICES, QUANT_TYPES, RANGES, TASKS, Backend, GenerationSettings
from hfchat.errors import HFChatError
from hfchat.export import build_export, check_import_size, file_stem, import_conversation, to_json, to_markdown
from hfchat.fairqueue import LOCAL_QUEUES
from hfchat.limits import ActiveTurns, RateLimiter, client_address
from hfchat.presets import (
    CONTROL_NAMES,
    ControlValues,
    delete_preset,
    dump_user_presets,
    find_preset,
    load_user_presets,
    preset_names,
    save_preset,
    values_from_controls,
)
from hfchat.providers import chat_providers
from hfchat.space import public_token_warning

log = logging.getLogger("hfchat.app")

BROWSER_STORAGE_SECRET = "hfchat-browser-storage"
"""Gradio encrypts BrowserState with a key it also sends to the page, so it hides nothing from
the browser's user; a fixed one keeps saved conversations readable after the server restarts
(Gradio's default, a random key per start, would lose them). Tokens are never stored there."""


IMAGE_POLICY = "img-src 'self' data: blob:"
"""The page loads images only from the app itself (attachments, Gradio's own) and data:/blob:
URIs: a reply that names a remote image cannot make the browser fetch it (a zero-click leak of
the chat). Replies show such images as links (`hfchat.safe_markdown`); this is the backstop."""

STORAGE_NOTICE = (
    "⚠️ Your latest change could not be saved: this browser's storage for this site is full. "
    "What was saved before is kept. Export or delete conversations to make room."
)

PAGE_HEAD = f"""
<meta http-equiv="Content-Security-Policy" content="{IMAGE_POLICY}">
<script>
(() => {{
  // Gradio's BrowserState swallows a failed localStorage write (console only), and every later
  // save of the same list fails too: say so in the page, until that key saves again.
  const failed = new Set();
  const original = Storage.prototype.setItem;
  const notice = () => {{
    let box = document.getElementById("storage-warning");
    if (!box) {{
      box = document.createElement("div");
      box.id = "storage-warning";
      box.setAttribute("role", "alert");
      box.style.cssText = "position:fixed;top:0;left:0;right:0;z-index:10000;padding:10px 16px;" +
        "background:#b91c1c;color:#fff;font:14px/1.4 system-ui,sans-serif;text-align:center";
      box.textContent = {STORAGE_NOTICE!r};
      document.body.appendChild(box);
    }}
    box.hidden = failed.size === 0;
  }};
  Storage.prototype.setItem = function (key, value) {{
    try {{
      original.call(this, key, value);
      if (failed.delete(key)) notice();
    }} catch (error) {{
      if (error && error.name === "QuotaExceededError") {{
        failed.add(key);
        notice();
      }}
      throw error;
    }}
  }};
}})();
</script>
"""

C = TypeVar("C", bound=gr.components.Component)


def _as_sent(component: C) -> C:
    """Hand the component's value to hfchat's validation as sent, so an API call with a value
    out of range, NaN or a string is refused naming the field: Gradio's own check names
    neither the field nor the fix, and a string crashes it. (An instance attribute, because
    subclassing a Gradio component writes a .pyi file next to this one.)"""
    component.preprocess = lambda payload: payload  # type: ignore[method-assign]
    return component


def _slider(name: str, value: float, step: float, info: str = "", prefix: str = "") -> gr.Slider:
    """A slider labelled with its API name, over the range the config validates."""
    low, high = RANGES[name]
    return _as_sent(gr.Slider(low, high, value=value, step=step, label=prefix + name, info=info or None))


def settings_controls(options: AppOptions, side: str = "") -> dict[str, Component]:
    """One set of settings controls, keyed by API name, rendered where it is called.

    The main sidebar (`side=""`, which adds the session token box) and each compare side
    ("A", "B": labels and element IDs carry the side) are all built here.
    """
    g = GenerationSettings()
    prefix = f"{side}: " if side else ""
    ids = f"compare-{side.lower()}" if side else "settings"

    def label(text: str) -> str:
        return prefix + text

    controls: dict[str, Component] = {
        "backend": gr.Radio([(b.label, b.value) for b in Backend], value=options.backend.value, label=label("Backend")),
        "model": gr.Textbox(options.model, label=label("Repo ID or local folder"), placeholder="owner/name"),
        "provider": gr.Dropdown(list(chat_providers()), value=options.provider, label=label("Provider")),
        "endpoint_url": gr.Textbox(
            options.endpoint_url, label=label("Endpoint URL"), placeholder="http://127.0.0.1:8000"
        ),
        "served_model": gr.Textbox(
            options.served_model, label=label("Served model name"), placeholder="found from /v1/models when empty"
        ),
        "task": gr.Dropdown(list(TASKS), value=options.task, label=label("Task")),
        "system_prompt": gr.Textbox(options.system_prompt, label=label("System prompt"), lines=2),
        "max_new_tokens": _slider("max_new_tokens", options.max_new_tokens, 1, prefix=prefix),
        "do_sample": gr.Checkbox(g.do_sample, label=label("do_sample"), info="off: greedy, the same reply every time"),
        "temperature": _slider("temperature", g.temperature, 0.05, "used when do_sample is on", prefix),
        "top_p": _slider("top_p", g.top_p, 0.01, "used when do_sample is on", prefix),
        "top_k": _slider("top_k", g.top_k, 1, "used when do_sample is on; 0 = off", prefix),
        "repetition_penalty": _slider("repetition_penalty", g.repetition_penalty, 0.01, "1.0 = off", prefix),
        "frequency_penalty": _slider("frequency_penalty", g.frequency_penalty, 0.05, "OpenAI scale, 0 = off", prefix),
        "seed": _as_sent(gr.Number(-1, precision=0, label=label("seed"), info="-1 = random")),
        "load_in_4bit": gr.Checkbox(options.load_in_4bit, label=label("Load in 4-bit (bitsandbytes)")),
        "quant_type": gr.Radio(list(QUANT_TYPES), value=options.quant_type, label=label("4-bit type")),
        "compute_dtype": gr.Dropdown(
            list(COMPUTE_DTYPES), value=options.compute_dtype, label=label("4-bit compute dtype")
        ),
        "double_quant": gr.Checkbox(True, label=label("4-bit double quantization")),
        "device": gr.Dropdown(list(DEVICES), value=options.device, label=label("Device")),
    }
    if not side:  # the main sidebar only: compare mode shows both sides' speed always
        controls["show_speed"] = gr.Checkbox(
            True, label="Show speed under each reply", info="model, time to first token, tokens/s, tokens"
        )
        controls["hf_token"] = gr.Textbox(
            "",
            label="HF token (this browser session only)",
            type="password",
            placeholder="hf_…, overrides HF_TOKEN",
        )
        controls["endpoint_api_key"] = gr.Textbox(
            "",
            label="Endpoint API key (this browser session only)",
            type="password",
            placeholder="sent only to the endpoint URL above; never the HF token",
        )
    for name, component in controls.items():
        component.elem_id = f"{ids}-{name.replace('_', '-')}"
    _follow_backend(controls, options.backend)
    return controls


def _follow_backend(controls: dict[str, Component], initial: Backend) -> None:
    """Show only the controls that reach the chosen backend, now and whenever it changes."""
    toggled = {name: controls[name] for name in sorted(ALL_CONTROLS - {"hf_token"}) if name in controls}
    for name, component in toggled.items():
        component.visible = name in CONTROLS[initial]

    def show_for(backend: str) -> dict[Component, dict]:
        wanted = CONTROLS[Backend(backend)]
        return {component: gr.update(visible=name in wanted) for name, component in toggled.items()}

    controls["backend"].change(  # type: ignore[attr-defined]
        show_for, controls["backend"], list(toggled.values()), api_visibility="private"
    )


def compare_tab(options: AppOptions, service: ChatService, main: dict[str, Component], tabs: gr.Tabs) -> None:
    """A and B side by side: one prompt box, a settings panel and a chat window per side,
    and a button per side that copies its settings into the main chat's sidebar."""
    panels: dict[str, dict[str, Component]] = {}
    chats: dict[str, gr.Chatbot] = {}
    with gr.Row(equal_height=False):
        for side in SIDES:
            with gr.Column(min_width=320):
                with gr.Accordion(open=False, elem_id=f"compare-{side.lower()}-settings") as accordion:
                    panels[side] = settings_controls(options, side)
                accordion.label = _side_title(side, {n: c.value for n, c in panels[side].items()})
                chats[side] = gr.Chatbot(
                    label=side, elem_id=f"compare-{side.lower()}-chat", height=420, buttons=["copy"]
                )
                copy = gr.Button(f"Copy {side} to main chat", size="sm", elem_id=f"compare-copy-{side.lower()}")
            _wire_side(panels[side], accordion, side, main, copy, tabs)
    with gr.Row():
        box = gr.Textbox(
            show_label=False,
            placeholder="One prompt, sent to A and B at once",
            scale=5,
            elem_id="compare-prompt",
            submit_btn=False,
        )
        send = gr.Button("Send to both", variant="primary", scale=1, elem_id="compare-send")
        stop = gr.Button("Stop", variant="stop", scale=1, elem_id="compare-stop")
        clear = gr.Button("Clear", scale=1, elem_id="compare-clear")
    status = gr.Markdown("", elem_id="compare-status")
    token, endpoint_key = main["hf_token"], main["endpoint_api_key"]
    inputs: set[Any] = {
        box,
        token,
        endpoint_key,
        *chats.values(),
        *(c for panel in panels.values() for c in panel.values()),
    }

    def run(
        data: dict[Component, Any], request: gr.Request, oauth_token: gr.OAuthToken | None
    ) -> Iterator[dict[Component, Any]]:
        sides = [Side(history=data[chats[s]] or [], values={n: data[c] for n, c in panels[s].items()}) for s in SIDES]
        session = getattr(request, "session_hash", None)
        signed_in = getattr(oauth_token, "token", None)
        client = client_address(request, options.on_space)
        endpoint = data[endpoint_key]
        for windows in compare_turn(service, data[box], sides, data[token], session, signed_in, endpoint, client):
            yield {box: "", status: "A and B are answering…", **dict(zip(chats.values(), windows, strict=True))}
        yield {status: "Both replies are in."}

    outputs = [box, status, *chats.values()]
    # Private: from code, compare by calling /chat twice at once with different settings.
    events: list[dict[str, Any]] = [
        trigger(run, inputs, outputs, api_visibility="private") for trigger in (send.click, box.submit)
    ]
    stop.click(lambda: "Stopped.", None, status, cancels=events, api_visibility="private")

    def clear_all() -> dict[Any, Any]:
        return {status: "", **{chat: [] for chat in chats.values()}}

    clear.click(
        clear_all,
        None,
        [status, *chats.values()],
        cancels=events,
        api_visibility="private",
    )


def _side_title(side: str, values: dict[str, Any]) -> str:
    return f"{side} settings: {describe(values)}"


def _wire_side(
    panel: dict[str, Component],
    accordion: gr.Accordion,
    side: str,
    main: dict[str, Component],
    copy: gr.Button,
    tabs: gr.Tabs,
) -> None:
    """The side's title follows its settings; its copy button fills the main sidebar."""
    names = list(panel)
    components = [panel[n] for n in names]

    def title(*values: Any) -> dict:
        return gr.update(label=_side_title(side, dict(zip(names, values, strict=True))))

    for name in ("backend", "model", "provider", "endpoint_url", "served_model", "load_in_4bit"):
        panel[name].change(title, components, accordion, api_visibility="private")  # type: ignore[attr-defined]

    def copy_to_main(*values: Any) -> dict[Any, Any]:
        copied = copy_settings(dict(zip(names, values, strict=True)), list(main))
        gr.Info(f"Copied {side}'s settings into the main chat.")
        return {tabs: gr.Tabs(selected="chat"), **{main[n]: v for n, v in copied.items()}}

    copy.click(copy_to_main, components, [tabs, *(main[n] for n in names if n in main)], api_visibility="private")


def build_app(options: AppOptions, service: ChatService | None = None) -> gr.Blocks:
    service = service or ChatService(
        cache=ModelCache(options.cache_size),
        timeout=options.timeout,
        policy=options.deployment_policy,
        limiter=RateLimiter(options.rate_limit),
        active=ActiveTurns(options.max_turns_per_client),
        retry=options.retry,
        limits=options.limits,
        turn_timeout=options.turn_timeout,
        stall_timeout=options.stall_timeout,
        endpoint_api_key=options.endpoint_api_key,
    )
    chat_fn = make_chat_fn(service, options)
    # Gradio hands its request (the session hash the rate limit counts) to a parameter
    # annotated gr.Request; hfchat.chat stays gradio-free, so the annotation is set here.
    chat_fn.__annotations__["request"] = gr.Request
    # Likewise the signed-in visitor's token (None when not signed in, or not on a Space).
    chat_fn.__annotations__["oauth_token"] = gr.OAuthToken | None
    with gr.Blocks(title="hfchat", fill_height=True, analytics_enabled=False) as demo:
        with gr.Sidebar(label="Settings"):
            if options.oauth:  # a Space with hf_oauth: each visitor's own token pays for their calls
                gr.LoginButton()
            saved = conversation_panel()
            presets = preset_panel()
            controls = settings_controls(options)
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat", elem_id="chat-tab"):
                injected = {"request", "oauth_token"}  # filled by Gradio, not by a control
                params = [p for p in list(inspect.signature(chat_fn).parameters)[2:] if p not in injected]
                chat = SavedChatInterface(
                    chat_fn,
                    additional_inputs=[controls[name] for name in params],
                    api_name="chat",
                    # Fixed at construction, so always on; a text-only task refuses images with a message.
                    multimodal=True,
                    textbox=gr.MultimodalTextbox(
                        sources=["upload"],
                        file_types=["image"],
                        file_count="multiple",
                        placeholder="Type a message (attach images with the task image-text-to-text)…",
                        show_label=False,
                        stop_btn=True,  # a custom textbox brings its own buttons; Stop is off by default
                    ),
                    title="hfchat",
                    description="Chat with any Hugging Face model: Inference Providers, your own endpoint, or locally.",
                    editable=True,
                    fill_height=True,
                    analytics_enabled=False,
                )
            with gr.Tab("Compare", id="compare", elem_id="compare-tab"):
                compare_tab(options, service, controls, tabs)
        # Presets and exports hold every control but the token (those this build has).
        settable = {name: controls[name] for name in CONTROL_NAMES if name in controls}
        wire_conversations(demo, saved, chat, settable)
        wire_presets(demo, presets, settable)
    return demo


def _refused(exc: HFChatError, output: Component) -> dict[Any, Any]:
    """A refused action as a warning toast, changing nothing (`output`, any of the event's
    outputs, is skipped, and so are the others), so no component is left with Gradio's red
    "Error" badge: raising gr.Error marks every output of the event with one."""
    title = type(exc).title
    gr.Warning(html.escape(f"{title}. {exc}"), title=title)  # Gradio 6 draws every warning as "Warning"
    return {output: gr.skip()}


def _sync_state(chat: gr.ChatInterface) -> dict[str, Any]:
    """After the chat window is set from outside, the chat function's history follows it,
    as Gradio's own conversation list does."""
    return dict(
        fn=lambda shown: shown, inputs=chat.chatbot, outputs=chat.chatbot_state, queue=False, api_visibility="private"
    )


class SavedChatInterface(gr.ChatInterface):
    """ChatInterface whose saved-conversation list holds titled conversations with stable ids.

    Gradio already saves the history at the right moments (after a turn, retry, undo, edit,
    and deletes it on clear) through `_save_conversation` and `_delete_conversation`, into
    its `saved_conversations` BrowserState with `conversation_id` as the current one. Only
    those two steps are replaced, so the list's entries carry an id and a title
    (`hfchat.conversations`); `save_history` stays off so Gradio's own untitled list is not
    drawn, and `conversation_panel` draws ours. These are private Gradio 6 methods:
    `tests/test_app_convos.py` fails first if an upgrade renames them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, save_history=False, **kwargs)
        self.saved_conversations.storage_key = convos.STORAGE_KEY
        self.saved_conversations.secret = BROWSER_STORAGE_SECRET

    def _save_conversation(self, index: Any, conversation: Any, saved_conversations: Any) -> tuple[Any, Any]:
        result = convos.commit(convos.load(saved_conversations), index, conversation or [], None)
        if result is None:
            return index, saved_conversations
        return result.current, convos.dump(result.conversations)

    def _delete_conversation(self, index: Any, saved_conversations: Any) -> tuple[Any, Any]:
        return self._save_conversation(index, [], saved_conversations)


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
        **_sync_state(chat)
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

    p.new.click(lambda: show(None), outputs=shown, queue=False, api_visibility="private").then(**_sync_state(chat))
    p.listing.input(
        lambda data: show(convos.find(convos.load(data[store]), data[p.listing])),
        inputs={store, p.listing},
        outputs=shown,
        queue=False,
        api_visibility="private",
    ).then(**_sync_state(chat))

    def rename(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            renamed = convos.rename(convos.load(data[store]), data[current], data[p.title])
        except HFChatError as exc:
            return _refused(exc, store)
        return {store: convos.dump(renamed)}

    for trigger in (p.rename.click, p.title.submit):
        trigger(rename, inputs={store, current, p.title}, outputs=[store], api_visibility="private")

    def delete(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            remaining = convos.delete(convos.load(data[store]), data[current])
        except HFChatError as exc:
            return _refused(exc, store)
        return {store: convos.dump(remaining), **show(None)}

    p.delete.click(delete, inputs={store, current}, outputs=[store, *shown], api_visibility="private").then(
        **_sync_state(chat)
    )

    def export(data: dict[Any, Any]) -> dict[Any, Any]:
        conversation = convos.find(convos.load(data[store]), data[current])
        messages = data[chat.chatbot_state] or []
        title = conversation.title if conversation else convos.default_title(messages)
        settings = conversation.settings if conversation and conversation.settings else _values_or_none(data, controls)
        try:
            exported = build_export(title, messages, settings)
        except HFChatError as exc:
            return _refused(exc, p.files)
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
            return _refused(exc, store)
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
    ).then(**_sync_state(chat))


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
            return _refused(exc, targets[0])
        return {controls[name]: value for name, value in preset.values.as_controls().items() if name in controls}

    p.apply.click(apply, inputs={p.choice, p.store}, outputs=targets, api_visibility="private")

    def save(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            values = values_from_controls({name: data[control] for name, control in controls.items()})
            saved = save_preset(data[p.name], values, load_user_presets(data[p.store]))
        except HFChatError as exc:
            return _refused(exc, p.store)
        stored = dump_user_presets(saved)
        return {p.store: stored, **names(stored, data[p.name].strip()), p.name: ""}

    p.save.click(
        save, inputs={p.name, p.store, *targets}, outputs=[p.store, p.choice, p.name], api_visibility="private"
    )

    def delete(data: dict[Any, Any]) -> dict[Any, Any]:
        try:
            remaining = delete_preset(data[p.choice] or "", load_user_presets(data[p.store]))
        except HFChatError as exc:
            return _refused(exc, p.store)
        stored = dump_user_presets(remaining)
        return {p.store: stored, **names(stored)}

    p.delete.click(delete, inputs={p.choice, p.store}, outputs=[p.store, p.choice], api_visibility="private")


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:  # no URL's user:password or query in any log line
        handler.addFilter(net.SCRUB_URLS)
    options = parse_options(argv)
    LOCAL_QUEUES.configure(options.local_concurrency)
    log.info("%s", options.deployment_policy.describe())
    if options.public and options.rate_limit is None:
        log.warning("public deployment without --rate-limit: one visitor can keep the app busy")
    if warning := public_token_warning(options.public, options.auth is not None):
        log.warning("%s", warning)
    queued(build_app(options), options).launch(
        server_name=options.host, server_port=options.port, share=options.share, auth=options.auth, head=PAGE_HEAD
    )


def queued(demo: gr.Blocks, options: AppOptions) -> gr.Blocks:
    """The queue as the app runs it: `concurrency` chats at once, at most `max_queue` waiting;
    beyond that Gradio answers at once that the app is busy (HTTP 503, "try again")."""
    return demo.queue(default_concurrency_limit=options.concurrency, max_size=options.max_queue)


if __name__ == "__main__":
    main()
