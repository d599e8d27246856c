"""How much of a model's context a turn uses: the context window, a token counter, and
trimming the history by tokens (gradio-free; the one place for the concept).

- `ContextWindow`: the model's context length and where it was read (a local model's
  config.json; a custom endpoint's GET /v1/models; for a Hub model the provider mapping, its
  config.json on the Hub, or LangChain's model profile), or unknown.
- `TokenCounter`: the model's own tokenizer counting the chat-template-rendered messages
  (`TokenizerCounter`, exact), or `EstimateCounter` (`hfchat.retrieval.estimate_tokens`),
  marked as estimated.
- `fit_to_window`: drop the oldest whole turns until system + history + the current turn +
  max_new_tokens fit; never the system prompt or the current turn.
- `ContextUse`: what the meter under the chat box shows ("1,234 / 8,192 tokens").
- `ContextLookup`: finds windows and counters for a turn's settings, cached per model spec
  (the spec holds the token's fingerprint, never the token).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

from hfchat import hub, net
from hfchat.config import Backend, ChatSettings, looks_like_path
from hfchat.deadline import io_budget, io_deadline
from hfchat.errors import HFChatError, InputError
from hfchat.messages import content_text, fold_system_prompt
from hfchat.retrieval import estimate_tokens
from hfchat.tokens import Fingerprinter
from hfchat.updates import NOTICE_MARK

log = logging.getLogger(__name__)

SANE_MAX_TOKENS = 100_000_000
"""Above this a context length is a placeholder, not a length: tokenizers without one say
`model_max_length = 1e30`."""

CONFIG_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "max_sequence_length", "seq_length", "n_ctx")
"""Where a config.json states the context length (Llama/Qwen/Mistral; GPT-2; MPT; others), in order."""

MODELS_KEYS = ("max_model_len", "context_length", "context_window", "max_context_length", "max_input_tokens")
"""Where a GET /v1/models entry states it: vLLM and SGLang `max_model_len`; OpenRouter and
Together `context_length`; others `context_window` or `max_context_length` (LM Studio)."""

LLAMA_CPP_KEYS = ("n_ctx", "n_ctx_train")
"""llama.cpp's server puts the model's `meta` in its entry: `n_ctx_train` (the trained length);
a server's own `n_ctx`, where given, is what it actually runs with, so it comes first."""

WINDOW_TTL_S = 600.0
"""How long a context length found (or not found) is kept: the meter asks on every keystroke."""

COUNTER_TTL_S = 3600.0
LOOKUP_DEADLINE_S = 10.0
"""The longest a Hub or endpoint lookup for the meter may take (then: unknown, or estimated)."""

LOOKUP_BUDGET_BYTES = 4 * 2**20
"""What a GET /v1/models or config.json read may carry (the same as a remote build's)."""

TOKENIZER_BUDGET_BYTES = 64 * 2**20
"""What a remote tokenizer's files may carry (Gemma's tokenizer.json is 33 MB)."""

GENERATION_PROMPT_TOKENS = 3
MESSAGE_OVERHEAD_TOKENS = 4
"""An estimate's allowance for a chat template's markup: per message (role, delimiters) and
for the generation prompt (ChatML: `<|im_start|>assistant\\n`)."""

LOOKUP_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, KeyError, httpx.HTTPError, HFChatError)
"""What a lookup that can't say raises (a missing file, a refused or broken download, a bad
JSON body, a Hub that is out of reach, a deployment's refusal); the meter then says less."""


# ------------------------------------------------------------------ the window


@dataclass(frozen=True)
class ContextWindow:
    """A model's context length in tokens, and where it was read (shown in the meter's title)."""

    tokens: int | None = None
    source: str = ""
    """"config.json", "the server's /v1/models", "the provider mapping",
    "LangChain's model profile", or "" when unknown."""

    @property
    def known(self) -> bool:
        return self.tokens is not None


UNKNOWN = ContextWindow()


def _length(value: Any) -> int | None:
    """`value` as a context length, or None when it is not one (absent, a placeholder)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if 0 < value <= SANE_MAX_TOKENS else None


def window_of_config(config: Mapping[str, Any]) -> int | None:
    """The context length a config.json states; a multimodal model's is in its `text_config`."""
    for key in CONFIG_KEYS:
        if (found := _length(config.get(key))) is not None:
            return found
    text = config.get("text_config") or config.get("llm_config")
    return window_of_config(text) if isinstance(text, Mapping) else None


def window_of_models_entry(entry: Mapping[str, Any]) -> int | None:
    """The context length a server's GET /v1/models entry states, or None (`transformers
    serve` and TGI list only ids)."""
    for key in MODELS_KEYS:
        if (found := _length(entry.get(key))) is not None:
            return found
    meta = entry.get("meta")
    if isinstance(meta, Mapping):
        for key in LLAMA_CPP_KEYS:
            if (found := _length(meta.get(key))) is not None:
                return found
    return None


def window_of_models(models: Sequence[Any], served: str | None) -> int | None:
    """The length for the served model among a /v1/models list: its entry, or the only one."""
    entries = [m for m in models if isinstance(m, Mapping)]
    chosen = [m for m in entries if served and m.get("id") == served] or (entries if len(entries) == 1 else [])
    return window_of_models_entry(chosen[0]) if chosen else None


def window_of_tokenizer(tokenizer: Any) -> int | None:
    """A tokenizer's `model_max_length` when it is a length, not transformers' 1e30 placeholder."""
    return _length(getattr(tokenizer, "model_max_length", None))


def profile_window(chat: Any, repo_id: str) -> int | None:
    """LangChain's model profile's `max_input_tokens`: the built ChatHuggingFace's `profile`
    (resolved from its model_id), else the profiles langchain-huggingface ships (`hub._profiles`)."""
    profile = getattr(chat, "profile", None) if chat is not None else None
    if not isinstance(profile, Mapping) or _length(profile.get("max_input_tokens")) is None:
        profile = hub._profiles().get(repo_id, {})
    return _length(profile.get("max_input_tokens"))


def mapping_window(info: Any, provider: str | None) -> int | None:
    """The provider mapping's context length for `provider` (the first that states one for
    auto): the Hub's entry keeps fields huggingface_hub does not name in its attributes."""
    for entry in getattr(info, "inference_provider_mapping", None) or []:
        if provider and provider != hub.AUTO and entry.provider != provider:
            continue
        for key in ("context_length", "contextLength", "context_window", "max_input_tokens"):
            if (found := _length(getattr(entry, key, None))) is not None:
                return found
    return None


def is_repo_id(name: str | None) -> bool:
    """Whether `name` (a model name an endpoint serves) is a Hub repo ID whose files could say more."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not name or looks_like_path(name) or name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


# ------------------------------------------------------------------ counting


class TokenCounter(Protocol):
    """Counts what a turn sends: `messages` as the chat template renders them (with the
    generation prompt), `text` alone; `exact` False for an estimate."""

    @property
    def exact(self) -> bool: ...

    def messages(self, messages: Sequence[BaseMessage]) -> int: ...

    def text(self, text: str) -> int: ...


@dataclass(frozen=True)
class EstimateCounter:
    """No tokenizer at hand: `estimate_tokens` (errs high for most text), plus an allowance
    for the template's markup."""

    @property
    def exact(self) -> bool:
        return False

    def text(self, text: str) -> int:
        return estimate_tokens(text)

    def messages(self, messages: Sequence[BaseMessage]) -> int:
        body = sum(estimate_tokens(content_text(m.content)) + MESSAGE_OVERHEAD_TOKENS for m in messages)
        return body + GENERATION_PROMPT_TOKENS


def chat_turns(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """The messages as chat-template turns, text only (images are not counted). Tool turns go
    as text, as a template without a tool role gets them (`hfchat.backends.local.chat_turns`)."""
    turns: list[dict[str, str]] = []
    for message in messages:
        text = content_text(message.content)
        if isinstance(message, SystemMessage):
            turns.append({"role": "system", "content": text})
        elif isinstance(message, HumanMessage):
            turns.append({"role": "user", "content": text})
        elif isinstance(message, AIMessage):
            said = [f"[called the tool {c['name']} with {json.dumps(c['args'])}]" for c in message.tool_calls]
            turns.append({"role": "assistant", "content": "\n".join(filter(None, [text, *said]))})
        elif isinstance(message, ToolMessage):
            turns.append({"role": "user", "content": f"[result of the tool {message.name or 'call'}]\n{text}"})
    return turns


@dataclass(frozen=True)
class TokenizerCounter:
    """The model's own tokenizer: `apply_chat_template(..., tokenize=True)` over the turns,
    with the generation prompt, as the local backend renders a turn (the system prompt folded
    into the first user turn where the template refuses it). transformers 5 returns a
    BatchEncoding from it unless `return_dict=False`, which gives the ids."""

    tokenizer: Any = field(repr=False)
    fold_system: bool = False

    @property
    def exact(self) -> bool:
        return True

    def text(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def messages(self, messages: Sequence[BaseMessage]) -> int:
        from jinja2 import TemplateError

        sent = fold_system_prompt(messages) if self.fold_system else list(messages)
        turns = chat_turns(sent)
        try:
            ids = self.tokenizer.apply_chat_template(
                turns, tokenize=True, add_generation_prompt=True, return_dict=False
            )
        except (TemplateError, TypeError, ValueError):  # a strict template refused these turns
            return sum(self.text(t["content"]) + MESSAGE_OVERHEAD_TOKENS for t in turns) + GENERATION_PROMPT_TOKENS
        return len(ids)


def counter_of_tokenizer(tokenizer: Any) -> TokenizerCounter:
    """A counter over a tokenizer loaded on its own (the meter, before the model loads): a
    template-less one gets the local backend's plain template, and the system prompt is
    folded where the template refuses it, as the built model does (`local._prepare_template`)."""
    from hfchat.backends.chat_model import refuses_system

    if not getattr(tokenizer, "chat_template", None):
        from hfchat.backends.local import PLAIN_TEMPLATE  # what a built local model is given

        tokenizer.chat_template = PLAIN_TEMPLATE
    return TokenizerCounter(tokenizer, refuses_system(tokenizer))


# ------------------------------------------------------------------ trimming


@dataclass(frozen=True)
class Fitted:
    """What `fit_to_window` kept: the messages, how many history messages it left out, and
    the counts (`prompt_tokens` of the kept messages, `reserved` for the reply)."""

    messages: list[BaseMessage]
    dropped: int
    prompt_tokens: int
    reserved: int
    window: ContextWindow
    exact: bool

    @property
    def used(self) -> int:
        return self.prompt_tokens + self.reserved


def history_turns(history: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """The history in whole turns: a human message with the replies and tool messages after
    it (a leading non-human message joins the first turn), so dropping turns keeps roles
    alternating."""
    turns: list[list[BaseMessage]] = []
    for message in history:
        if isinstance(message, HumanMessage) or not turns:
            turns.append([message])
        else:
            turns[-1].append(message)
    return turns


def fit_to_window(
    messages: Sequence[BaseMessage], window: ContextWindow, max_new_tokens: int, counter: TokenCounter
) -> Fitted:
    """`messages` (an optional system prompt first, the history, the current human message
    last) within the context: kept whole when their count plus `max_new_tokens` is at most
    the window (exactly full fits), else the oldest history turns are left out, the fewest
    that make it fit (each candidate counted in full). The system prompt and the current
    turn are never left out: when even they and `max_new_tokens` exceed the window, an
    InputError says by how much and how to fix it. An unknown window keeps everything."""
    messages = list(messages)
    total = counter.messages(messages)
    if window.tokens is None or total + max_new_tokens <= window.tokens:
        return Fitted(messages, 0, total, max_new_tokens, window, counter.exact)
    head = messages[:1] if messages and isinstance(messages[0], SystemMessage) else []
    current = messages[-1:]
    turns = history_turns(messages[len(head) : -1])

    def kept(drop: int) -> list[BaseMessage]:
        return [*head, *(m for turn in turns[drop:] for m in turn), *current]

    budget = window.tokens - max_new_tokens
    counts: dict[int, int] = {0: total}

    def count(drop: int) -> int:
        if drop not in counts:
            counts[drop] = counter.messages(kept(drop))
        return counts[drop]

    if count(len(turns)) > budget:
        raise too_long(count(len(turns)), max_new_tokens, window, counter.exact)
    low, high = 0, len(turns)  # count(low) does not fit, count(high) fits: the fewest dropped in between
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if count(middle) <= budget else (middle, high)
    dropped = sum(len(turn) for turn in turns[:high])
    return Fitted(kept(high), dropped, count(high), max_new_tokens, window, counter.exact)


def reply_room(
    messages: Sequence[BaseMessage], window: ContextWindow, max_new_tokens: int, counter: TokenCounter
) -> int:
    """`max_new_tokens`, or less when the system prompt and the current message leave less room
    than that in the context: the reply then gets what is left (a notice says so, and Continue
    goes on where it stops) rather than the turn being refused. Raises InputError (`too_long`)
    only when those two alone fill the context."""
    if window.tokens is None:
        return max_new_tokens
    head = messages[:1] if messages and isinstance(messages[0], SystemMessage) else []
    minimal = counter.messages([*head, *messages[-1:]])
    if minimal >= window.tokens:
        raise too_long(minimal, max_new_tokens, window, counter.exact)
    return min(max_new_tokens, window.tokens - minimal)


def lowered_notice(reserved: int, asked: int, window: ContextWindow) -> str:
    """The notice above a reply whose max_new_tokens was lowered to fit the context ("" when it was not)."""
    if reserved >= asked:
        return ""
    return (
        f"{NOTICE_MARK} *This reply may use {reserved:,} token{'s' if reserved != 1 else ''}, not {asked:,}"
        " (max_new_tokens): the message "
        f"leaves no more room in the model's context of {window.tokens:,} tokens.*"
    )


def too_long(prompt_tokens: int, max_new_tokens: int, window: ContextWindow, exact: bool) -> InputError:
    """The message (with the system prompt) and the room for the reply exceed the context."""
    about = "" if exact else "about "
    return InputError(
        f"This message and the system prompt take {about}{prompt_tokens:,} tokens, and the reply is given "
        f"{max_new_tokens:,} (max_new_tokens): {about}{prompt_tokens + max_new_tokens:,} in all, over the "
        f"model's context of {window.tokens:,} tokens{f' ({window.source})' if window.source else ''}.",
        "Shorten the message (or the system prompt), lower max_new_tokens, or choose a model with a bigger context.",
    )


def token_trim_notice(dropped: int, window: ContextWindow) -> str:
    """The notice above a reply whose oldest messages were left out to fit the context ("" when none were)."""
    if not dropped:
        return ""
    were = "were" if dropped > 1 else "was"
    return (
        f"{NOTICE_MARK} *The {dropped} oldest message{'s' if dropped > 1 else ''} of this conversation {were} "
        f"not sent: with the reply's max_new_tokens they don't fit in the model's context of {window.tokens:,} "
        "tokens. Clear the conversation to start afresh.*"
    )


# ------------------------------------------------------------------ the meter


@dataclass(frozen=True)
class ContextUse:
    """What the meter under the chat box shows: the prompt (system prompt, history, the text
    being typed) as counted, plus `reserved` (max_new_tokens) for the reply, against the window."""

    prompt_tokens: int
    reserved: int
    window: ContextWindow
    exact: bool
    minimal_fits: bool = True
    """Whether the system prompt and the message alone, with `reserved`, fit (else no trimming helps)."""

    @property
    def used(self) -> int:
        return self.prompt_tokens + self.reserved

    @property
    def fits(self) -> bool:
        return self.window.tokens is None or self.used <= self.window.tokens

    def label(self) -> str:
        """ "1,234 / 8,192 tokens", "≈1,234 / 8,192 tokens (estimated)", "1,234 tokens" (no window known)."""
        mark, note = ("", "") if self.exact else ("≈", " (estimated)")
        if self.window.tokens is None:
            return f"{mark}{self.used:,} tokens{note}"
        return f"{mark}{self.used:,} / {self.window.tokens:,} tokens{note}"

    def warning(self) -> str:
        """ "" when it fits; else what happens when it is sent."""
        if self.fits:
            return ""
        if not self.minimal_fits:
            return "won't fit: the reply gets less than max_new_tokens"
        return "won't fit: the oldest messages will be left out"

    def title(self) -> str:
        """The meter's tooltip: what is counted, how, and where the window comes from."""
        how = "counted with the model's tokenizer" if self.exact else "estimated (no tokenizer for this model here)"
        parts = [
            f"System prompt, history and your message: {self.prompt_tokens:,} tokens, {how}; "
            f"plus {self.reserved:,} reserved for the reply (max_new_tokens)."
        ]
        if self.window.tokens is not None:
            where = f" (from {self.window.source})" if self.window.source else ""
            parts.append(f"Context length: {self.window.tokens:,} tokens{where}.")
        else:
            parts.append("This model's context length is not known here.")
        return " ".join(parts)


# ------------------------------------------------------------------ the lookups


def _hub_allowed() -> bool:
    """Whether the Hub may be asked now: not offline (HF_HUB_OFFLINE) and reachable (a cached probe)."""
    from huggingface_hub import constants

    return not constants.is_offline_mode() and net.hub_reachable()


def _within(seconds: float, budget: int, what: Callable[[], Any]) -> Any:
    with io_deadline(time.monotonic() + seconds), io_budget(budget):
        return what()


def local_window(model: str, token: str | None) -> ContextWindow:
    """A local model's context length from its config (a folder's config.json, a GGUF file's
    metadata, a Hub model's cached or downloaded config.json), through transformers' AutoConfig
    with `hfchat.backends.source.local_source`'s rules (no remote code)."""
    # The module itself, not transformers' lazy attribute: the meter's first lookup runs while the
    # turn's thread imports transformers for the model, and the lazy `transformers.AutoConfig`
    # then raised AttributeError (seen in a browser test: the meter's event answered 500).
    from transformers.models.auto.configuration_auto import AutoConfig

    from hfchat.backends.local import LOAD_LOCK
    from hfchat.backends.source import local_source

    source = local_source(model)
    with LOAD_LOCK:  # never beside a model's load: the meter runs while a turn loads one
        config = AutoConfig.from_pretrained(source.path, token=token, trust_remote_code=False, **source.options)
    found = window_of_config(config.to_dict())
    where = "the GGUF file's metadata" if "gguf_file" in source.options else "config.json"
    return ContextWindow(found, where) if found else UNKNOWN


def hub_config_window(repo_id: str, token: str | None) -> int | None:
    """The context length in a Hub model's config.json (one small file, into the Hub cache)."""
    from huggingface_hub import hf_hub_download

    path = _within(LOOKUP_DEADLINE_S, LOOKUP_BUDGET_BYTES, lambda: hf_hub_download(repo_id, "config.json", token=token))
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    return window_of_config(config) if isinstance(config, Mapping) else None


def hub_window(repo_id: str, provider: str | None, token: str | None, chat: Any = None) -> ContextWindow:
    """A Hub model's context length: the provider mapping's (what the provider serves, where
    the Hub says), its config.json on the Hub, or LangChain's model profile; unknown when none
    says or the Hub is out of reach (the profile still counts then)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if _hub_allowed():
        try:
            if provider:
                info = hub._hub_call(lambda: hub._api(token).model_info(repo_id, expand=["inferenceProviderMapping"]))
                if (found := mapping_window(info, provider)) is not None:
                    return ContextWindow(found, "the provider mapping")
            if (found := hub_config_window(repo_id, token)) is not None:
                return ContextWindow(found, "config.json")
        except (
            OSError,
            ValueError,
            KeyError,
            httpx.HTTPError,
            HFChatError,
            HfHubHTTPError,
            OfflineModeIsEnabled,
        ) as exc:
            log.info("context length of %s: the Hub did not say (%s)", repo_id, type(exc).__name__)
    found = profile_window(chat, repo_id)
    return ContextWindow(found, "LangChain's model profile") if found else UNKNOWN


def endpoint_models(endpoint_url: str, key: str | None, timeout: float) -> list[Any] | None:
    """A custom endpoint's GET /v1/models entries (`hfchat.backends.endpoint.served_models`:
    the guarded client and its rules), within `timeout`; None when it has no list or can't say."""
    from hfchat.backends.endpoint import served_models

    net.register_endpoint(endpoint_url, key)  # as the endpoint's client does: its key may go there
    try:
        return _within(timeout, LOOKUP_BUDGET_BYTES, lambda: served_models(endpoint_url, key, timeout))  # type: ignore[no-any-return]
    except LOOKUP_ERRORS as exc:
        log.info("GET /v1/models of %s said nothing of its context: %s", net.display(endpoint_url), type(exc).__name__)
        return None


def only_served(models: Sequence[Any] | None) -> str | None:
    """The id of a server's only model, or None (none, or several)."""
    ids = [m.get("id") for m in models or [] if isinstance(m, Mapping) and isinstance(m.get("id"), str)]
    return ids[0] if len(ids) == 1 else None


def hub_tokenizer(repo_id: str, token: str | None) -> Any:
    """A Hub model's tokenizer (tokenizer files only, never remote code), from the Hub cache
    when offline; raises where it can't be had."""
    from huggingface_hub import constants
    from transformers.models.auto.tokenization_auto import AutoTokenizer  # see `local_window`

    offline = constants.is_offline_mode() or not net.hub_reachable()

    def load() -> Any:
        return AutoTokenizer.from_pretrained(repo_id, token=token, trust_remote_code=False, local_files_only=offline)

    return _within(LOOKUP_DEADLINE_S * 3, TOKENIZER_BUDGET_BYTES, load)


def local_tokenizer(model: str, token: str | None) -> Any:
    """A local model's tokenizer alone, from where the model loads (`local_source`): what the
    meter counts with before the model itself is loaded."""
    from transformers.models.auto.tokenization_auto import AutoTokenizer  # see `local_window`

    from hfchat.backends.local import LOAD_LOCK
    from hfchat.backends.source import local_source

    source = local_source(model)
    with LOAD_LOCK:  # never beside a model's load (see `local_window`)
        return AutoTokenizer.from_pretrained(source.path, token=token, trust_remote_code=False, **source.options)


def remote_repo(settings: ChatSettings, served: str | None = None) -> str | None:
    """The Hub repo behind a remote turn, whose files say its window and tokenizer: the model
    for Inference Providers; for an endpoint, the name it serves (`served`) when that is a
    repo ID (vLLM and TGI serve by repo ID; `transformers serve` by a path, which is not read)."""
    if settings.spec.backend is Backend.PROVIDERS:
        return settings.spec.model
    return served if is_repo_id(served) else None


@dataclass
class ContextLookup:
    """Finds a turn's `ContextWindow` and `TokenCounter`, cached per model spec (which holds
    the token's fingerprint, never the token) and Hub (HF_ENDPOINT). A lookup that fails is
    logged and says less (unknown window, estimated counts); it never fails the turn."""

    windows: hub.TTLCache = field(default_factory=lambda: hub.TTLCache(WINDOW_TTL_S, 128))
    listings: hub.TTLCache = field(default_factory=lambda: hub.TTLCache(WINDOW_TTL_S, 64))
    """Custom endpoints' GET /v1/models entries (None: no list), by spec."""
    fingerprint: Fingerprinter = field(default_factory=Fingerprinter, repr=False)
    """Tells apart the Hugging Face tokens that Hub lookups ran with (an endpoint's spec holds
    the fingerprint of its own key, not of the HF token), without holding them."""
    counters: hub.TTLCache = field(default_factory=lambda: hub.TTLCache(COUNTER_TTL_S, 16))

    def window(self, settings: ChatSettings, chat: Any, hf_token: str | None, credential: str | None) -> ContextWindow:
        """The context window for this turn. `chat` is the built model when there is one (its
        tokenizer, profile and served name say more), `hf_token` what Hub requests carry,
        `credential` what the endpoint's own requests carry (`ChatService.credential`)."""
        net.install()
        spec = settings.spec
        key = (hub._endpoint(), spec, self.fingerprint(hf_token), settings.served_model, chat is not None)

        def find() -> ContextWindow:
            try:
                return self._find_window(settings, chat, hf_token, credential)
            except LOOKUP_ERRORS as exc:
                log.info("context length of %s unknown: %s", spec.where, type(exc).__name__)
                return UNKNOWN

        return self.windows.get(key, find)  # type: ignore[no-any-return]

    def _find_window(
        self, settings: ChatSettings, chat: Any, hf_token: str | None, credential: str | None
    ) -> ContextWindow:
        spec = settings.spec
        if spec.backend is Backend.LOCAL:
            found = local_window(spec.model, hf_token)
            tokenizer = getattr(chat, "tokenizer", None)
            if not found.known and (length := window_of_tokenizer(tokenizer)) is not None:
                return ContextWindow(length, "tokenizer_config.json")
            return found
        served = self.served(settings, chat, credential)
        if spec.backend is Backend.ENDPOINT:
            listed = window_of_models(self.models(settings, credential) or [], served)
            if listed is not None:
                return ContextWindow(listed, "the server's /v1/models")
        repo = remote_repo(settings, served)
        return hub_window(repo, spec.provider, hf_token, chat) if repo else UNKNOWN

    def models(self, settings: ChatSettings, credential: str | None) -> list[Any] | None:
        """A custom endpoint's GET /v1/models entries, cached (`endpoint_models`)."""
        spec = settings.spec
        timeout = min(float(spec.timeout or LOOKUP_DEADLINE_S), LOOKUP_DEADLINE_S)
        fetch = lambda: endpoint_models(spec.endpoint_url or "", credential, timeout)  # noqa: E731
        return self.listings.get((hub._endpoint(), spec), fetch)  # type: ignore[no-any-return]

    def served(self, settings: ChatSettings, chat: Any, credential: str | None) -> str | None:
        """The name an endpoint serves the turn's model under: the setting, the built client's
        (discovered when it was built), or the server's only model; None for other backends."""
        if settings.spec.backend is not Backend.ENDPOINT:
            return None
        return (
            settings.served_model or getattr(chat, "model_id", None) or only_served(self.models(settings, credential))
        )

    def counter(
        self,
        settings: ChatSettings,
        chat: Any,
        hf_token: str | None,
        credential: str | None = None,
        download: bool = True,
    ) -> TokenCounter:
        """The counter for this turn: the model's tokenizer loaded on its own (a local model's
        files, or the Hub repo behind a remote turn, where reachable), else a built local
        model's own tokenizer, else the estimate. Without `download`, a remote model's counter
        is the one already fetched (by the meter), else the estimate.

        A tokenizer of its own, not the pipeline's: counting runs beside generations on the
        same model (the meter while a reply streams), and a Rust tokenizer that two threads
        use while one changes its settings fails with "Already borrowed"."""
        spec = settings.spec
        own = getattr(chat, "tokenizer", None) if spec.backend is Backend.LOCAL else None
        repo = (
            spec.model
            if spec.backend is Backend.LOCAL
            else remote_repo(settings, self.served(settings, chat, credential))
        )
        if not repo:
            return EstimateCounter()
        net.install()
        key = (hub._endpoint(), spec.backend, repo, self.fingerprint(hf_token))

        def load() -> TokenCounter:
            try:
                if spec.backend is Backend.LOCAL:
                    return counter_of_tokenizer(local_tokenizer(repo, hf_token))
                return counter_of_tokenizer(hub_tokenizer(repo, hf_token))
            except (OSError, ValueError, KeyError, httpx.HTTPError, HFChatError, ImportError) as exc:
                log.info("no tokenizer for %s, counts are estimated: %s", spec.where, type(exc).__name__)
                if own is not None:
                    return TokenizerCounter(own, bool(getattr(chat, "fold_system", False)))
                return EstimateCounter()

        if not download and spec.backend is not Backend.LOCAL:
            # a turn never waits for a Hub tokenizer's download (up to 30 s): the meter fetches it
            return self.counters.peek(key) or EstimateCounter()  # type: ignore[no-any-return]
        return self.counters.get(key, load)  # type: ignore[no-any-return]

    def clear(self) -> None:
        self.windows.clear()
        self.counters.clear()
