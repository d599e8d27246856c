"""What a deployment may build: the one place those rules are enforced.

Local models: on a public deployment (a Space, a share link, a non-loopback host, or `--public`) any
visitor could otherwise make the server download and load any model on the Hub, so local
loading is off unless the operator allows model IDs (`--local-models`) or sets a size
ceiling (`--max-local-params`). The size is read from safetensors metadata before anything
is downloaded: from the Hub for a repo ID, from the files' headers for a local folder.

Custom endpoints: on a public deployment a visitor's endpoint URL must not reach the
server's own network (loopback, private, link-local addresses), or the app would become a
way into it; the operator's own `--endpoint-url` is always allowed. The check here gives
the message early; `hfchat.net` repeats it on every connection, pinned to what it checked.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from hfchat import net
from hfchat.config import Backend, ModelSpec, display_url, looks_like_path
from hfchat.errors import EndpointNotAllowedError, LocalModelNotAllowedError, corrupt_weights

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([KMBGT]?)\s*$", re.I)
_MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on a header

FLAGS_HINT = (
    "The operator can allow local models with --local-models owner/name,... (HFCHAT_LOCAL_MODELS) "
    "or a size ceiling with --max-local-params 2B (HFCHAT_MAX_LOCAL_PARAMS)."
)


def parse_param_count(text: str) -> int:
    """'2B', '1.5B', '500M', '135m', '7e9' or a plain integer, as a parameter count."""
    match = _COUNT.match(str(text))
    if not match:
        raise ValueError(f"expected a parameter count such as 2B, 500M or 135000000, got {text!r}")
    count = float(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    if not math.isfinite(count) or count < 1:
        raise ValueError(f"a parameter count must be at least 1, got {text!r}")
    return int(count)


def format_params(count: int) -> str:
    """A readable parameter count: 1.5B, 135M, 980K."""
    for suffix, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if count >= size:
            return f"{count / size:.3g}{suffix}"
    return str(count)


def is_public(host: str, share: bool, environ: Mapping[str, str], forced: bool = False) -> bool:
    """Strangers can reach the app: on a Space (SPACE_ID), behind a share link, on a
    non-loopback interface, or when the operator says so (a reverse proxy on loopback)."""
    return forced or share or bool(environ.get("SPACE_ID")) or host not in LOOPBACK_HOSTS


def _key(model: str) -> str:
    """One spelling per model: repo IDs as given, folders as absolute paths."""
    model = model.strip()
    return str(Path(model).expanduser().resolve()) if looks_like_path(model) else model


def folder_param_count(folder: Path) -> int | None:
    """Parameters in a folder's *.safetensors files, from their headers; None if it has none."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        try:
            with path.open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                if size > _MAX_HEADER_BYTES:
                    raise ValueError(f"an implausible safetensors header ({size} bytes)")
                header = json.loads(f.read(size))
            total += sum(math.prod(t.get("shape") or []) for name, t in header.items() if name != "__metadata__")
        except (struct.error, ValueError, AttributeError, TypeError) as exc:  # short, garbled or not a dict
            raise corrupt_weights(f"{path.name}: {type(exc).__name__}: {exc}") from None
    return total


def hub_param_count(repo_id: str, token: str | None) -> int | None:
    """Parameters of a Hub model from the Hub's safetensors metadata (no weights fetched)."""
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, expand=["safetensors"], token=token or False)
    return info.safetensors.total if info.safetensors else None


def internal_address(host: str) -> str | None:
    """The first loopback, private, link-local or otherwise non-public address `host` resolves
    to, or None (also when it does not resolve: the request will then fail on its own)."""
    try:
        return next((a for a in net.resolve(host, 0) if net.is_internal(a)), None)
    except (OSError, UnicodeError, ValueError):
        return None


@dataclass(frozen=True)
class DeploymentPolicy:
    """The operator's rules for local models and endpoint URLs; `check` raises before
    anything is loaded or requested."""

    public: bool = False
    allowed: frozenset[str] = frozenset()
    max_params: int | None = None
    operator_endpoint: str = ""

    @classmethod
    def of(
        cls, public: bool, allowed: Iterable[str] = (), max_params: int | None = None, operator_endpoint: str = ""
    ) -> DeploymentPolicy:
        return cls(public, frozenset(_key(m) for m in allowed if m.strip()), max_params, operator_endpoint)

    def check_endpoint(self, spec: ModelSpec) -> None:
        """On a public deployment, refuse a visitor's endpoint URL that reaches the server's network."""
        url = spec.endpoint_url or ""
        if spec.backend is not Backend.ENDPOINT or not self.public:
            return
        if self.operator_endpoint and net.origin(url) == net.origin(self.operator_endpoint):
            return
        # Checked now for a clear message before anything is built, and again by every
        # connection (hfchat.net pins it to the addresses it checked): DNS may change.
        net.EGRESS.guard(url)
        internal = internal_address(net.origin(url)[1])
        if internal is not None:
            raise EndpointNotAllowedError(
                f"This public deployment does not connect to local or private network addresses, and "
                f"{display_url(url)} is one ({internal}).",
                "Use an endpoint reachable on the internet (an Inference Endpoint, or your server's public "
                "URL). The operator's own --endpoint-url (HFCHAT_ENDPOINT_URL) is always allowed.",
            )

    @property
    def restricted(self) -> bool:
        return self.public or bool(self.allowed) or self.max_params is not None

    def describe(self) -> str:
        """One line for the startup log."""
        if not self.restricted:
            return "local models: any (private deployment)"
        parts = [f"allowed: {', '.join(sorted(self.allowed))}"] if self.allowed else []
        if self.max_params is not None:
            parts.append(f"up to {format_params(self.max_params)} parameters")
        where = "public deployment" if self.public else "private deployment"
        return f"local models ({where}): {'; '.join(parts) or 'off'}"

    def check(self, spec: ModelSpec, token: str | None) -> None:
        """Raise unless this deployment may build `spec`: a local model it allows, an endpoint
        outside the server's network."""
        self.check_endpoint(spec)
        if spec.backend is not Backend.LOCAL or not self.restricted:
            return
        model = spec.model
        if _key(model) in self.allowed:
            return
        folder = looks_like_path(model)
        allowed = f" Allowed here: {', '.join(sorted(self.allowed))}." if self.allowed else ""
        if self.max_params is None or (folder and self.public):
            what = "This public deployment" if self.public else "This deployment"
            kind = "local folders outside its allow-list" if folder else f"{model} as a local model"
            if not self.allowed and self.max_params is None:
                kind = "local models"
            raise LocalModelNotAllowedError(
                f"{what} does not load {kind}.{allowed}",
                "Use Inference Providers or a custom endpoint instead. " + FLAGS_HINT,
            )
        count = folder_param_count(Path(model).expanduser()) if folder else hub_param_count(model, token)
        limit = format_params(self.max_params)
        if count is None:
            raise LocalModelNotAllowedError(
                f"{model} has no safetensors weights, so its size can't be checked against the "
                f"{limit}-parameter limit (--max-local-params).{allowed}",
                "Pick a model that ships .safetensors weights, or use Inference Providers.",
            )
        if count > self.max_params:
            raise LocalModelNotAllowedError(
                f"{model} has {format_params(count)} parameters, over this deployment's limit of "
                f"{limit} (--max-local-params).{allowed}",
                "Pick a smaller model, or use Inference Providers for big models.",
            )
