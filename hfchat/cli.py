"""Command-line flags and HFCHAT_* environment variables: the defaults shown in the sidebar."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hfchat.config import DEFAULT_TIMEOUT_S, Backend, InputLimits, RetryPolicy, config_error
from hfchat.context import is_repo_id
from hfchat.fairqueue import DEFAULT_LOCAL_SLOTS
from hfchat.limits import DEFAULT_STALL_TIMEOUT_S, DEFAULT_TURN_TIMEOUT_S, DEFAULT_TURNS_PER_CLIENT, Rate, parse_rate
from hfchat.policy import DeploymentPolicy, is_public, parse_param_count
from hfchat.settings import SETTINGS, STORED, Setting, SidebarSettings
from hfchat.space import oauth_enabled
from hfchat.streaming import DEFAULT_RATE
from hfchat.tokens import env_token

DEFAULT_REMOTE_MODEL = "deepseek-ai/DeepSeek-R1-0528"
DEFAULT_LOCAL_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
ENV_PREFIX = "HFCHAT_"
DEFAULT_CONCURRENCY = 32
"""Chats served at once. Remote turns mostly wait on the network, so many run in parallel
(Gradio's default of 1 would serialise them); local turns still take turns per device."""


@dataclass(frozen=True)
class AppOptions:
    """How the app starts, and the sidebar's initial values."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    sidebar: SidebarSettings = field(default_factory=lambda: SidebarSettings(model=DEFAULT_LOCAL_MODEL))
    """The sidebar's initial values (and the `/chat` defaults): one flag per setting."""
    endpoint_api_key: str = field(default="", repr=False)
    """The operator's key for their own --endpoint-url; a secret, so never in a repr."""
    cache_size: int = 2
    timeout: int = DEFAULT_TIMEOUT_S
    turn_timeout: float = DEFAULT_TURN_TIMEOUT_S
    stall_timeout: float = DEFAULT_STALL_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    local_concurrency: int = DEFAULT_LOCAL_SLOTS
    stream_rate: float = DEFAULT_RATE
    """Reply updates a second to the page and `/chat` (`hfchat.streaming.paced`); 0 = every token."""
    torch_threads: int = 0
    """torch's CPU threads for local models; 0 = chosen (`hfchat.backends.device.torch_threads`)."""
    public: bool = False
    local_models: tuple[str, ...] = ()
    max_local_params: int | None = None
    rate_limit: Rate | None = None
    max_turns_per_client: int = DEFAULT_TURNS_PER_CLIENT
    max_queue: int = 64
    auth: tuple[str, str] | None = None
    oauth: bool = False
    on_space: bool = False
    """Running on a Hugging Face Space (SPACE_ID): visitors' addresses come from X-Forwarded-For."""
    openai_api: bool = False
    """Serve the OpenAI-compatible API under /v1 (`hfchat.api.openai`)."""
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    """The keys an OpenAI API caller presents on a public deployment; secrets, never in a repr."""
    mcp: tuple[str, ...] = ()
    """The operator's MCP servers (streamable HTTP URLs), offered to every visitor (--mcp)."""
    mcp_stdio: tuple[str, ...] = ()
    """The operator's local MCP servers, as command lines run over stdio (--mcp-stdio)."""
    max_tool_steps: int = 5
    """Rounds of tool calls in one turn before the model must answer (--max-tool-steps)."""
    tool_timeout: float = 30.0
    """The longest one tool call may run, in seconds (--tool-timeout)."""
    embeddings: str = ""
    """Where long documents' chunks get their embeddings (--embeddings): a TEI URL or a Hub repo
    ID; "" ranks them by BM25 (`hfchat.embeddings`)."""

    @property
    def deployment_policy(self) -> DeploymentPolicy:
        return DeploymentPolicy.of(self.public, self.local_models, self.max_local_params, self.sidebar.endpoint_url)

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    limits: InputLimits = field(default_factory=InputLimits)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _auth(value: str) -> tuple[str, str] | None:
    """`user:password` for Gradio's login page; empty means no login. The value is never echoed."""
    if not value.strip():
        return None
    user, sep, password = value.partition(":")
    if not sep or not user.strip() or not password:
        raise argparse.ArgumentTypeError(
            "expected user:password, with a user name and a password separated by ':' (e.g. --auth alice:pass)"
        )
    return user.strip(), password


def _param_count(value: str) -> int:
    try:
        return parse_param_count(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(value: str) -> Rate | None:
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _models(value: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in value.split(",") if m.strip())


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def _between(low: float, high: float, unit: str, cast: Callable[[str], float] = float) -> Callable[[str], float]:
    """A flag's parser for a number from `low` to `high` (`unit` names it in the message)."""

    def parse(value: str) -> float:
        try:
            number = cast(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of {unit}, got {value!r}") from None
        if not low <= number <= high:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g} {unit}, got {value}")
        return number

    return parse


def _megabytes(value: str) -> float:
    number = float(value)
    if not 0 < number <= 1024:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be above 0 and at most 1024 MB, got {value}")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 300:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be between 0 and 300 seconds, got {value}")
    return number


def _duration(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {value}")
    return number


_CLI_DEFAULTS: dict[str, tuple[object, str]] = {
    "backend": (None, "default: providers when a token is set, else local"),
    "model": (None, f"default {DEFAULT_REMOTE_MODEL} remote, {DEFAULT_LOCAL_MODEL} local"),
}
"""The sidebar defaults that depend on the environment (a token) rather than the schema."""


def _setting_type(setting: Setting) -> Callable[[str], Any]:
    """Parse one flag's text as the schema's field does, with a message that names the bound."""
    if setting.field.annotation is bool:
        return _bool
    adapter: TypeAdapter[Any] = TypeAdapter(setting.annotation)

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except ValidationError as exc:
            error = exc.errors()[0]
            if error["type"] == "greater_than_equal":
                raise argparse.ArgumentTypeError(f"must be at least {setting.bound('ge')}, got {text}") from None
            if error["type"] == "less_than_equal":
                raise argparse.ArgumentTypeError(f"must be at most {setting.bound('le')}, got {text}") from None
            raise argparse.ArgumentTypeError(config_error(exc).message) from None

    parse.__name__ = setting.name
    return parse


def _add_setting_flag(
    parser: argparse.ArgumentParser, setting: Setting, default: Callable[[str, object], object]
) -> None:
    """The flag (and HFCHAT_ variable) that sets a sidebar setting's initial value."""
    fallback, note = _CLI_DEFAULTS.get(setting.name, (setting.default, ""))
    if isinstance(fallback, Backend):
        fallback = fallback.value
    kwargs: dict[str, Any] = {"type": _setting_type(setting)}
    if setting.choices is not None:
        kwargs = {"choices": setting.choices}
    elif setting.field.annotation is bool:
        kwargs.update(nargs="?", const=True)
    parser.add_argument(
        "--" + setting.name.replace("_", "-"),
        default=default(setting.name, fallback),
        help="; ".join(filter(None, [str(setting.field.description or ""), note])),
        **kwargs,
    )


@dataclass(frozen=True)
class ServerFlag:
    """A flag that sets how the server runs (not a sidebar setting: those come from
    `hfchat.settings`). `parse` turns the flag's or HFCHAT_ variable's text into its value."""

    name: str
    parse: Callable[[str], Any]
    default: object
    help: str
    metavar: str | None = None
    alias: str | None = None
    """A second spelling of the flag (its variable stays HFCHAT_<NAME>)."""
    repeat: bool = False
    """The flag may be given several times; its HFCHAT_ variable holds them separated by `sep`."""
    sep: str = ","

    @property
    def switch(self) -> bool:
        """A true/false flag, which may be given bare (`--public`)."""
        return self.parse is _bool


def _server_flags() -> tuple[ServerFlag, ...]:
    """The server's flags, in --help order, after the sidebar settings'."""
    retry, limits = RetryPolicy(), InputLimits()
    return (
        ServerFlag(
            "endpoint_api_key",
            str,
            "",
            "key sent to --endpoint-url as 'Authorization: Bearer' (the HF token never goes to a host that is not "
            "Hugging Face's); prefer HFCHAT_ENDPOINT_API_KEY, a flag shows in the process list",
        ),
        ServerFlag("cache_size", _positive, 2, "how many built models to keep (LRU)"),
        ServerFlag(
            "timeout",
            _positive,
            DEFAULT_TIMEOUT_S,
            "seconds an endpoint may take to connect, to answer each read, and to send its first chunk",
        ),
        ServerFlag(
            "turn_timeout",
            _duration,
            DEFAULT_TURN_TIMEOUT_S,
            f"longest a reply may take, in seconds (default {DEFAULT_TURN_TIMEOUT_S}); past it the reply "
            "is cut and what arrived is kept",
        ),
        ServerFlag(
            "stall_timeout",
            _duration,
            DEFAULT_STALL_TIMEOUT_S,
            f"longest a reply may go without a new chunk once it has started, in seconds "
            f"(default {DEFAULT_STALL_TIMEOUT_S}); past it the reply is cut",
        ),
        ServerFlag(
            "concurrency",
            _positive,
            DEFAULT_CONCURRENCY,
            f"chats served at once (default {DEFAULT_CONCURRENCY}): remote backends run this many in parallel",
        ),
        ServerFlag(
            "local_concurrency",
            _positive,
            DEFAULT_LOCAL_SLOTS,
            f"local generations at once per device (default {DEFAULT_LOCAL_SLOTS}); "
            "the others wait their turn, first come first served",
        ),
        ServerFlag(
            "stream_rate",
            _between(0, 1000, "updates a second"),
            DEFAULT_RATE,
            f"reply updates sent a second (default {DEFAULT_RATE:g}); the first text and the end are sent at "
            "once; 0 sends every token, at a CPU cost per token",
        ),
        ServerFlag(
            "torch_threads",
            _between(0, 256, "threads", int),
            0,
            "torch CPU threads for local models (default 0: half the cores, at most 4, which holds up "
            "when other processes share the CPU)",
        ),
        ServerFlag(
            "public",
            _bool,
            "false",
            "treat this as a public deployment even on a loopback host (e.g. behind a reverse proxy); "
            "a Space (SPACE_ID), --share or a non-loopback --host already count as public",
        ),
        ServerFlag(
            "local_models",
            _models,
            "",
            "comma-separated repo IDs or folders that may be loaded locally; on a public deployment "
            "local models are off unless this or --max-local-params is set",
        ),
        ServerFlag(
            "max_local_params",
            _param_count,
            None,
            "largest local model allowed, in parameters (2B, 500M or an integer), read from the Hub's "
            "safetensors metadata before any download",
        ),
        ServerFlag(
            "rate_limit",
            _rate,
            "off",
            "messages each visitor may send, e.g. 10/min, 2/s, 100/h (default off); counted per "
            "session, and on a public deployment per client address too",
        ),
        ServerFlag(
            "max_turns_per_client",
            _count,
            DEFAULT_TURNS_PER_CLIENT,
            f"replies one client address may have running at once on a public deployment (default "
            f"{DEFAULT_TURNS_PER_CLIENT}; 0 = no limit)",
        ),
        ServerFlag(
            "auth",
            _auth,
            "",
            "require this login before the app opens (protects a --share link or a public host)",
            metavar="USER:PASSWORD",
        ),
        ServerFlag(
            "max_queue",
            _positive,
            64,
            "requests waiting in the queue at most; more are told the app is busy (default 64)",
        ),
        ServerFlag(
            "retries",
            _count,
            retry.retries,
            "retries of a 429 (rate limited) or 503 (loading) answer before the first token; 0 = none",
        ),
        ServerFlag(
            "retry_backoff", _seconds, retry.backoff, "seconds before the first retry, doubled for each next one"
        ),
        ServerFlag(
            "retry_max_wait",
            _seconds,
            retry.max_wait,
            "longest wait before a retry; a longer Retry-After is shown to the user instead of waited for",
        ),
        ServerFlag(
            "max_message_chars",
            _positive,
            limits.max_message_chars,
            "longest message (and system prompt) accepted, in characters",
        ),
        ServerFlag(
            "max_history_chars",
            _count,
            limits.max_history_chars,
            "longest history sent to the model, in characters; older turns are dropped with a notice",
        ),
        ServerFlag(
            "max_attachment_mb",
            _megabytes,
            limits.max_attachment_mb,
            "largest attached document, in MB (images have their own limit)",
        ),
        ServerFlag(
            "max_pdf_pages",
            _positive,
            limits.max_pdf_pages,
            "most pages an attached PDF may have",
        ),
        ServerFlag(
            "openai_api",
            _bool,
            "false",
            "serve an OpenAI-compatible API (/v1/models, /v1/chat/completions) on the same port; on a "
            "public deployment it needs --api-key",
        ),
        ServerFlag(
            "api_keys",
            _models,
            "",
            "comma-separated keys OpenAI API callers send as the Bearer (their HF token then goes in "
            "X-HF-Token); required for the API on a public deployment. Prefer HFCHAT_API_KEYS: a flag "
            "shows in the process list",
            metavar="KEY[,KEY...]",
            alias="--api-key",
        ),
        ServerFlag(
            "mcp",
            _mcp_url,
            "",
            "an MCP server (streamable HTTP URL) whose tools every visitor's model may call; repeatable "
            "(HFCHAT_MCP: URLs separated by commas). Only https://huggingface.co/mcp gets the HF token",
            metavar="URL",
            repeat=True,
        ),
        ServerFlag(
            "mcp_stdio",
            _command,
            "",
            'a local MCP server run as this command over stdio, e.g. "python -m my_server"; repeatable '
            "(HFCHAT_MCP_STDIO: commands separated by ';'). Operator-only: visitors can add HTTP servers only",
            metavar="COMMAND",
            repeat=True,
            sep=";",
        ),
        ServerFlag(
            "max_tool_steps",
            _between(1, 20, "rounds", int),
            5,
            "rounds of tool calls in one turn; after the last the model answers without tools",
        ),
        ServerFlag("tool_timeout", _seconds, 30.0, "the longest one tool call may run, in seconds"),
        ServerFlag(
            "embeddings",
            _embeddings,
            "",
            "rank a long document's parts by embeddings instead of keywords (BM25): an http(s) URL of a Text "
            "Embeddings Inference server (sent no token), or a Hub repo ID served for feature-extraction by "
            "Inference Providers (sent the HF token); when it fails, keywords rank and the reply says so",
            metavar="URL|REPO_ID",
        ),
        ServerFlag(
            "local_dirs",
            _models,
            "",
            "comma-separated folders under which local model folders may be loaded (default: anywhere); "
            "a path outside them is refused before the disk is touched",
        ),
    )


def _mcp_url(value: str) -> str:
    url = value.strip()
    if not url.lower().startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL of an MCP server (streamable HTTP), got {value!r}; "
            "run a local server over stdio with --mcp-stdio instead"
        )
    return url


def _embeddings(value: str) -> str:
    target = value.strip()
    if target and not target.lower().startswith(("http://", "https://")) and not is_repo_id(target):
        raise argparse.ArgumentTypeError(
            f"expected an http(s) URL of an embeddings server or a Hub repo ID (owner/name, such as "
            f"BAAI/bge-small-en-v1.5), got {value!r}; leave it empty to rank by keywords"
        )
    return target


def _command(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError('expected a command line, e.g. --mcp-stdio "python -m my_server"')
    return value.strip()


def _add_server_flag(
    parser: argparse.ArgumentParser, flag: ServerFlag, default: Callable[[str, object], object]
) -> None:
    if flag.repeat:  # given several times; the variable's items when the flag is not given
        env_items = str(default(flag.name, flag.default) or "").split(flag.sep)
        parser.add_argument(
            "--" + flag.name.replace("_", "-"),
            type=flag.parse,
            action="append",
            default=None,
            help=flag.help,
            metavar=flag.metavar,
        )
        parser.set_defaults(**{f"{flag.name}_env": tuple(flag.parse(i) for i in env_items if i.strip())})
        return
    kwargs: dict[str, Any] = {"nargs": "?", "const": True} if flag.switch else {}
    if flag.metavar:
        kwargs["metavar"] = flag.metavar
    parser.add_argument(
        "--" + flag.name.replace("_", "-"),
        *([flag.alias] if flag.alias else []),
        type=flag.parse,
        default=default(flag.name, flag.default),
        help=flag.help,
        **kwargs,
    )


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Every flag also reads HFCHAT_<NAME> from the environment; the flag wins."""
    env = os.environ if environ is None else environ

    def default(name: str, fallback: object) -> object:
        return env.get(ENV_PREFIX + name.upper(), fallback)

    p = argparse.ArgumentParser(
        prog="app.py",
        description="hfchat: chat with Hugging Face models through LangChain's ChatHuggingFace. "
        "Each flag can also be set as HFCHAT_<FLAG> (for example HFCHAT_BACKEND=endpoint).",
    )
    # SPACE_ID is set on Hugging Face Spaces, where the app must listen on every interface.
    p.add_argument(
        "--host",
        default=default("host", "0.0.0.0" if env.get("SPACE_ID") else "127.0.0.1"),
        help="interface to listen on",
    )
    p.add_argument(
        "--port", type=int, default=default("port", env.get("GRADIO_SERVER_PORT", 7860)), help="port (default 7860)"
    )
    _add_server_flag(p, ServerFlag("share", _bool, "false", "create a public Gradio share link"), default)
    for setting in SETTINGS.values():
        if setting.name in STORED and setting.control.flag:
            _add_setting_flag(p, setting, default)
    for flag in _server_flags():
        _add_server_flag(p, flag, default)
    return p


def parse_options(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> AppOptions:
    env = os.environ if environ is None else environ
    parser = build_parser(env)
    args = parser.parse_args(argv)
    for action in parser._actions:  # argparse checks choices of flags, not of HFCHAT_* defaults
        value = getattr(args, action.dest, None)
        if action.choices is not None and value is not None and value not in action.choices:
            parser.error(f"{ENV_PREFIX}{action.dest.upper()}={value!r} is not one of: {', '.join(action.choices)}")
    if args.backend:
        backend = Backend(args.backend)
    else:
        backend = Backend.PROVIDERS if env_token(env) else Backend.LOCAL
    model = args.model
    if model is None:
        model = {Backend.PROVIDERS: DEFAULT_REMOTE_MODEL, Backend.LOCAL: DEFAULT_LOCAL_MODEL}.get(backend, "")
    try:
        sidebar = SidebarSettings.model_validate(
            {
                **{name: getattr(args, name) for name in STORED if hasattr(args, name)},
                "backend": backend,
                "model": model,
            }
        )
    except ValidationError as exc:
        parser.error(config_error(exc).message)
    # Each AppOptions field with a flag of its own name takes the flag's value as parsed.
    flagged = {f.name: getattr(args, f.name) for f in fields(AppOptions) if f.init and hasattr(args, f.name)}
    derived: dict[str, Any] = dict(
        sidebar=sidebar,
        mcp=tuple(args.mcp) if args.mcp else args.mcp_env,
        mcp_stdio=tuple(args.mcp_stdio) if args.mcp_stdio else args.mcp_stdio_env,
        endpoint_api_key=args.endpoint_api_key.strip(),
        public=is_public(args.host, args.share, env, forced=args.public),
        oauth=oauth_enabled(env),
        on_space=bool(env.get("SPACE_ID")),
        retry=RetryPolicy(retries=args.retries, backoff=args.retry_backoff, max_wait=args.retry_max_wait),
        limits=InputLimits(
            max_message_chars=args.max_message_chars,
            max_history_chars=args.max_history_chars,
            local_dirs=args.local_dirs,
            max_attachment_mb=args.max_attachment_mb,
            max_pdf_pages=args.max_pdf_pages,
        ),
    )
    return AppOptions(**{**flagged, **derived})
