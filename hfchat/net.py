"""Every HTTP request hfchat makes, and the rules it goes out under.

huggingface_hub sends all its traffic (Hub metadata, Inference Providers, custom endpoints)
through one process-wide httpx client that it builds from a factory; `install()` gives it
ours. That makes this module the one place where hfchat decides:

- **Who gets a credential.** The Hugging Face token goes only to Hugging Face's own
  services: huggingface.co and its subdomains (the router), and the `HF_ENDPOINT` in use.
  Any other host gets no `Authorization` header unless the endpoint backend registered that
  exact key for that exact origin (`register_endpoint`). huggingface_hub falls back to
  `get_token()` (HF_TOKEN, or the file `hf auth login` writes) whenever a client has no key,
  so the endpoint backend gives every client an explicit key, `NO_CREDENTIALS` when there
  is none, and the request hook removes that placeholder and anything else unregistered.
- **Where a visitor's endpoint may connect.** On a public deployment a visitor's endpoint
  URL must not reach the server's own network. The host is resolved once per connection,
  every address it resolves to is checked, and the socket connects to a checked address
  (`_PinnedBackend`): a name that resolves to a public address when checked and to
  127.0.0.1 a moment later (DNS rebinding) cannot slip through. TLS still verifies the
  original host name, since httpcore sends it as SNI.
- **Redirects.** Only Hugging Face's services are followed (file downloads redirect to a
  CDN); a redirect from any other host is refused with a message, so a visitor's server
  cannot bounce a request to an internal address.
- **Deadlines and sizes.** Every connect and read honours the thread's `hfchat.deadline`, so
  a server that trickles one byte a second cannot hold a turn past its deadline, and every
  read counts against the thread's byte budget, so one that sends a 63 MB line is stopped
  before it is read whole.
- **Logs.** URLs in httpx's and httpcore's log lines lose their user:password and query.
- **Offline mode.** HF_HUB_OFFLINE=1 is about the Hub: registered endpoint origins are let
  through it, everything else still meets huggingface_hub's own offline check.
"""

from __future__ import annotations

import base64
import functools
import ipaddress
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from hfchat.deadline import DeadlineExceeded, count_read, io_timeout
from hfchat.errors import EndpointNotAllowedError, RedirectRefusedError
from hfchat.tokens import Fingerprinter, env_token

log = logging.getLogger(__name__)

NO_CREDENTIALS = "hfchat-no-credentials"
"""The explicit key of a client that must send none: huggingface_hub replaces a missing key
with the machine's own token, so "none" has to be said; the request hook removes it."""

_MAX_ENTRIES = 100_000
"""Registered origins and keys kept at most: a visitor typing endless URLs cannot grow
memory without bound. Past it, keys are forgotten oldest first (a forgotten key is
dropped from its request: a 401, never a leak) and every connection is checked."""

Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str | httpx.URL) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in; never raises."""
    try:
        parts = urlsplit(str(url))
        port = parts.port
        host = (parts.hostname or "").lower()
    except ValueError:  # a port out of range or a malformed host: matches nothing
        return ("", "", 0)
    scheme = parts.scheme.lower()
    return (scheme, host, port or _DEFAULT_PORTS.get(scheme, 0))


def _hf_origins() -> set[Origin]:
    """The Hub and the Inference Providers router this process uses (HF_ENDPOINT moves the
    first; tests move both to a loopback recorder)."""
    from huggingface_hub import constants

    return {origin(constants.ENDPOINT), origin(constants.INFERENCE_PROXY_TEMPLATE.format(provider="auto"))}


def is_hf_service(url: str | httpx.URL) -> bool:
    """Hugging Face's own services, the only hosts that may receive the Hugging Face token:
    huggingface.co and its subdomains (the Inference Providers router among them) over
    HTTPS, and the Hub endpoint this process uses (HF_ENDPOINT). Spaces (*.hf.space) are
    other people's apps and Inference Endpoints are checked apart (`is_inference_endpoint`)."""
    scheme, host, port = where = origin(url)
    if where in _hf_origins():
        return True
    return scheme == "https" and port == 443 and (host == "huggingface.co" or host.endswith(".huggingface.co"))


def is_inference_endpoint(url: str) -> bool:
    """A dedicated Inference Endpoint (Hugging Face-hosted, paid for by a token)."""
    scheme, host, _ = origin(url)
    return scheme == "https" and host.endswith(".endpoints.huggingface.cloud")


def endpoint_key(
    url: str, *, hf_token: str | None, operator_url: str = "", operator_key: str = "", visitor_key: str = ""
) -> str | None:
    """The key a custom endpoint's requests carry, or None: the one rule for endpoints.

    - A key the visitor typed for this session is theirs to send to their endpoint.
    - The operator's own endpoint (`--endpoint-url`) gets the operator's `--endpoint-api-key`,
      or, when it is a Hugging Face service or Inference Endpoint, the Hugging Face token.
    - Any other URL gets the Hugging Face token only when it is Hugging Face's own service
      (`is_hf_service`); a visitor-typed Inference Endpoint or Space gets nothing.
    """
    if visitor_key.strip():
        return visitor_key.strip()
    if operator_url and origin(url) == origin(operator_url):
        if operator_key.strip():
            return operator_key.strip()
        return hf_token if (is_hf_service(url) or is_inference_endpoint(url)) else None
    return hf_token if is_hf_service(url) else None


def is_hf_token(key: str) -> bool:
    """A Hugging Face token: token-shaped, or the one this machine holds (HF_TOKEN or the
    login file), whatever its shape."""
    from huggingface_hub import get_token

    return key.startswith("hf_") or key in {env_token(), get_token()}


def is_internal(address: str) -> bool:
    """Loopback, private, link-local, reserved or multicast: not a public internet address."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, once, in the resolver's order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Egress:
    """What has been registered for outbound requests: endpoint origins (let through offline
    mode), the keys each may receive (as fingerprints), and the origins whose connections
    must reach public addresses only. Process-wide, like huggingface_hub's own client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: OrderedDict[Origin, None] = OrderedDict()
        self._keys: OrderedDict[tuple[Origin, str], None] = OrderedDict()
        self._guarded: set[tuple[str, int]] = set()
        self._guard_all = False
        self._fingerprint = Fingerprinter()

    # -- registration
    def register_endpoint(self, url: str, key: str | None) -> None:
        """An endpoint client is being built for `url`, sending `key` (None: no credentials)."""
        where = origin(url)
        with self._lock:
            _remember(self._endpoints, where)
            for allowed in (key, _basic_auth(url)):
                if allowed:
                    _remember(self._keys, (where, self._fingerprint(allowed)))

    def guard(self, url: str) -> None:
        """Connections to this URL's host and port must reach public addresses only."""
        _, host, port = origin(url)
        with self._lock:
            if len(self._guarded) >= _MAX_ENTRIES:
                self._guard_all = True  # fail closed: check every connection from now on
            else:
                self._guarded.add((host, port))

    def is_guarded(self, host: str, port: int) -> bool:
        with self._lock:
            if (host.lower(), port) in self._guarded:
                return True
            guard_all = self._guard_all
        return guard_all and not is_hf_service(f"https://{host}:{port}")

    def _may_carry(self, url: httpx.URL, authorization: str) -> bool:
        """A key registered for this origin; a Hugging Face token only ever to an Inference
        Endpoint the operator configured (the backend registers only those)."""
        scheme, _, value = authorization.partition(" ")
        key = value if scheme.lower() == "bearer" else authorization
        if is_hf_token(key) and not is_inference_endpoint(str(url)):
            return False
        with self._lock:
            return (origin(url), self._fingerprint(key)) in self._keys

    def _endpoint_registered(self, url: httpx.URL) -> bool:
        with self._lock:
            return origin(url) in self._endpoints

    # -- hooks of the shared client
    def on_request(self, request: httpx.Request) -> None:
        """Credentials only where they belong; the Hub's own offline check for the rest."""
        from huggingface_hub import constants
        from huggingface_hub.utils._http import hf_request_event_hook

        if not is_hf_service(request.url):
            authorization = request.headers.get("authorization")
            if authorization is not None and not self._may_carry(request.url, authorization):
                del request.headers["authorization"]
                if authorization != f"Bearer {NO_CREDENTIALS}":
                    log.warning("dropped an Authorization header bound for %s: not its key", request.url.host)
            if constants.is_offline_mode() and self._endpoint_registered(request.url):
                return
        hf_request_event_hook(request)

    def on_response(self, response: httpx.Response) -> None:
        """Refuse a redirect from anything but Hugging Face's services."""
        if response.has_redirect_location and not is_hf_service(response.request.url):
            target = response.headers.get("location", "")
            response.close()
            raise RedirectRefusedError(
                f"The endpoint {display(response.request.url)} answered with a redirect "
                f"({response.status_code}) to {display(target) or 'another address'}, and hfchat does not "
                "follow redirects from custom endpoints.",
                "Set the endpoint URL to the address the server really answers on (often https://, "
                "or with or without a trailing /v1).",
            )

    def client(self) -> httpx.Client:
        """The httpx client huggingface_hub shares between all its calls."""
        return httpx.Client(
            transport=GuardedTransport(self),
            event_hooks={"request": [self.on_request], "response": [self.on_response]},
            follow_redirects=True,  # for the Hub's downloads only: on_response refuses all others
            timeout=None,
        )


def _basic_auth(url: str) -> str | None:
    """The `Authorization` value httpx sends for a URL's user:password, if it has one."""
    parts = urlsplit(url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _remember(table: OrderedDict[Any, None], key: Any) -> None:
    table[key] = None
    table.move_to_end(key)
    while len(table) > _MAX_ENTRIES:
        table.popitem(last=False)


EGRESS = Egress()
"""The process's one registry: huggingface_hub's client, which it serves, is process-wide too."""


# ------------------------------------------------------------------ connections


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose reads and writes stop at the thread's deadline, and whose reads count
    against the thread's byte budget (see hfchat.deadline)."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            data = self._stream.read(max_bytes, io_timeout(timeout))
        except httpcore.ReadTimeout:
            io_timeout(None)  # raises DeadlineExceeded when it was the deadline that ran out
            raise
        count_read(len(data))  # and past the thread's byte budget, ReplyTooLargeError
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, io_timeout(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, io_timeout(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Resolves each host once, checks what it resolved to, and connects to that address."""

    def __init__(self, egress: Egress) -> None:
        self._egress = egress
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: the name does not resolve ({exc})") from exc
        if self._egress.is_guarded(host, port):
            internal = [a for a in addresses if is_internal(a)]
            if internal:
                raise EndpointNotAllowedError(
                    f"This public deployment does not connect to local or private network addresses, and "
                    f"{host} resolves to one ({internal[0]}).",
                    "Use an endpoint reachable on the internet (an Inference Endpoint, or your server's public "
                    "URL). The operator's own --endpoint-url (HFCHAT_ENDPOINT_URL) is always allowed.",
                )
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                stream = self._inner.connect_tcp(address, port, io_timeout(timeout), local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
                continue
            return _DeadlineStream(stream)
        raise error or httpcore.ConnectError(f"{host}: no address to connect to")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over `_PinnedBackend`.

    httpx.HTTPTransport takes no network backend, so its connection pool is rebuilt with
    one (httpcore's public `ConnectionPool(network_backend=...)`), keeping httpx's mapping of
    httpcore's errors to its own. Proxies from the environment are not used: a proxy would
    resolve names itself, out of reach of the check. `tests/backends/test_egress.py` shows the pin in
    use: a rebinding name is refused, which an unpinned pool would let through.
    """

    def __init__(self, egress: Egress) -> None:
        super().__init__()
        ssl_context = httpx.create_ssl_context()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context, network_backend=_PinnedBackend(egress), max_connections=100
        )


# ------------------------------------------------------------------ is the Hub there?

HUB_PROBE_TIMEOUT_S = 3.0
"""How long a connection to the Hub may take before it counts as unreachable: well inside
the 5 s a user should wait to learn there is no network."""

HUB_PROBE_TTL_S = 15.0
"""How long a probe's answer is reused: a page of turns (or the offline notice and the turn
after it) asks once, and a network that comes back is noticed within seconds."""

_probe_lock = threading.Lock()
_probed: tuple[float, str, bool] | None = None  # (when, endpoint, reachable)


def hub_reachable() -> bool:
    """Whether a TCP connection to the Hub (`HF_ENDPOINT`) opens within HUB_PROBE_TIMEOUT_S.

    huggingface_hub retries a failed connection 5 times, 1+2+4+8+8 s apart: with no network
    a Hub repo ID took 24 s to say so. Callers ask this first and, when the Hub is out of
    reach, read only what is cached on disk (`local_files_only`), which answers at once.
    Retries where they help (a reachable Hub or router answering 5xx) are left alone.
    Always False under HF_HUB_OFFLINE=1; the answer is kept for HUB_PROBE_TTL_S."""
    global _probed
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    endpoint = constants.ENDPOINT
    with _probe_lock:
        now = time.monotonic()
        if _probed is not None and _probed[1] == endpoint and now - _probed[0] < HUB_PROBE_TTL_S:
            return _probed[2]
        _, host, port = origin(endpoint)
        reachable = _connects(host, port, HUB_PROBE_TIMEOUT_S)
        _probed = (time.monotonic(), endpoint, reachable)
    if not reachable:
        log.info("the Hugging Face Hub (%s) cannot be reached; using only what is cached on disk", host)
    return reachable


def _connects(host: str, port: int, timeout: float) -> bool:
    """A TCP connection to `host` opens within `timeout`, the name's lookup included (a
    resolver that hangs is waited for in a thread of its own, at most `timeout`)."""
    opened: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except (OSError, UnicodeError):
            return
        opened.append(True)

    probe = threading.Thread(target=connect, name="hfchat-hub-probe", daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(opened)


def forget_hub_probe() -> None:
    """Ask the network again on the next `hub_reachable` (tests, or a network that changed)."""
    global _probed
    with _probe_lock:
        _probed = None


# ------------------------------------------------------------------ logs and installation

_URL = re.compile(r"(?P<scheme>https?://)(?:[^\s/@?#]*@)?(?P<host>[^\s/?#\"']*)(?P<path>[^\s?#\"']*)(?:\?[^\s#\"']*)?")


def scrub(text: str) -> str:
    """Every URL in `text` without user:password and query (what a log line may show)."""
    return _URL.sub(lambda m: m["scheme"] + m["host"] + m["path"], text)


def display(url: str | httpx.URL) -> str:
    """A URL as it may be shown or logged: no credentials, no query."""
    return scrub(str(url))


class _ScrubURLs(logging.Filter):
    """Removes credentials from the URLs in a log record, in its message and its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(str(a)) if isinstance(a, (str, httpx.URL)) else a for a in record.args)
        return True


SCRUB_URLS = _ScrubURLs()


@functools.cache
def install() -> None:
    """Once per process: huggingface_hub's client comes from `EGRESS`, and httpx's and
    httpcore's log lines are scrubbed. Idempotent; every endpoint build calls it."""
    from huggingface_hub import set_client_factory

    for name in ("httpx", "httpcore"):
        logging.getLogger(name).addFilter(SCRUB_URLS)
    set_client_factory(EGRESS.client)


def register_endpoint(url: str, key: str | None) -> None:
    """Let this endpoint through offline mode and allow `key` (if any) to reach it."""
    install()
    EGRESS.register_endpoint(url, key)


def session() -> httpx.Client:
    """The shared, guarded client, for hfchat's own requests (a server's model list)."""
    from huggingface_hub import get_session

    install()
    return get_session()


__all__ = [
    "EGRESS",
    "NO_CREDENTIALS",
    "DeadlineExceeded",
    "display",
    "endpoint_key",
    "install",
    "is_hf_service",
    "register_endpoint",
    "scrub",
    "session",
]
