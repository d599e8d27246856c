"""The app's conversation wiring without a browser: Gradio's save hooks are still there."""

from __future__ import annotations

import inspect

import gradio as gr

from hfchat.ui.chat_tab import SavedChatInterface
from hfchat.ui.page import BROWSER_STORAGE_SECRET


def test_gradio_still_saves_through_the_hooks_we_replace() -> None:
    """ChatInterface saves after each turn, retry, undo and edit through `_save_conversation`,
    and on clear through `_delete_conversation`; a Gradio upgrade that changes them fails here."""
    save = inspect.signature(gr.ChatInterface._save_conversation)
    delete = inspect.signature(gr.ChatInterface._delete_conversation)
    assert list(save.parameters) == ["self", "index", "conversation", "saved_conversations"]
    assert list(delete.parameters) == ["self", "index", "saved_conversations"]
    source = inspect.getsource(gr.ChatInterface._setup_events)
    assert source.count("**save_fn_kwargs") >= 4, "saved after submit, retry, undo, option and edit"
    assert "self._delete_conversation" in source


def make_chat() -> SavedChatInterface:
    with gr.Blocks():
        return SavedChatInterface(lambda message, history: "ok")


def test_the_list_is_stored_under_a_fixed_key_and_secret() -> None:
    chat = make_chat()
    config = chat.saved_conversations.get_config()
    assert config["storage_key"] == "hfchat-conversations"
    assert config["secret"] == BROWSER_STORAGE_SECRET
    assert not chat.save_history, "Gradio's own untitled list is not drawn"


def test_saving_goes_through_hfchat_conversations() -> None:
    chat = make_chat()
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    current, stored = chat._save_conversation(None, messages, [])
    assert stored[0]["id"] == current and stored[0]["title"] == "hi"
    assert chat._save_conversation(current, messages, stored) == (current, stored), "unchanged: not rewritten"
    assert chat._delete_conversation(current, stored) == (None, [])
    assert chat._delete_conversation(None, stored) == (None, stored), "nothing saved yet: nothing deleted"
