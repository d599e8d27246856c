"""Command-line flags and HFCHAT_* environment variables: the defaults shown in the sidebar."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from hfchat.config import DEFAULT_TIMEOUT_S, Backend, InputLimits, RetryPolicy, config_error
from hfchat.fairqueue import DEFAULT_LOCAL_SLOTS
from hfchat.limits import DEFAULT_STALL_TIMEOUT_S, DEFAULT_TURN_TIMEOUT_S, DEFAULT_TURNS_PER_CLIENT, Rate, parse_rate
from hfchat.policy import DeploymentPolicy, is_public, parse_param_count
from hfchat.settings import SETTINGS, STORED, Setting, SidebarSettings
from hfchat.space import oauth_enabled
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
    p.add_argument(
        "--share",
        type=_bool,
        nargs="?",
        const=True,
        default=default("share", "false"),
        help="create a public Gradio share link",
    )
    for setting in SETTINGS.values():
        if setting.name in STORED:
            _add_setting_flag(p, setting, default)
    p.add_argument(
        "--endpoint-api-key",
        default=default("endpoint_api_key", ""),
        help="key sent to --endpoint-url as 'Authorization: Bearer' (the HF token never goes to a host that is not "
        "Hugging Face's); prefer HFCHAT_ENDPOINT_API_KEY, a flag shows in the process list",
    )
    p.add_argument(
        "--cache-size", type=_positive, default=default("cache_size", 2), help="how many built models to keep (LRU)"
    )
    p.add_argument(
        "--timeout",
        type=_positive,
        default=default("timeout", DEFAULT_TIMEOUT_S),
        help="seconds an endpoint may take to connect, to answer each read, and to send its first chunk",
    )
    p.add_argument(
        "--turn-timeout",
        type=_duration,
        default=default("turn_timeout", DEFAULT_TURN_TIMEOUT_S),
        help=f"longest a reply may take, in seconds (default {DEFAULT_TURN_TIMEOUT_S}); past it the reply "
        "is cut and what arrived is kept",
    )
    p.add_argument(
        "--stall-timeout",
        type=_duration,
        default=default("stall_timeout", DEFAULT_STALL_TIMEOUT_S),
        help=f"longest a reply may go without a new chunk once it has started, in seconds "
        f"(default {DEFAULT_STALL_TIMEOUT_S}); past it the reply is cut",
    )
    p.add_argument(
        "--concurrency",
        type=_positive,
        default=default("concurrency", DEFAULT_CONCURRENCY),
        help=f"chats served at once (default {DEFAULT_CONCURRENCY}): remote backends run this many in parallel",
    )
    p.add_argument(
        "--local-concurrency",
        type=_positive,
        default=default("local_concurrency", DEFAULT_LOCAL_SLOTS),
        help=f"local generations at once per device (default {DEFAULT_LOCAL_SLOTS}); "
        "the others wait their turn, first come first served",
    )
    p.add_argument(
        "--public",
        type=_bool,
        nargs="?",
        const=True,
        default=default("public", "false"),
        help="treat this as a public deployment even on a loopback host (e.g. behind a reverse proxy); "
        "a Space (SPACE_ID), --share or a non-loopback --host already count as public",
    )
    p.add_argument(
        "--local-models",
        type=_models,
        default=default("local_models", ""),
        help="comma-separated repo IDs or folders that may be loaded locally; on a public deployment "
        "local models are off unless this or --max-local-params is set",
    )
    p.add_argument(
        "--max-local-params",
        type=_param_count,
        default=default("max_local_params", None),
        help="largest local model allowed, in parameters (2B, 500M or an integer), read from the Hub's "
        "safetensors metadata before any download",
    )
    p.add_argument(
        "--rate-limit",
        type=_rate,
        default=default("rate_limit", "off"),
        help="messages each visitor may send, e.g. 10/min, 2/s, 100/h (default off); counted per "
        "session, and on a public deployment per client address too",
    )
    p.add_argument(
        "--max-turns-per-client",
        type=_count,
        default=default("max_turns_per_client", DEFAULT_TURNS_PER_CLIENT),
        help=f"replies one client address may have running at once on a public deployment (default "
        f"{DEFAULT_TURNS_PER_CLIENT}; 0 = no limit)",
    )
    p.add_argument(
        "--auth",
        type=_auth,
        default=default("auth", ""),
        metavar="USER:PASSWORD",
        help="require this login before the app opens (protects a --share link or a public host)",
    )
    p.add_argument(
        "--max-queue",
        type=_positive,
        default=default("max_queue", 64),
        help="requests waiting in the queue at most; more are told the app is busy (default 64)",
    )
    retry, limits = RetryPolicy(), InputLimits()
    p.add_argument(
        "--retries",
        type=_count,
        default=default("retries", retry.retries),
        help="retries of a 429 (rate limited) or 503 (loading) answer before the first token; 0 = none",
    )
    p.add_argument(
        "--retry-backoff",
        type=_seconds,
        default=default("retry_backoff", retry.backoff),
        help="seconds before the first retry, doubled for each next one",
    )
    p.add_argument(
        "--retry-max-wait",
        type=_seconds,
        default=default("retry_max_wait", retry.max_wait),
        help="longest wait before a retry; a longer Retry-After is shown to the user instead of waited for",
    )
    p.add_argument(
        "--max-message-chars",
        type=_positive,
        default=default("max_message_chars", limits.max_message_chars),
        help="longest message (and system prompt) accepted, in characters",
    )
    p.add_argument(
        "--max-history-chars",
        type=_count,
        default=default("max_history_chars", limits.max_history_chars),
        help="longest history sent to the model, in characters; older turns are dropped with a notice",
    )
    p.add_argument(
        "--local-dirs",
        type=_models,
        default=default("local_dirs", ""),
        help="comma-separated folders under which local model folders may be loaded (default: anywhere); "
        "a path outside them is refused before the disk is touched",
    )
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
            {**{name: getattr(args, name) for name in STORED}, "backend": backend, "model": model}
        )
    except ValidationError as exc:
        parser.error(config_error(exc).message)
    return AppOptions(
        host=args.host,
        port=args.port,
        share=args.share,
        sidebar=sidebar,
        endpoint_api_key=args.endpoint_api_key.strip(),
        cache_size=args.cache_size,
        timeout=args.timeout,
        turn_timeout=args.turn_timeout,
        stall_timeout=args.stall_timeout,
        concurrency=args.concurrency,
        local_concurrency=args.local_concurrency,
        public=is_public(args.host, args.share, env, forced=args.public),
        local_models=args.local_models,
        max_local_params=args.max_local_params,
        rate_limit=args.rate_limit,
        max_turns_per_client=args.max_turns_per_client,
        max_queue=args.max_queue,
        auth=args.auth,
        oauth=oauth_enabled(env),
        on_space=bool(env.get("SPACE_ID")),
        retry=RetryPolicy(retries=args.retries, backoff=args.retry_backoff, max_wait=args.retry_max_wait),
        limits=InputLimits(
            max_message_chars=args.max_message_chars,
            max_history_chars=args.max_history_chars,
            local_dirs=args.local_dirs,
        ),
    )
