"""The chat: a `gr.Chatbot` and a `gr.MultimodalTextbox` on Gradio's public API, and `/chat`.

A turn is two events. `begin` (not queued, so the question shows at once) puts the question
in the window; `respond` (queued) streams the reply, saves the question with the interrupted
note as soon as the reply begins (so an app restart mid-reply keeps it), and in its last
update saves the finished turn with the settings it was made with. A turn that ends before
any reply began (a refused setting or image, a model or endpoint that fails) saves nothing:
it creates no conversation, and a saved one stays as it was. In the
browser that is three requests (the begin call, the queue join, the reply's stream), with no
follow-up events and nothing that runs when the saved list changes. Retry and edit start a
turn the same way; undo and clear are one event each; Stop saves what was shown.

The window's messages live twice: in the `gr.Chatbot` (drawn) and in `ChatPanel.history`
(server-side, what the model gets next); every event that changes one sets both.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat import conversations as convos
from hfchat.errors import HFChatError
from hfchat.messages import Message
from hfchat.presets import ControlValues, values_from_controls
from hfchat.ui.conversations import ConversationPanel, saved_outputs

TITLE = "hfchat"
DESCRIPTION = "Chat with any Hugging Face model: Inference Providers, your own endpoint, or locally."
PLACEHOLDER = "Type a message (attach images with the task image-text-to-text)…"

ChatFn = Callable[..., Iterator[list[Message]]]
"""`hfchat.chat.make_chat_fn`'s function as rendered (`hfchat.ui.render.rendered`): called with
(message, history, request=, oauth_token=, **settings), it yields the reply so far as messages."""


def idle_box() -> dict[str, Any]:
    """The chat box between turns: typing allowed, the submit button shown, Stop hidden."""
    return gr.update(interactive=True, submit_btn=True, stop_btn=False, placeholder=PLACEHOLDER)


def busy_box(**value: Any) -> dict[str, Any]:
    """The chat box while a reply is generated: locked, with Stop instead of submit."""
    return gr.update(interactive=False, submit_btn=False, stop_btn=True, placeholder="", **value)


@dataclass(frozen=True)
class ChatPanel:
    chatbot: gr.Chatbot
    textbox: gr.MultimodalTextbox
    history: gr.State
    """The conversation in the window, as the model gets it with the next question."""
    pending: gr.State
    """The turn `begin` started: `{"message": <box value>, "history": <messages before it>}`."""
    turn: gr.State
    """The settings of the reply in progress (None between turns), saved with it if it is stopped."""

    def idle(self) -> dict[str, Any]:
        """The update that unlocks the chat box (for events that leave a turn behind)."""
        return idle_box()


def chat_panel() -> ChatPanel:
    """The title, the chat window and the chat box (rendered where it is called)."""
    gr.Markdown(f"<h1 style='text-align: center; margin-bottom: 1rem'>{TITLE}</h1>")
    gr.Markdown(DESCRIPTION)
    chatbot = gr.Chatbot(label="Chatbot", scale=1, editable="user", elem_id="chat-window")
    with gr.Group(), gr.Row():
        textbox = gr.MultimodalTextbox(
            sources=["upload"],
            file_types=["image"],  # a text-only task refuses images with a message
            file_count="multiple",
            placeholder=PLACEHOLDER,
            show_label=False,
            submit_btn=True,
            stop_btn=False,  # shown while a reply is generated (busy_box)
            scale=7,
            elem_id="chat-box",
        )
    return ChatPanel(chatbot=chatbot, textbox=textbox, history=gr.State([]), pending=gr.State(), turn=gr.State())


def turn_values(settings: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any] | None:
    """The settings saved with a conversation (JSON), from the turn's controls; None when they
    do not validate (the turn itself reports the bad field)."""
    try:
        values = values_from_controls({name: settings[name] for name in saved})
    except HFChatError:
        return None
    return values.model_dump(mode="json")


def _settings(turn: dict[str, Any] | None) -> ControlValues | None:
    return ControlValues.model_validate(turn) if turn is not None else None


def wire_chat(
    chat: ChatPanel,
    saved: ConversationPanel,
    chat_fn: ChatFn,
    controls: dict[str, Component],
    settable: dict[str, Component],
) -> list[Any]:
    """The turn (submit, retry, edit), undo, clear and Stop, and the public `/chat` endpoint.

    `controls` are every sidebar control, passed to `chat_fn` by name; `settable` those saved
    with a conversation. Returns the turn events, which leaving a conversation cancels."""
    names = [name for name in inspect.signature(chat_fn).parameters if name in controls]
    if missing := set(controls) - set(names):
        raise TypeError(f"the chat function takes no parameter for the controls {sorted(missing)}")
    by_name = {name: controls[name] for name in names}  # the /chat parameters, in the function's order
    store, current, tz = saved.store, saved.current, saved.tz
    # Stop, per browser session: the stop handler sets its turn's event, and the reply sends
    # nothing after it, so no token lands in the window after Stop and what Stop saved is
    # what the window keeps (Gradio's own cancel of the event can take a token or two longer).
    stops: dict[str, threading.Event] = {}
    stops_lock = threading.Lock()

    def reply(
        message: Any, history: list[dict[str, Any]], settings: dict[str, Any], request: Any, oauth_token: Any
    ) -> Generator[list[Message], None, None]:
        """The reply so far, as messages. Closing this (Gradio does, on Stop) closes the chat
        function's generator too, which ends the turn."""
        yield from chat_fn(message, list(history), request=request, oauth_token=oauth_token, **settings)

    def begin(data: dict[Component, Any]) -> dict[Component, Any]:
        """The question in the window (`respond` saves it once its reply begins)."""
        message, history = data[chat.textbox], data[chat.history] or []
        shown = [*history, convos.user_message(message)]
        return {
            chat.textbox: busy_box(value=None),
            chat.chatbot: shown,
            chat.history: shown,
            chat.pending: {"message": message, "history": history},
            chat.turn: None,
        }

    def ask_again(history: list[dict[str, Any]], message: dict[str, Any]) -> dict[Component, Any]:
        """A turn on `message` after `history` (retry, edit): the window shows the question."""
        shown = [*history, convos.user_message(message)]
        return {
            chat.textbox: busy_box(),
            chat.chatbot: shown,
            chat.history: shown,
            chat.pending: {"message": message, "history": history},
            chat.turn: None,
        }

    def retry(history: list[dict[str, Any]]) -> dict[Component, Any]:
        before, question = convos.last_question(history or [])
        if question is None:
            return {chat.pending: None}
        return ask_again(before, convos.question_box(question))

    def edit(history: list[dict[str, Any]], edited: gr.EditData) -> dict[Component, Any]:
        """An edited question is asked again, with the files it had; later turns are dropped."""
        index = edited.index[0] if isinstance(edited.index, (list, tuple)) else edited.index
        history = history or []
        if not 0 <= index < len(history):
            return {chat.pending: None}
        files = convos.question_box(history[index])["files"]
        return ask_again(history[:index], {"text": str(edited.value or ""), "files": files})

    def respond(
        pending: dict[str, Any] | None,
        stored: Any,
        conversation_id: str | None,
        offset: Any,
        request: gr.Request,
        oauth_token: gr.OAuthToken | None,
        **settings: Any,
    ) -> Iterator[dict[Component, Any]]:
        """Stream the reply into the window; its first update with a reply in it saves the
        question (marked interrupted), the last saves the turn; nothing is saved for a turn
        that ends before its reply began."""
        if pending is None:  # nothing to ask (a retry with no question)
            yield {chat.textbox: idle_box()}
            return
        message, history = pending["message"], pending["history"]
        question = convos.user_message(message)
        values = turn_values(settings, settable)
        yield {chat.turn: values, chat.pending: None}
        shown = [*history, question]
        conversations, started = convos.load(stored), False
        stop = threading.Event()
        session = str(getattr(request, "session_hash", None))
        with stops_lock:
            stops[session] = stop
        try:
            with closing(reply(message, history, settings, request, oauth_token)) as replies:
                for messages in replies:
                    if stop.is_set():
                        return  # Stop has saved the window and unlocked the box
                    shown = [*history, question, *messages]
                    update: dict[Component, Any] = {chat.chatbot: shown, chat.history: shown}
                    if not started and convos.answered(messages):
                        started = True
                        begun = convos.start_turn(conversations, conversation_id, history, message)
                        if begun is not None:
                            conversations, conversation_id = begun.conversations, begun.current
                            update |= saved_outputs(saved, begun, offset)
                    yield update
        finally:
            with stops_lock:
                if stops.get(session) is stop:
                    del stops[session]
        if stop.is_set():
            return
        done = convos.commit(conversations, conversation_id, convos.answered_turns(shown), _settings(values))
        yield {chat.textbox: idle_box(), chat.turn: None, **(saved_outputs(saved, done, offset) if done else {})}

    busy_outputs = [chat.textbox, chat.chatbot, chat.history, chat.pending, chat.turn]
    saving = saved.saving
    turn_kwargs: dict[str, Any] = dict(
        fn=respond,
        inputs=[chat.pending, store, current, tz],
        inputs_kwargs=by_name,
        outputs=[*busy_outputs, *saving],
        preprocess=False,  # the settings reach hfchat's validation as sent, which names a bad field
        concurrency_id="chat",
        show_progress="minimal",
        api_visibility="private",
    )
    quick: dict[str, Any] = dict(queue=False, show_progress="hidden", api_visibility="private")
    begun = chat.textbox.submit(begin, inputs={chat.textbox, chat.history}, outputs=busy_outputs, **quick)
    turns = [
        begun.then(**turn_kwargs),
        chat.chatbot.retry(retry, inputs=[chat.history], outputs=busy_outputs, **quick).then(**turn_kwargs),
        chat.chatbot.edit(edit, inputs=[chat.history], outputs=busy_outputs, **quick).then(**turn_kwargs),
    ]

    def stopped(data: dict[Component, Any], request: gr.Request) -> dict[Component, Any]:
        """Stop: what the window shows is saved (with the reply's settings), the box unlocked."""
        with stops_lock:
            stop = stops.pop(str(getattr(request, "session_hash", None)), None)
        if stop is not None:
            stop.set()
        shown, settings = convos.answered_turns(data[chat.history] or []), _settings(data[chat.turn])
        done = convos.commit(convos.load(data[store]), data[current], shown, settings)
        return {chat.textbox: idle_box(), chat.turn: None, **(saved_outputs(saved, done, data[tz]) if done else {})}

    chat.textbox.stop(
        stopped,
        inputs={chat.history, chat.turn, store, current, tz},
        outputs=[chat.textbox, chat.turn, *saving],
        cancels=turns,
        **quick,
    )

    def undo(data: dict[Component, Any]) -> dict[Component, Any]:
        """The last question leaves the window (back into the box) and the saved conversation."""
        before, question = convos.last_question(data[chat.history] or [])
        out: dict[Component, Any] = {chat.chatbot: before, chat.history: before}
        if question is not None:
            out[chat.textbox] = convos.question_box(question)
        done = convos.commit(convos.load(data[store]), data[current], before, None)
        return out | (saved_outputs(saved, done, data[tz]) if done else {})

    chat.chatbot.undo(
        undo,
        inputs={chat.history, store, current, tz},
        outputs=[chat.chatbot, chat.history, chat.textbox, *saving],
        **quick,
    )

    def clear(data: dict[Component, Any]) -> dict[Component, Any]:
        """The chat's trash button: the conversation is deleted, as in Gradio's own list."""
        done = convos.commit(convos.load(data[store]), data[current], [], None)
        out: dict[Component, Any] = {chat.history: [], chat.textbox: idle_box(), chat.turn: None}
        unchanged = convos.Saved(convos.load(data[store]), None)
        return out | saved_outputs(saved, done or unchanged, data[tz], changed=bool(done))

    chat.chatbot.clear(
        clear,
        inputs={store, current, tz},
        outputs=[chat.history, chat.textbox, chat.turn, *saving],
        cancels=turns,
        **quick,
    )

    _api(chat, by_name, reply, inspect.signature(chat_fn))
    return turns


def _api(
    chat: ChatPanel,
    settings: dict[str, Any],
    reply: Callable[..., Generator[list[Message], None, None]],
    documented: inspect.Signature,
) -> None:
    """`/chat`: the message (the chat box's `{"text", "files"}`) and every setting by name; it
    streams the reply's messages, and each API session keeps its history, as a browser tab does.
    `documented` (the chat function's signature) gives each setting's default to API clients."""

    def chat_api(
        message: Any,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        oauth_token: gr.OAuthToken | None,
        **values: Any,
    ) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        history = list(history or [])
        question = convos.user_message(message)
        with closing(reply(message, history, values, request, oauth_token)) as replies:
            for messages in replies:
                yield messages, [*history, question, *messages]

    # Gradio lists a setting as optional when the function names its default (a control whose
    # value is empty, such as seed, says nothing): the settings as keyword-only parameters.
    own = [p for p in inspect.signature(chat_api).parameters.values() if p.kind is not p.VAR_KEYWORD]
    named = [documented.parameters[name].replace(kind=inspect.Parameter.KEYWORD_ONLY) for name in settings]
    chat_api.__signature__ = inspect.Signature([*own, *named])  # type: ignore[attr-defined]

    api_history = gr.State([])
    answer = gr.JSON(label="Response", visible=False)
    gr.Button(visible=False, elem_id="chat-api").click(
        chat_api,
        inputs=[chat.textbox, api_history],
        inputs_kwargs=settings,
        outputs=[answer, api_history],
        api_name="chat",
        api_description="One chat turn: the reply's messages (thinking, answer, speed line), streamed.",
        preprocess=False,  # hfchat's validation names a bad setting; Gradio's would not
        postprocess=False,
        concurrency_id="chat",
    )
