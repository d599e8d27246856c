"""The chat: Gradio's ChatInterface, saving titled conversations."""

from __future__ import annotations

from typing import Any

import gradio as gr

from hfchat import conversations as convos
from hfchat.ui.page import BROWSER_STORAGE_SECRET


def sync_state(chat: gr.ChatInterface) -> dict[str, Any]:
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
