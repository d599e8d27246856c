"""The ChatHuggingFace every backend builds: it can fold the system prompt away.

Some chat templates refuse the system role (Gemma-style `raise_exception`), locally or on
the server behind an endpoint. When that is detected, `fold_system` is set on the cached
instance and the system text moves into the first user turn, for `stream` and `invoke` alike.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from langchain_huggingface import ChatHuggingFace

from hfchat.messages import fold_system_prompt


class FoldingChat(ChatHuggingFace):
    fold_system: bool = False

    def _to_chat_prompt(self, messages: list[BaseMessage]) -> str:
        """The local path renders the template here."""
        return super()._to_chat_prompt(fold_system_prompt(messages) if self.fold_system else messages)

    def _create_message_dicts(
        self, messages: list[BaseMessage], stop: list[str] | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The endpoint path turns messages into JSON here."""
        return super()._create_message_dicts(fold_system_prompt(messages) if self.fold_system else messages, stop)
