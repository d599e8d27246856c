"""The chat: a `gr.Chatbot` and a `gr.MultimodalTextbox` on Gradio's public API, and `/chat`.

A turn is three events and one write. `begin` (not queued, so the question shows at once)
puts the question in the window and shows Stop; `respond` (queued, an async generator paced
by `hfchat.streaming.paced`) streams the reply; `settle` (not queued) then unlocks the box,
draws the list and stores the finished turn with the settings it was made with. As the reply
begins, `respond` also marks the question saved with the interrupted note, and the page's
change event on that mark (`write_begun`) stores it in the browser at once, so an app restart
mid-reply keeps it.

`respond` outputs only the window and server-side states. Gradio rebuilds each output that a
streamed update leaves out (a new component and its config): 1–5 ms for the box, the list and
the download buttons, and the two BrowserStates were 16% of the app's CPU per update, so
none of them is an output of the stream (issue 14). A turn that ends before any reply began
(a refused setting or image, a model or endpoint that fails) saves nothing: it creates no
conversation, and a saved one stays as it was. In the browser that is five requests (the
begin call, the queue join, the reply's stream, `write_begun`, the settle call). Retry and
edit start a turn the same way; undo and clear are one event each; Stop saves what was shown.

The window's messages live twice: in the `gr.Chatbot` (drawn) and in `ChatPanel.history`
(server-side, what the model gets next); every event that changes one sets both.
"""

import collections
import inspect
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import aclosing, closing
from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from hfchat import conversations as convos
from hfchat.api.inputs import box_message, plain_history
from hfchat.continuation import Continuation, CutReply, can_continue, cut_reply
from hfchat.documents import DOCUMENT_EXTENSIONS
from hfchat.errors import HFChatError
from hfchat.messages import Message
from hfchat.presets import ControlValues, values_from_controls
from hfchat.reply import answer_text, fresh_seed
from hfchat.streaming import DEFAULT_RATE, paced
from hfchat.ui.conversations import ConversationPanel, saved_outputs
from hfchat.ui.meter import Meter, meter_component
from hfchat.ui.render import stopped_reply
from hfchat.updates import Failed, Footer, ReplyView, Thinking

LATEX_DELIMITERS: list[dict[str, str | bool]] = [
    {"left": "$$", "right": "$$", "display": True},
    {"left": "\\[", "right": "\\]", "display": True},
    {"left": "\\(", "right": "\\)", "display": False},
    {"left": "$", "right": "$", "display": False},
]
"""Math in replies: $$…$$ and \\[…\\] as display math, \\(…\\) and $…$ inline; the longer
delimiters come first, so "$$" is never read as two "$". Gradio matches delimiters literally
(KaTeX auto-render), so two prices in one message ("$5 and $6") are read as math too: the
cost of single-dollar math, which replies use far more often than two prices."""
PLACEHOLDER = "Type a message or attach a document…"

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
    meter: gr.HTML
    """The context meter under the box (`hfchat.ui.meter`)."""
    go_on: gr.Button
    """Continue: shown under a last reply that stopped for length (`continue_button`)."""
    to_save: gr.State
    """What the running turn saved last (a `hfchat.conversations.Saved`, or None): the question
    as its reply began, then the finished turn. The browser's store is written from it by
    `write_begun` and `settle`, never by the streamed reply itself (see `wire_chat`)."""
    save_mark: gr.State
    """A fresh mark each time the reply's beginning is saved: its `.change` is what makes the
    page call `write_begun` once, mid-reply."""

    def idle(self) -> dict[str, Any]:
        """The update that unlocks the chat box (for events that leave a turn behind)."""
        return idle_box()

    def continuable(self, messages: list[dict[str, Any]] | None) -> dict[str, Any]:
        """The Continue button for a window that shows `messages` (for events that set them)."""
        return continue_button(messages)


def continue_button(messages: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Continue shows when the window's last reply stopped for length (`hfchat.continuation`)."""
    return gr.update(visible=can_continue(messages or []))


def chat_panel() -> ChatPanel:
    """The chat window, filling the page's height, and the chat box under it (rendered where
    it is called): no title block and no label chip, so the conversation gets the room."""
    chatbot = gr.Chatbot(
        label="Chat",
        show_label=False,
        scale=1,
        height="100%",
        editable="user",
        elem_id="chat-window",
        latex_delimiters=LATEX_DELIMITERS,
    )
    # Between the window and the box, centred (a thumb's reach on a phone), only when it applies.
    go_on = gr.Button("Continue", visible=False, size="sm", variant="secondary", elem_id="chat-continue")
    with gr.Group(), gr.Row():
        textbox = gr.MultimodalTextbox(
            sources=["upload"],
            file_types=["image", *DOCUMENT_EXTENSIONS],  # a text-only task refuses images with a message
            file_count="multiple",
            placeholder=PLACEHOLDER,
            show_label=False,
            submit_btn=True,
            stop_btn=False,  # shown while a reply is generated (busy_box)
            scale=7,
            elem_id="chat-box",
        )
    meter = meter_component()
    return ChatPanel(
        chatbot=chatbot,
        textbox=textbox,
        history=gr.State([]),
        pending=gr.State(),
        turn=gr.State(),
        meter=meter,
        go_on=go_on,
        to_save=gr.State(),
        save_mark=gr.State(),
    )


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
    rate: float = DEFAULT_RATE,
    meter: Meter | None = None,
) -> list[Any]:
    """The turn (submit, retry, edit), undo, clear and Stop, and the public `/chat` endpoint.
    `rate`: reply updates a second (`--stream-rate`), for the window and `/chat` alike.
    `meter` (`hfchat.ui.meter.wire_meter`) is redrawn by a turn's last update and after the
    other events that change the conversation (Stop, undo, clear).

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
        message: Any,
        history: list[dict[str, Any]],
        settings: dict[str, Any],
        request: Any,
        oauth_token: Any,
        continue_from: Continuation | None = None,
    ) -> AsyncGenerator[list[Message], None]:
        """The reply so far, as messages, paced for the page (`hfchat.streaming.paced`: at most
        `rate` updates a second, the first text and the end at once). Closing this (Gradio
        does, on Stop) or cancelling its task sets the turn's cancel event, which ends the
        generation even while the backend call is blocked. `continue_from`: Continue's turn
        (the reply to `message` that stopped for length goes on)."""
        cancel = threading.Event()
        going_on = {"continue_from": continue_from} if continue_from is not None else {}
        messages = chat_fn(
            message, list(history), request=request, oauth_token=oauth_token, cancel=cancel, **going_on, **settings
        )
        return paced(messages, rate, urgent=convos.answered, cancel=cancel)

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
            chat.go_on: gr.update(visible=False),
        }

    def ask_again(history: list[dict[str, Any]], message: dict[str, Any], retry: bool = False) -> dict[Component, Any]:
        """A turn on `message` after `history` (retry, edit): the window shows the question."""
        shown = [*history, convos.user_message(message)]
        return {
            chat.textbox: busy_box(),
            chat.chatbot: shown,
            chat.history: shown,
            chat.pending: {"message": message, "history": history, "retry": retry},
            chat.turn: None,
            chat.go_on: gr.update(visible=False),
        }

    def retry(history: list[dict[str, Any]]) -> dict[Component, Any]:
        before, question = convos.last_question(history or [])
        if question is None:
            return {chat.pending: None}
        return ask_again(before, convos.question_box(question), retry=True)

    def go_on(history: list[dict[str, Any]]) -> dict[Component, Any]:
        """Continue: the last reply, cut by length, goes on in the same message; the window
        keeps showing it until the continuation's first update."""
        cut = cut_reply(history or [])
        if cut is None:  # the window changed since the button showed: nothing to continue
            return {chat.pending: None, chat.go_on: gr.update(visible=False)}
        message = convos.question_box(cut.question)
        return {
            chat.textbox: busy_box(),
            chat.pending: {"message": message, "history": cut.history, "cut": cut},
            chat.turn: None,
            chat.go_on: gr.update(visible=False),
        }

    def edit(history: list[dict[str, Any]], edited: gr.EditData) -> dict[Component, Any]:
        """An edited question is asked again, with the files it had; later turns are dropped."""
        index = edited.index[0] if isinstance(edited.index, (list, tuple)) else edited.index
        history = history or []
        if not 0 <= index < len(history):
            return {chat.pending: None}
        files = convos.question_box(history[index])["files"]
        return ask_again(history[:index], {"text": str(edited.value or ""), "files": files})

    async def respond(
        pending: dict[str, Any] | None,
        stored: Any,
        conversation_id: str | None,
        offset: Any,
        request: gr.Request,
        oauth_token: gr.OAuthToken | None,
        **settings: Any,
    ) -> AsyncIterator[dict[Component, Any]]:
        """Stream the reply into the window; its first update with a reply in it saves the
        question (marked interrupted), the last saves the turn; nothing is saved for a turn
        that ends before its reply began."""
        if pending is None:  # nothing to ask (a retry with no question); `settle` unlocks the box
            yield {chat.pending: None, chat.to_save: None}
            return
        message, history = pending["message"], pending["history"]
        cut: CutReply | None = pending.get("cut")
        # Continue's turn shows its question as it was, and its reply joined (`CutReply.shown`);
        # the conversation is saved already, with the cut reply.
        question = cut.question if cut else convos.user_message(message)
        values = turn_values(settings, settable)  # saved with the conversation as the user set them
        if pending.get("retry") and settings.get("do_sample") is True:
            settings = {**settings, "seed": fresh_seed()}  # a new sample, whatever the seed (the footer names it)
        # The box shows Stop already: the event that started the turn (send, retry, edit) set it.
        yield {chat.turn: values, chat.pending: None, chat.to_save: None}  # no earlier turn's save
        shown = [*history, question, *(cut.reply if cut else [])]
        conversations, started = convos.load(stored), cut is not None
        stop = threading.Event()
        session = str(getattr(request, "session_hash", None))
        with stops_lock:
            stops[session] = stop
        try:
            going_on = cut.continuation if cut else None
            async with aclosing(reply(message, history, settings, request, oauth_token, going_on)) as replies:
                async for messages in replies:
                    if stop.is_set():
                        yield untouched  # Stop has saved the window and unlocked the box
                        return
                    shown = convos.turn_window(history, question, cut.shown(messages) if cut else messages)
                    update: dict[Component, Any] = {chat.chatbot: shown, chat.history: shown}
                    if not started and convos.answered(messages):
                        started = True
                        chips = [m for m in messages if convos.is_chip(m)]
                        begun = convos.start_turn(conversations, conversation_id, [*history, *chips], message)
                        if begun is not None:  # written to the browser by `write_begun`
                            conversations, conversation_id = begun.conversations, begun.current
                            update |= {current: begun.current, chat.to_save: begun, chat.save_mark: convos.new_id()}
                    yield update
        finally:
            with stops_lock:
                if stops.get(session) is stop:
                    del stops[session]
        if stop.is_set():
            yield untouched
            return
        done = convos.commit(conversations, conversation_id, convos.answered_turns(shown), _settings(values))
        yield {chat.turn: None, chat.to_save: done, **({current: done.current} if done else {})}  # `settle` writes it

    # The last update of a reply that Stop ended. Gradio ends a stream by sending each output's
    # last value again: that must not be the window as it was before Stop's own update (seen in
    # CI: the stopped footer was drawn, then overwritten by the reply's last streamed window).
    # And nothing left to save: the reply ends normally once Stop is set, so `settle` still runs,
    # and it must not store the begun question over what Stop saved.
    untouched: dict[Component, Any] = {chat.chatbot: gr.skip(), chat.to_save: None}

    written = [saved.store, saved.opened]  # the browser's copies: BrowserStates, never streamed

    def write_begun(data: dict[Component, Any]) -> dict[Component, Any]:
        """Mid-reply, once: the question saved as its reply began, into the browser's storage
        (so a reload or an app restart keeps it). Nothing once the turn is over: its end (or
        Stop) has written the newer save, which this must not overwrite."""
        begun: convos.Saved | None = data[chat.to_save]
        if data[chat.turn] is None or begun is None:
            return {c: gr.skip() for c in written}
        update = saved_outputs(saved, begun, data[tz])
        return {c: update[c] for c in written}

    def settle(
        data: dict[Component, Any], request: gr.Request, oauth_token: gr.OAuthToken | None
    ) -> dict[Component, Any]:
        """After a reply: the box unlocked, the list and Export drawn from what it saved,
        Continue shown if the reply stopped for length, the meter counting the new history
        (here, not in an event of its own), and the finished turn stored."""
        done: convos.Saved | None = data[chat.to_save]
        if done is None:  # the turn saved nothing new: the list as the browser has it
            shown = saved_outputs(saved, convos.Saved(convos.load(data[store]), data[current]), data[tz], False)
            shown = {c: v for c, v in shown.items() if c in saved.shown}
        else:
            shown = {c: v for c, v in saved_outputs(saved, done, data[tz]).items() if c in (*written, *saved.shown)}
        out = {chat.textbox: idle_box(), chat.go_on: continue_button(data[chat.history]), **shown}
        if meter is not None:
            values = {name: data[control] for name, control in by_name.items()}
            out[chat.meter] = meter.draw(None, data[chat.history], request, oauth_token, **values)
        return out

    busy_outputs = [chat.textbox, chat.chatbot, chat.history, chat.pending, chat.turn, chat.go_on]
    saving = saved.saving
    # Streamed: only the window and data. Gradio rebuilds every output an update leaves out
    # (a new component and its config, 1–5 ms each for the box, the list and the download
    # buttons), so those are drawn once, by `settle`, after the reply.
    turn_kwargs: dict[str, Any] = dict(
        fn=respond,
        inputs=[chat.pending, store, current, tz],
        inputs_kwargs=by_name,
        outputs=[chat.chatbot, chat.history, chat.pending, chat.turn, chat.to_save, chat.save_mark, current],
        preprocess=False,  # the settings reach hfchat's validation as sent, which names a bad field
        concurrency_id="chat",
        show_progress="hidden",  # Stop and the reply itself show it runs; no counter on the box
        show_progress_on=[chat.chatbot],  # see `quick` below
        api_visibility="private",
    )
    # Gradio 6.31 draws a timer on an event's outputs even with show_progress="hidden": on the
    # chat box it sat beside the submit arrow ("processing | 1.5s"); the window takes it instead.
    quick: dict[str, Any] = dict(
        queue=False, show_progress="hidden", show_progress_on=[chat.chatbot], api_visibility="private"
    )
    # Its outputs are invisible, so no progress to show anywhere; on the window (as `quick`
    # has it) the write's completion reset the box mid-reply: Stop turned back into submit.
    chat.save_mark.change(
        write_begun,
        inputs={chat.to_save, chat.turn, tz},
        outputs=written,
        queue=False,
        show_progress="hidden",
        api_visibility="private",
    )
    begun = chat.textbox.submit(begin, inputs={chat.textbox, chat.history}, outputs=busy_outputs, **quick)
    settle_kwargs: dict[str, Any] = dict(
        fn=settle,
        inputs={store, current, tz, chat.history, chat.to_save, *by_name.values()},
        outputs=[chat.textbox, chat.go_on, chat.meter, *written, *saved.shown],
        preprocess=False,  # the settings reach the meter as sent, as the turn's do
        **quick,
    )
    starts = [
        begun,
        chat.chatbot.retry(retry, inputs=[chat.history], outputs=busy_outputs, **quick),
        chat.chatbot.edit(edit, inputs=[chat.history], outputs=busy_outputs, **quick),
        chat.go_on.click(go_on, inputs=[chat.history], outputs=busy_outputs, **quick),
    ]
    turns = [start.then(**turn_kwargs) for start in starts]
    for turn in turns:
        turn.success(**settle_kwargs)

    def stopped(data: dict[Component, Any], request: gr.Request) -> dict[Component, Any]:
        """Stop: the reply keeps what it shows, with the footer "stopped by you" (in the window
        and saved, with the reply's settings), and the box is unlocked."""
        with stops_lock:
            stop = stops.pop(str(getattr(request, "session_hash", None)), None)
        if stop is not None:
            stop.set()
        shown = data[chat.history] or []
        if stop is not None:  # the turn was still running (not one that ended as Stop was clicked)
            shown = stopped_reply(shown)
        settings = _settings(data[chat.turn])
        done = convos.commit(convos.load(data[store]), data[current], convos.answered_turns(shown), settings)
        out = {chat.textbox: idle_box(), chat.turn: None, chat.chatbot: shown, chat.history: shown}
        out[chat.go_on] = continue_button(shown)
        return out | (saved_outputs(saved, done, data[tz]) if done else {})

    stop = chat.textbox.stop(
        stopped,
        inputs={chat.history, chat.turn, store, current, tz},
        outputs=[chat.textbox, chat.turn, chat.chatbot, chat.history, chat.go_on, *saving],
        cancels=turns,
        **quick,
    )
    if meter is not None:
        meter.refresh(stop)

    def undo(data: dict[Component, Any]) -> dict[Component, Any]:
        """The last question leaves the window (back into the box) and the saved conversation."""
        before, question = convos.last_question(data[chat.history] or [])
        out: dict[Component, Any] = {chat.chatbot: before, chat.history: before, chat.go_on: continue_button(before)}
        if question is not None:
            out[chat.textbox] = convos.question_box(question)
        done = convos.commit(convos.load(data[store]), data[current], before, None)
        return out | (saved_outputs(saved, done, data[tz]) if done else {})

    undone = chat.chatbot.undo(
        undo,
        inputs={chat.history, store, current, tz},
        outputs=[chat.chatbot, chat.history, chat.textbox, chat.go_on, *saving],
        **quick,
    )
    if meter is not None:
        meter.refresh(undone)

    def clear(data: dict[Component, Any]) -> dict[Component, Any]:
        """The chat's trash button: the conversation is deleted, as in Gradio's own list."""
        done = convos.commit(convos.load(data[store]), data[current], [], None)
        out: dict[Component, Any] = {chat.history: [], chat.textbox: idle_box(), chat.turn: None}
        out[chat.go_on] = gr.update(visible=False)
        unchanged = convos.Saved(convos.load(data[store]), None)
        return out | saved_outputs(saved, done or unchanged, data[tz], changed=bool(done))

    cleared = chat.chatbot.clear(
        clear,
        inputs={store, current, tz},
        outputs=[chat.history, chat.textbox, chat.turn, chat.go_on, *saving],
        cancels=turns,
        **quick,
    )
    if meter is not None:
        meter.refresh(cleared)

    _api(chat, by_name, reply, inspect.signature(chat_fn))
    return turns


def _api(
    chat: ChatPanel,
    settings: dict[str, Any],
    reply: Callable[..., AsyncGenerator[list[Message], None]],
    documented: inspect.Signature,
) -> None:
    """`/chat`: the message (a plain string, or the chat box's `{"text", "files"}`) and every
    setting by name; it streams the reply's messages, and each API session keeps its history,
    as a browser tab does. `/continue` (the settings only) continues that session's last reply
    when it stopped for length, as the Continue button does, and streams the joined reply.
    `documented` (the chat function's signature) gives each setting's default to API clients.

    The message goes in through a hidden `gr.JSON`, not the chat box: Gradio validates an input
    against its component's data model before any function runs, and the multimodal box's
    refuses a string with its generic error. A message of the wrong shape is a `gr.Error`
    (its text is what the client reads); this event is API-only, so no page shows it."""

    async def chat_api(
        message: Any,
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        oauth_token: gr.OAuthToken | None,
        **values: Any,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        try:
            message = box_message(message)
        except HFChatError as exc:
            raise gr.Error(str(exc), title=exc.title, print_exception=False) from None
        history = list(history or [])
        question = convos.user_message(message)
        async with aclosing(reply(message, history, values, request, oauth_token)) as replies:
            async for messages in replies:
                yield messages, convos.turn_window(history, question, messages)

    # Gradio lists a setting as optional when the function names its default (a control whose
    # value is empty, such as seed, says nothing): the settings as keyword-only parameters.
    own = [p for p in inspect.signature(chat_api).parameters.values() if p.kind is not p.VAR_KEYWORD]
    named = [documented.parameters[name].replace(kind=inspect.Parameter.KEYWORD_ONLY) for name in settings]
    chat_api.__signature__ = inspect.Signature([*own, *named])  # type: ignore[attr-defined]

    async def continue_api(
        history: list[dict[str, Any]] | None,
        request: gr.Request,
        oauth_token: gr.OAuthToken | None,
        **values: Any,
    ) -> AsyncIterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        cut = cut_reply(history or [])
        if cut is None:
            raise gr.Error(
                "There is no reply to continue: the last reply of this session did not stop for length "
                '(its finish_reason is not "length"). Call /chat first; raise max_new_tokens to get longer replies.',
                title="Nothing to continue",
                print_exception=False,
            )
        message = convos.question_box(cut.question)
        async with aclosing(reply(message, cut.history, values, request, oauth_token, cut.continuation)) as replies:
            async for messages in replies:
                joined = cut.shown(messages)
                yield joined, [*cut.history, cut.question, *joined]

    own = [p for p in inspect.signature(continue_api).parameters.values() if p.kind is not p.VAR_KEYWORD]
    continue_api.__signature__ = inspect.Signature([*own, *named])  # type: ignore[attr-defined]

    api_history = gr.State([])
    answer = gr.JSON(label="Response", visible=False)
    gr.Button(visible=False, elem_id="chat-api").click(
        chat_api,
        inputs=[gr.JSON(label="message", visible=False), api_history],
        inputs_kwargs=settings,
        outputs=[answer, api_history],
        api_name="chat",
        api_description="One chat turn: the reply's messages (thinking, answer, speed line), streamed.",
        preprocess=False,  # hfchat's validation names a bad setting; Gradio's would not
        postprocess=False,
        concurrency_id="chat",
    )
    gr.Button(visible=False, elem_id="continue-api").click(
        continue_api,
        inputs=[api_history],
        inputs_kwargs=settings,
        outputs=[answer, api_history],
        api_name="continue",
        api_description=(
            'Continue this session\'s last /chat reply, which stopped for length (finish_reason "length"): '
            "the whole reply, joined, under one speed line, streamed. Takes the same settings as /chat."
        ),
        preprocess=False,
        postprocess=False,
        concurrency_id="chat",
    )


def wire_ask(views: Callable[..., Iterator[ReplyView]], controls: dict[str, Component]) -> None:
    """`/ask`: one stateless answer for scripts. It takes `message` (a string, or the chat box's
    dict), an optional `history` of `{role, content}` and every setting by name (as `/chat`),
    and returns three outputs: the answer text, the thinking (or ""), and the reply's figures
    (`hfchat.reply.Reply.figures`: model, backend, tokens, finish_reason, timings).

    No session state: the history is only what the call sends, so the same greedy call gives
    the same answer. A turn that fails is a `gr.Error` with the chat's readable message (the
    client raises it); a reply a limit cut is returned as it stands, finish_reason "cut".
    `views` is `hfchat.chat.make_chat_fn`'s function (typed views, for the thinking and figures)."""
    documented = inspect.signature(views)
    names = [name for name in documented.parameters if name in controls and name != "show_speed"]

    def ask(
        message: Any, history: Any, request: gr.Request, oauth_token: gr.OAuthToken | None, **values: Any
    ) -> tuple[str, str, dict[str, Any]]:
        try:
            box, past = box_message(message), plain_history(history)
        except HFChatError as exc:
            raise gr.Error(str(exc), title=exc.title, print_exception=False) from None
        turn = views(box, past, request=request, oauth_token=oauth_token, show_speed=True, **values)
        with closing(turn) as replies:  # type: ignore[type-var]  # a generator has close()
            last: ReplyView = collections.deque(replies, maxlen=1).pop()  # respond yields at least once
        failed = next((u for u in last if isinstance(u, Failed) and not u.cut), None)
        if failed is not None:
            raise gr.Error(f"{failed.message} {failed.hint}".strip(), title=failed.title, print_exception=False)
        thinking = next((u.text for u in last if isinstance(u, Thinking)), "")
        figures = next((dict(u.figures) for u in last if isinstance(u, Footer)), {})
        return answer_text(tuple(u for u in last if not isinstance(u, Failed))), thinking, figures

    own = [p for p in inspect.signature(ask).parameters.values() if p.kind is not p.VAR_KEYWORD]
    # history is optional; the request and token after it, which Gradio fills in, then too
    own[1:] = [p.replace(default=None) for p in own[1:]]
    named = [documented.parameters[name].replace(kind=inspect.Parameter.KEYWORD_ONLY) for name in names]
    ask.__signature__ = inspect.Signature([*own, *named])  # type: ignore[attr-defined]

    gr.Button(visible=False, elem_id="ask-api").click(
        ask,
        inputs=[gr.JSON(label="message", visible=False), gr.JSON(label="history", visible=False)],
        inputs_kwargs={name: controls[name] for name in names},
        outputs=[
            gr.Textbox(label="answer", visible=False),
            gr.Textbox(label="thinking", visible=False),
            gr.JSON(label="figures", visible=False),
        ],
        api_name="ask",
        api_description="One stateless answer: (answer, thinking, figures); history is [{role, content}].",
        preprocess=False,
        postprocess=False,
        concurrency_id="chat",
    )
