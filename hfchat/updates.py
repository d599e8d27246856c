"""What a reply is made of while it streams, as typed data: loading, notices, thinking, the
answer, tool calls, the speed footer, a failure.

`ChatService.respond` yields `ReplyView` snapshots (the whole reply so far, in display
order) and `hfchat.ui.render.to_messages` turns one into Gradio chat messages, marking every
message that is not the answer with a metadata id (`KIND_IDS`). History conversion
(`hfchat.messages`) reads those ids back, never the text, so what a message is never
depends on what it says. Anchor: chat-ui's `MessageUpdate` union (status, stream,
reasoning, tool, final answer), as snapshots rather than deltas: Gradio redraws the whole
reply on every step anyway. Gradio-free and dependency-free, so every layer can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# The marks are symbols of the standard text fonts (DejaVu Sans, Segoe UI Symbol, Apple
# Symbols), in text presentation (no emoji variation selector): they render without an emoji
# font, where the emoji they replace drew empty boxes. Readers never rely on them: a message's
# kind is its metadata id (saved messages from before used the emoji: `hfchat.messages`).
ERROR_MARK = "\u26a0"  # ⚠
"""Starts the visible text of a failure (readers tell a failure by its metadata id)."""

LOADING_MARK = "\u25d4"  # ◔
"""Starts the visible text of the loading notice."""

NOTICE_MARK = "\u2702"  # ✂
"""Starts the visible text of the trimmed-history notice."""

SPEED_MARK = "\u25f7"  # ◷
"""Starts the visible text of the speed footer."""

STOPPED_MARK = "\u25a0"  # ■
"""Starts the visible text of the footer of a reply the user stopped."""

STOPPED_TEXT = "stopped by you"

FOOTER_MARKS = (SPEED_MARK, STOPPED_MARK)
"""How a footer's visible text starts (for the browser tests, which see no metadata)."""

THINKING_TITLE = "Thinking"
"""The title of the collapsible thinking message."""

CUT_TITLE = "Reply cut short"
"""The title of the failure shown after a reply a limit ended (`Failed(cut=True)`)."""

CUT_HINT = "The text above is what arrived."

LOADING_ID = "hfchat-loading"
NOTICE_ID = "hfchat-notice"
THINKING_ID = "hfchat-thinking"
TOOL_ID = "hfchat-tool"
"""A tool call's block id starts with it (`hfchat-tool:<key>`, its full result `…:full`)."""
TOOL_DATA = "tool"
"""The message key that holds a tool call as data (id, name, server, arguments, result, error,
step): what history conversion sends back to the model; never drawn."""
DOCUMENT_ID = "hfchat-document"
"""A user message that is an attached document's chip (name, size, pages); its text is data."""
DOCUMENT_DATA = "document"
"""The message key that holds an attached document's extracted text as data
(`hfchat.documents.to_data`): what each later question retrieves from; never drawn."""
SOURCES_ID = "hfchat-sources"
SOURCES_TITLE = "Sources"
FOOTER_ID = "hfchat-footer"
FIGURES_DATA = "figures"
"""The message key that holds a footer's figures as data (`Footer.figures`: tokens, timings,
finish_reason): what Continue reads to tell a reply cut by length and to count both parts in
one footer; never drawn (Gradio draws only the keys it knows)."""
FAILED_ID = "hfchat-failed"
INTERRUPTED_ID = "hfchat-interrupted"
"""The saved stand-in for a reply still streaming (`hfchat.conversations.interrupted_note`):
unlike the others, it is a reply, so its question stays in the history."""


@dataclass(frozen=True)
class Loading:
    """A model is being loaded for this turn (a local model's first use of a configuration),
    as it stands after `elapsed_s` seconds; `ChatService.respond` yields a new one at least
    once a second until the reply's first token."""

    model: str
    mode: str = ""
    """How it loads when that is worth saying, e.g. "4-bit nf4"."""
    elapsed_s: float = 0.0
    progress: float | None = None
    """0..1 of the current stage when known (a download's bytes, the weights loaded), else None."""
    stage: str = ""
    """What the load is doing, as the libraries report it: "downloading model.safetensors",
    "loading weights", "waiting for another model to load"; "" before anything is known."""

    @property
    def text(self) -> str:
        mode = f" in {self.mode}" if self.mode else ""
        stage = f" {self.stage}" if self.stage else ""
        progress = f" {self.progress:.0%}" if self.progress is not None else ""
        head = f"{LOADING_MARK} Loading `{self.model}`{mode} (first use of this configuration)…"
        return f"{head} {int(self.elapsed_s)} s{' ·' if stage else ''}{stage}{progress}"  # whole seconds, as a clock


@dataclass(frozen=True)
class Notice:
    """A note from the app above the reply (markdown), e.g. that older turns were not sent."""

    text: str


@dataclass(frozen=True)
class Thinking:
    """The model's reasoning so far; `done` once the answer began or the reply ended."""

    text: str
    done: bool
    duration_s: float | None = None


@dataclass(frozen=True)
class Answer:
    """The answer as the model wrote it, so far."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A tool the model called: pending while it runs, then done with its result (or error)
    and how long it took. `id` is the model's call id (unique in the conversation's turn),
    `server` where it ran ("built-in" or an MCP server's label), `step` the round of tool
    calls it belongs to (calls of one round went to the model in one message)."""

    id: str
    name: str
    arguments: str
    """The arguments as the model sent them (JSON text, shown even when it does not parse)."""
    server: str = ""
    result: str | None = None
    done: bool = False
    error: bool = False
    duration_s: float | None = None
    step: int = 0
    key: str = ""
    """Names its block on the page, unique in the conversation (model ids such as "call_0" repeat)."""


@dataclass(frozen=True)
class Footer:
    """The speed line under a finished reply, and its figures as data (exports, compare);
    or, with `stopped`, the line under a reply the user stopped (`stopped_footer`)."""

    text: str
    figures: Mapping[str, Any] = field(default_factory=dict)
    stopped: bool = False


def stopped_footer() -> Footer:
    """The footer under a reply the user stopped: its text is kept above it, as it stood."""
    return Footer(f"{STOPPED_MARK} {STOPPED_TEXT}", {"finish_reason": "stopped by user"}, stopped=True)


@dataclass(frozen=True)
class Failed:
    """Why the turn ended without a complete reply; what arrived is kept above it.

    `cut`: the app stopped reading at a limit (the reply is kept as it stands). `reference`
    names an internal error's traceback in the log (the message already says it)."""

    title: str
    message: str
    hint: str = ""
    reference: str | None = None
    cut: bool = False
    retry_after: float | None = None
    """Seconds to wait before retrying, when the error says (a rate limit): API clients read it."""

    @property
    def text(self) -> str:
        """The markdown shown for it (and what `/chat` API clients read)."""
        head = f"{ERROR_MARK} {self.message}" if self.reference else f"{ERROR_MARK} **{self.title}.** {self.message}"
        return f"{head}\n\n{self.hint}" if self.hint else head


@dataclass(frozen=True)
class Attached:
    """A document attached to this turn, read on the server: shown as a chip in the user's
    message (its name, and `about` it: "120.4 KB · 3 pages"), kept with its text as `data`."""

    name: str
    about: str
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        return f"{self.name} · {self.about}"


@dataclass(frozen=True)
class Sources:
    """The parts of the attached documents this reply was given (file, page or line range),
    when they were too long to send whole; shown as a folded block under the answer."""

    labels: tuple[str, ...]


@dataclass(frozen=True)
class Waiting:
    """A local generation waits for its turn on the device (`hfchat.fairqueue`): another
    reply is being generated there. Its time to first token starts when the turn comes.

    `behind` names what it waits for when the caller knows (compare mode: "A"); shown with
    the loading notice's id, so history conversion drops it like one."""

    elapsed_s: float = 0.0
    behind: str = ""

    @property
    def text(self) -> str:
        elapsed = f" {self.elapsed_s:.0f} s" if self.elapsed_s >= 1 else ""
        if self.behind:
            return f"{LOADING_MARK} waiting for {self.behind}…{elapsed}"
        return f"{LOADING_MARK} waiting for the device: another reply is being generated…{elapsed}"


Update = Attached | Loading | Notice | Thinking | Answer | ToolCall | Sources | Footer | Failed | Waiting
"""One part of a reply."""

ReplyView = tuple[Update, ...]
"""The whole reply so far, in display order."""

SHOWN_AS_REPLY = (Notice, Answer, Failed)
"""The parts a caller who wants the plain reply reads (`hfchat.reply.answer_text`)."""
