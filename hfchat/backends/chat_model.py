"""The ChatHuggingFace every backend builds: it can fold the system prompt away.

Some chat templates refuse the system role (Gemma-style `raise_exception`), locally or on
the server behind an endpoint. When that is detected (`refuses_system` for a template we
hold; a failed first request for a server's, see `remote.RemoteBackend.stream`), `fold_system`
is set on the cached instance and the system text moves into the first user turn, for
`stream` and `invoke` alike.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage
from langchain_huggingface import ChatHuggingFace

from hfchat.messages import fold_system_prompt


def refuses_system(template_owner: Any, *, content_parts: bool = False) -> bool:
    """True when the chat template of `template_owner` (a tokenizer, or a vision model's
    processor) raises on a system turn, so the system prompt must be folded into the first
    user turn. `content_parts`: the template reads OpenAI-style content parts, not strings."""
    from jinja2 import TemplateError

    def content(text: str) -> Any:
        return [{"type": "text", "text": text}] if content_parts else text

    probe = [{"role": "system", "content": content("s")}, {"role": "user", "content": content("u")}]
    try:
        template_owner.apply_chat_template(probe, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        return True
    return False


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
