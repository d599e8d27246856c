"""Continue a reply that stopped for length: find it in the window, and ask the model to go on.

A reply whose footer says "stopped: length" (its figures' `finish_reason`, never its text)
can be continued: the question is asked again with the answer so far as the last, assistant
message (`continued_messages`). Each backend reads that as "go on from here":

- local text models render it with `apply_chat_template(..., continue_final_message=True)`,
  so the prompt ends in the partial text and greedy decoding carries on from it;
- endpoints send it as an assistant-prefix message with vLLM's `continue_final_message`
  fields; a server that refuses them gets `as_instruction` instead: the partial answer, then
  a user message asking to continue exactly where it stopped.

The continuation joins the same answer (`hfchat.reply.Reply.resumed`) under one footer.
Plain data and LangChain messages: no gradio, no model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from hfchat.messages import Message, MessageKind, content_text, message_kind
from hfchat.updates import FIGURES_DATA

LENGTH = "length"
"""The finish reason of a reply the token budget ended (OpenAI's, and the local backend's)."""

CONTINUE_INSTRUCTION = (
    "Your previous reply was cut off by the length limit. Continue it exactly where it stopped: "
    "do not repeat anything, do not start over, and do not comment on this request."
)
"""What a server that cannot prefill the reply is asked instead (`as_instruction`)."""

PREFILL_BODY: Mapping[str, Any] = {"continue_final_message": True, "add_generation_prompt": False}
"""The request fields that make vLLM (and servers like it) continue the final assistant
message instead of opening a new one."""


@dataclass(frozen=True)
class Continuation:
    """What a continued turn starts from: the answer so far and its footer's figures (tokens,
    time), which the one footer under the joined answer counts in."""

    text: str
    figures: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CutReply:
    """The window's last turn, when its reply stopped for length: what comes before its
    question, the question, the reply as it is shown, and where the continuation starts."""

    history: list[Message]
    question: Message
    reply: list[Message]
    continuation: Continuation

    @property
    def kept(self) -> list[Message]:
        """What the reply shows above its answer (thinking, tool calls): it stays as it is."""
        return [m for m in self.reply if message_kind(m) in (MessageKind.THINKING, MessageKind.TOOL)]

    def shown(self, messages: Sequence[Message]) -> list[Message]:
        """The reply while it is continued, from the continuation's messages so far: until its
        answer arrives (a model that loads first, a failure), the reply as it was, then those;
        after, what stays above the answer, then the joined answer and its footer."""
        if any(m.get("role") == "assistant" and message_kind(m) is MessageKind.ANSWER for m in messages):
            return [*self.kept, *messages]
        return [*self.reply, *messages]


def footer_figures(message: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A footer message's figures as data (`hfchat.updates.FIGURES_DATA`), None for any other."""
    figures = message.get(FIGURES_DATA)
    if message_kind(message) is not MessageKind.FOOTER or not isinstance(figures, Mapping):
        return None
    return figures


def cut_reply(messages: Sequence[Mapping[str, Any]]) -> CutReply | None:
    """The last reply of `messages`, when it can be continued: it has an answer and a footer
    whose finish reason is "length" (a reply the user stopped, one that failed, was cut by a
    limit of the app's, or finished normally cannot). None otherwise."""
    start = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    if start is None:
        return None
    reply = [dict(m) for m in messages[start + 1 :]]
    figures = next((f for m in reply if (f := footer_figures(m)) is not None), None)
    answers = [m for m in reply if message_kind(m) is MessageKind.ANSWER]
    text = "\n\n".join(content_text(m.get("content")) for m in answers)
    if figures is None or figures.get("finish_reason") != LENGTH or not text.strip():
        return None
    if any(message_kind(m) is MessageKind.FAILED for m in reply):
        return None
    history = [dict(m) for m in messages[:start]]
    return CutReply(history, dict(messages[start]), reply, Continuation(text, dict(figures)))


def can_continue(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the window's last reply stopped for length (the Continue button shows)."""
    return cut_reply(messages) is not None


def continued_messages(messages: Sequence[BaseMessage], continuation: Continuation | None) -> list[BaseMessage]:
    """A turn's messages, with the answer so far as the final assistant message to go on from."""
    if continuation is None:
        return list(messages)
    return [*messages, AIMessage(content=continuation.text)]


def continues_reply(messages: Sequence[BaseMessage]) -> bool:
    """Whether a turn asks to continue its final message: it ends in an assistant message
    (a plain one; a tool loop's message with calls is followed by their results)."""
    return bool(messages) and isinstance(messages[-1], AIMessage) and not messages[-1].tool_calls


def as_instruction(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The continuation for a server that cannot prefill: the partial answer as an ordinary
    assistant turn, then a user message that asks for the rest (`CONTINUE_INSTRUCTION`)."""
    return [*messages, HumanMessage(content=CONTINUE_INSTRUCTION)]
