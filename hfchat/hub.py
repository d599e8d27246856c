"""The model picker's data: Hub search with live providers, local sources, fit estimates and
capability badges, and the check that a named provider serves a model live before a call.

Gradio-free (`hfchat.ui.picker` shows it). Everything the Hub says comes from huggingface_hub:
`HfApi.list_models(..., expand=[...])` for a search and `model_info(expand=
["inferenceProviderMapping"])` for one model, whose mapping `status` is live, staging or error
per provider. Answers are cached for a short TTL, keyed by a fingerprint of the visitor's token
(never the token), so typing and re-opening the picker don't call the Hub again, and a turn's
provider check costs one Hub call per model and provider every few minutes at most.

When the Hub can't be reached (`hfchat.net.hub_reachable`, a 3 s probe), a search says so at
once and the provider check lets the call go as it would without it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from hfchat import net
from hfchat.deadline import io_deadline
from hfchat.errors import HFChatError
from hfchat.providers import AUTO
from hfchat.settings import Backend
from hfchat.tokens import Fingerprinter

log = logging.getLogger("hfchat.hub")

HUB_DEADLINE_S = 5.0
"""The longest a picker search or a provider check waits for the Hub, probe included."""
SEARCH_TTL_S = 120.0
"""How long a search's results are reused (typing back and forth, reopening the picker)."""
MAPPING_TTL_S = 300.0
"""How long a model's provider mapping is trusted before a turn asks the Hub again."""
SEARCH_LIMIT = 30

EXPAND = ["inferenceProviderMapping", "safetensors", "gguf", "pipeline_tag", "tags", "gated", "cardData", "downloads"]
"""What a search asks the Hub to include for each model (huggingface_hub's expand names)."""

CHAT_TASKS = ("text-generation", "image-text-to-text")
"""The pipeline tags the chat can use: text chat, and vision (images in, text out)."""


class Sort(str, Enum):
    TRENDING = "trending"
    DOWNLOADS = "downloads"

    @property
    def hub_name(self) -> str:
        """The value of list_models' `sort`."""
        return "trending_score" if self is Sort.TRENDING else "downloads"


class ProviderNotLiveError(HFChatError, title="Provider doesn't serve this model"): ...


class HubUnreachableError(HFChatError, title="Hub unreachable"):
    """The Hub did not answer a picker search or a provider check (or refused it)."""


# ------------------------------------------------------------------ fit estimates

BF16_BYTES_PER_PARAM = 2.0
FOUR_BIT_BYTES_PER_PARAM = 0.5625
"""NF4/FP4 stores 4 bits a weight; the quantization constants and the layers bitsandbytes keeps
in 16 bits (embeddings, norms, the head) add about half a bit a weight on average: 4.5 bits."""
FIT_MARGIN = 0.2
"""Beyond the weights: activations, the KV cache of a chat-length context, allocator slack."""
FIT_OVERHEAD_BYTES = 512 * 1024**2
"""The runtime itself (CUDA context or the Python process's tensors beside the weights)."""

GB = 1e9


def estimate_bytes(parameters: int, bytes_per_param: float) -> int:
    """Memory a model of `parameters` weights needs loaded: weights, plus FIT_MARGIN of them,
    plus FIT_OVERHEAD_BYTES."""
    weights = parameters * bytes_per_param
    return int(weights * (1 + FIT_MARGIN) + FIT_OVERHEAD_BYTES)


@dataclass(frozen=True)
class Memory:
    """What a model would load into on this machine: free VRAM when a GPU is there, else RAM."""

    free_bytes: int
    kind: str  # "RAM" or "VRAM"


def free_memory() -> Memory:
    """Free VRAM of the first GPU when torch sees one (the local backend loads there), else the
    RAM available to a new allocation (`MemAvailable`, which counts reclaimable cache).

    torch is imported only when it is already loaded or an NVIDIA driver is present: importing
    it costs seconds, which a search on a machine without a GPU need not pay."""
    import sys

    if "torch" in sys.modules or _nvidia_driver():
        import torch

        if torch.cuda.is_available():
            free, _total = torch.cuda.mem_get_info()
            return Memory(int(free), "VRAM")
    import psutil

    return Memory(int(psutil.virtual_memory().available), "RAM")


def _nvidia_driver() -> bool:
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


@dataclass(frozen=True)
class Fit:
    """Whether a model fits this machine in bf16 and in 4-bit, and the estimates behind it."""

    bf16_bytes: int
    four_bit_bytes: int
    memory: Memory

    @classmethod
    def of(cls, parameters: int, memory: Memory) -> Fit:
        return cls(
            estimate_bytes(parameters, BF16_BYTES_PER_PARAM),
            estimate_bytes(parameters, FOUR_BIT_BYTES_PER_PARAM),
            memory,
        )

    @property
    def bf16(self) -> bool:
        return self.bf16_bytes <= self.memory.free_bytes

    @property
    def four_bit(self) -> bool:
        return self.four_bit_bytes <= self.memory.free_bytes

    @property
    def label(self) -> str:
        """ "fits in bf16 (~0.8 GB of 12.3 GB free RAM)", "fits in 4-bit only (...)", "too big (...)"."""
        free = f"{self.memory.free_bytes / GB:.1f} GB free {self.memory.kind}"
        if self.bf16:
            return f"fits in bf16 (~{self.bf16_bytes / GB:.1f} GB of {free})"
        if self.four_bit:
            four, bf16 = self.four_bit_bytes / GB, self.bf16_bytes / GB
            return f"fits in 4-bit only (~{four:.1f} GB of {free}; bf16 ~{bf16:.1f} GB)"
        return f"too big here (4-bit ~{self.four_bit_bytes / GB:.1f} GB, {free})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "bf16": self.bf16,
            "4bit": self.four_bit,
            "bf16_bytes": self.bf16_bytes,
            "4bit_bytes": self.four_bit_bytes,
            "free_bytes": self.memory.free_bytes,
            "memory": self.memory.kind,
        }


def params_label(count: int | None) -> str:
    """135M, 8.03B (policy's format_params); "size unknown" without safetensors metadata."""
    from hfchat.policy import format_params

    return format_params(count) if count else "size unknown"


# ------------------------------------------------------------------ capabilities

_TOOL_TAGS = frozenset({"tool-use", "function-calling", "tools", "tool-calling"})
_REASONING_TAGS = frozenset({"reasoning", "thinking", "chain-of-thought"})


def _profiles() -> dict[str, dict[str, Any]]:
    """LangChain's model profiles (models.dev data shipped with langchain-huggingface), by repo ID."""
    try:
        from langchain_huggingface.data._profiles import _PROFILES
    except ImportError:  # a private module: a later langchain-huggingface may move it
        return {}
    return _PROFILES


@dataclass(frozen=True)
class Capabilities:
    vision: bool = False
    tools: bool = False
    reasoning: bool = False
    context_length: int | None = None

    def badges(self) -> tuple[str, ...]:
        """The badges a result shows, in a fixed order."""
        flags = (("vision", self.vision), ("tools", self.tools), ("reasoning", self.reasoning))
        out = [name for name, on in flags if on]
        if self.context_length:
            out.append(f"{_tokens(self.context_length)} context")
        return tuple(out)


def _tokens(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 else str(n)


def capabilities(repo_id: str, pipeline_tag: str | None, tags: Iterable[str]) -> Capabilities:
    """vision: pipeline_tag image-text-to-text, or the profile's image_inputs; tools: a
    tool-use / function-calling tag, or the profile's tool_calling; reasoning: a reasoning /
    thinking tag, or the profile's reasoning_output; context: the profile's max_input_tokens."""
    tagset = {t.lower() for t in tags}
    profile = _profiles().get(repo_id, {})
    return Capabilities(
        vision=pipeline_tag == "image-text-to-text" or bool(profile.get("image_inputs")),
        tools=bool(tagset & _TOOL_TAGS) or bool(profile.get("tool_calling")),
        reasoning=bool(tagset & _REASONING_TAGS) or bool(profile.get("reasoning_output")),
        context_length=profile.get("max_input_tokens") or None,
    )


# ------------------------------------------------------------------ results


class Source(str, Enum):
    HUB = "hub"
    CACHE = "cache"
    FOLDER = "folder"
    GGUF = "gguf"


@dataclass(frozen=True)
class ModelResult:
    """One model the picker lists: from a Hub search or from this machine."""

    id: str
    source: Source = Source.HUB
    parameters: int | None = None
    gated: bool | str = False
    providers: tuple[str, ...] = ()
    """The providers that serve it live."""
    staging: tuple[str, ...] = ()
    pipeline_tag: str | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    fit: Fit | None = None
    quantization: str | None = None
    """A GGUF file's quantization (Q4_1, Q4_K_M, F16, ...)."""
    path: str | None = None
    """What the local backend loads: a folder or a .gguf file (a cached Hub model: its repo ID)."""
    downloads: int | None = None

    @property
    def local(self) -> bool:
        return self.source is not Source.HUB

    def choice(self, provider: str | None = None) -> dict[str, Any]:
        """The settings one click sets: a provider that serves it live (the first one unless
        `provider` names another), else the local backend, in 4-bit when only 4-bit fits."""
        task = {"task": "image-text-to-text" if self.pipeline_tag == "image-text-to-text" else "text-generation"}
        if not self.local and self.providers and provider != "local":
            chosen = provider if provider in (*self.providers, AUTO) else self.providers[0]
            return {"backend": Backend.PROVIDERS.value, "model": self.id, "provider": chosen, **task}
        four_bit = self.fit is not None and not self.fit.bf16 and self.fit.four_bit and self.quantization is None
        return {"backend": Backend.LOCAL.value, "model": self.path or self.id, "load_in_4bit": four_bit, **task}

    def as_dict(self) -> dict[str, Any]:
        """The `/search_models` API's object for this result."""
        return {
            "id": self.id,
            "source": self.source.value,
            "model": self.path or self.id,
            "parameters": self.parameters,
            "gated": self.gated,
            "providers": list(self.providers),
            "staging_providers": list(self.staging),
            "pipeline_tag": self.pipeline_tag,
            "fits_locally": self.fit.as_dict() if self.fit else None,
            "capabilities": list(self.capabilities.badges()),
            "context_length": self.capabilities.context_length,
            "quantization": self.quantization,
            "downloads": self.downloads,
        }


def _mapping(info: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(live, staging) providers that chat with a model, from a ModelInfo's provider mapping."""
    live: list[str] = []
    staging: list[str] = []
    for entry in getattr(info, "inference_provider_mapping", None) or []:
        if entry.task not in ("conversational", "text-generation", "image-text-to-text"):
            continue
        (live if entry.status == "live" else staging if entry.status == "staging" else []).append(entry.provider)
    return tuple(live), tuple(staging)


def _parameters(info: Any) -> int | None:
    st = getattr(info, "safetensors", None)
    if st is not None and getattr(st, "total", None):
        return int(st.total)
    gguf = getattr(info, "gguf", None)
    if isinstance(gguf, dict) and gguf.get("total"):
        return int(gguf["total"])
    return None


def result_of(info: Any, memory: Memory | None) -> ModelResult:
    """A Hub ModelInfo as a picker result."""
    params = _parameters(info)
    live, staging = _mapping(info)
    return ModelResult(
        id=info.id,
        parameters=params,
        gated=info.gated or False,
        providers=live,
        staging=staging,
        pipeline_tag=info.pipeline_tag,
        capabilities=capabilities(info.id, info.pipeline_tag, info.tags or ()),
        fit=Fit.of(params, memory) if params and memory else None,
        downloads=info.downloads,
    )


# ------------------------------------------------------------------ TTL cache

T = TypeVar("T")


class TTLCache:
    """A small thread-safe cache of answers for `ttl` seconds; keys never hold a token."""

    def __init__(self, ttl: float, size: int = 256) -> None:
        self.ttl, self.size = ttl, size
        self._items: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self.misses = 0

    def get(self, key: Any, make: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self.misses += 1
            if len(self._items) >= self.size:
                self._items.pop(next(iter(self._items)))
            self._items[key] = (time.monotonic(), value)
        return value

    def peek(self, key: Any) -> Any:
        """The answer kept for `key` while it is fresh, else None; never makes one."""
        with self._lock:
            hit = self._items.get(key)
            return hit[1] if hit is not None and time.monotonic() - hit[0] < self.ttl else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_FINGERPRINT = Fingerprinter()
SEARCHES = TTLCache(SEARCH_TTL_S)
MAPPINGS = TTLCache(MAPPING_TTL_S)


def _endpoint() -> str:
    """The Hub in use (HF_ENDPOINT): part of every cache key, so answers of one Hub never
    stand for another's."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def _api(token: str | None) -> Any:
    """An HfApi that calls with the token paying for this visitor (`resolve_token`'s order:
    their box, their sign-in, the server's): their gated and private models show."""
    from huggingface_hub import HfApi

    net.install()
    return HfApi(token=token or None)


def _hub_call(what: Callable[[], T]) -> T:
    """`what` with the Hub reachable and within HUB_DEADLINE_S, or HubUnreachableError."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    started = time.monotonic()
    if not net.hub_reachable():
        raise HubUnreachableError(
            "The Hugging Face Hub can't be reached from this machine, so the picker can't search it.",
            "Type a repo ID or a local folder in the Model box, or pick a local model below.",
        )
    try:
        with io_deadline(started + HUB_DEADLINE_S):
            return what()
    except HfHubHTTPError as exc:  # the Hub answered: no access, rate limited, ...
        status = exc.response.status_code if exc.response is not None else "an error"
        raise HubUnreachableError(
            f"The Hugging Face Hub refused the search ({status}).",
            "Check the HF token in the settings (or sign in), or type a repo ID in the Model box.",
        ) from None
    except (OSError, OfflineModeIsEnabled) as exc:  # DeadlineExceeded is a TimeoutError
        raise HubUnreachableError(
            f"The Hugging Face Hub did not answer the search ({type(exc).__name__}).",
            "Try again in a moment, or type a repo ID in the Model box.",
        ) from None


@dataclass(frozen=True)
class Query:
    """A search's text and filters, as the picker and `/search_models` take them."""

    query: str = ""
    task: str = "any"  # "chat", "vision" or "any"
    served: bool = False
    provider: str = ""
    min_params_b: float | None = None
    max_params_b: float | None = None
    fits: bool = False
    sort: Sort = Sort.TRENDING
    local: bool = True


def _num_parameters(q: Query) -> str | None:
    parts = []
    if q.min_params_b:
        parts.append(f"min:{q.min_params_b:g}B")
    if q.max_params_b:
        parts.append(f"max:{q.max_params_b:g}B")
    return ",".join(parts) or None


def hub_search(q: Query, token: str | None, memory: Memory | None) -> list[ModelResult]:
    """The Hub's models for `q`, cached SEARCH_TTL_S by the query and the token's fingerprint."""
    pipeline = {"chat": "text-generation", "vision": "image-text-to-text"}.get(q.task)
    provider = q.provider if q.provider and q.provider != AUTO else ("all" if q.served else None)
    key = (_endpoint(), q.query.strip(), pipeline, provider, _num_parameters(q), q.sort, _FINGERPRINT(token))

    def fetch() -> list[Any]:
        api = _api(token)
        return list(
            api.list_models(
                search=q.query.strip() or None,
                pipeline_tag=pipeline,
                inference_provider=provider,
                num_parameters=_num_parameters(q),
                sort=q.sort.hub_name,
                limit=SEARCH_LIMIT,
                expand=EXPAND,
            )
        )

    infos = SEARCHES.get(key, lambda: _hub_call(fetch))
    results = [result_of(info, memory) for info in infos]
    if pipeline is None:  # "any": what the chat can use
        results = [r for r in results if r.pipeline_tag in (*CHAT_TASKS, None)]
    return results


def _in_range(r: ModelResult, q: Query) -> bool:
    if q.min_params_b is None and q.max_params_b is None:
        return True
    if r.parameters is None:
        return False
    b = r.parameters / 1e9
    return (q.min_params_b is None or b >= q.min_params_b) and (q.max_params_b is None or b <= q.max_params_b)


def keep(r: ModelResult, q: Query) -> bool:
    """Whether a result passes the filters the Hub did not apply itself (and those of local ones)."""
    if q.served and not r.providers:
        return False
    if q.provider and q.provider != AUTO and q.provider not in r.providers:
        return False
    if q.task == "vision" and not r.capabilities.vision:
        return False
    if q.fits and not (r.fit and r.fit.four_bit):
        return False
    if r.local and q.query.strip() and q.query.strip().lower() not in r.id.lower():
        return False
    return _in_range(r, q)


@dataclass(frozen=True)
class SearchResult:
    results: tuple[ModelResult, ...]
    hub_error: HFChatError | None = None
    """Why the Hub part is missing (unreachable), shown above the local results."""


def search(q: Query, token: str | None, local_dirs: Sequence[str] = ()) -> SearchResult:
    """Local sources first (when `q.local`), then the Hub's results, both filtered by `q`."""
    memory = free_memory()
    found: list[ModelResult] = []
    if q.local and not (q.served or q.provider):
        found.extend(local_models(local_dirs, memory))
    error: HFChatError | None = None
    try:
        found.extend(hub_search(q, token, memory))
    except HubUnreachableError as exc:
        error = exc
    return SearchResult(tuple(r for r in found if keep(r, q)), error)


# ------------------------------------------------------------------ local sources

_GGUF_QUANT = re.compile(r"(?:^|[.\-_])((?:IQ|Q)\d(?:_[A-Z0-9]+)*|BF16|F16|F32)(?=[.\-_]|$)", re.I)


def gguf_quantization(path: Path) -> str | None:
    """The quantization a GGUF file's name states (…Q4_1.gguf, …-Q4_K_M.gguf, …-F16.gguf),
    as llama.cpp's converters and LM Studio name them; None when the name says none."""
    found = _GGUF_QUANT.findall(path.stem)
    return found[-1].upper() if found else None


GGUF_BITS = {
    "F32": 32.0,
    "F16": 16.0,
    "BF16": 16.0,
    "Q8_0": 8.5,
    "Q6_K": 6.56,
    "Q5_1": 6.0,
    "Q5_0": 5.5,
    "Q5_K": 5.5,
    "Q4_1": 5.0,
    "Q4_0": 4.5,
    "Q4_K": 4.5,
    "IQ4": 4.5,
    "Q3_K": 3.44,
    "IQ3": 3.44,
    "Q2_K": 2.63,
    "IQ2": 2.5,
}
"""Bits a weight in llama.cpp's formats (ggml-common.h): Q4_0 is 32 4-bit weights and one
fp16 scale per block (4.5 bits), Q4_1 adds an fp16 minimum (5.0); K-quant suffixes (_S, _M,
_L) share their base's figure."""


def gguf_parameters(path: Path) -> int | None:
    """A GGUF file's weight count, estimated from its size and its quantization's bits a weight
    (llama.cpp's block formats store a scale per 32 weights: Q4_x is about 4.5 bits)."""
    quant = gguf_quantization(path) or ""
    bits = next((b for prefix, b in GGUF_BITS.items() if quant.startswith(prefix)), None)
    return int(path.stat().st_size * 8 / bits) if bits else None


def _local_result(
    model_id: str, source: Source, path: str, params: int | None, memory: Memory, **extra: Any
) -> ModelResult:
    return ModelResult(
        id=model_id,
        source=source,
        parameters=params,
        path=path,
        capabilities=capabilities(model_id, None, ()),
        fit=Fit.of(params, memory) if params else None,
        **extra,
    )


def _folder_params(folder: Path) -> int | None:
    from hfchat.policy import folder_param_count

    return folder_param_count(folder)


def cached_models(memory: Memory) -> list[ModelResult]:
    """Models in the local Hugging Face cache (`scan_cache_dir`) that have a config.json."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir()
    except CacheNotFound:
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        snapshot = max(repo.revisions, key=lambda r: r.last_modified, default=None)
        if snapshot is None or not (snapshot.snapshot_path / "config.json").is_file():
            continue
        out.append(
            _local_result(repo.repo_id, Source.CACHE, repo.repo_id, _folder_params(snapshot.snapshot_path), memory)
        )
    return out


MAX_FOLDER_DEPTH = 3


def folder_models(roots: Sequence[str], memory: Memory) -> list[ModelResult]:
    """Model folders (with config.json) and .gguf files under the --local-dirs folders, at most
    MAX_FOLDER_DEPTH levels down (a folder with config.json is not looked into further)."""
    out: list[ModelResult] = []
    for root in roots:
        base = Path(root).expanduser()
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            here = Path(dirpath)
            depth = len(here.relative_to(base).parts)
            if "config.json" in filenames:
                out.append(_local_result(here.name, Source.FOLDER, str(here), _folder_params(here), memory))
                dirnames.clear()
                continue
            for name in sorted(filenames):
                if name.endswith(".gguf"):
                    path = here / name
                    out.append(
                        _local_result(
                            name,
                            Source.GGUF,
                            str(path),
                            gguf_parameters(path),
                            memory,
                            quantization=gguf_quantization(path) or "GGUF",
                        )
                    )
            if depth >= MAX_FOLDER_DEPTH:
                dirnames.clear()
            dirnames.sort()
    return out


def _loadable(result: ModelResult, roots: Sequence[str]) -> bool:
    """Whether a turn would load it: a link that leads out of --local-dirs is refused there
    (`config.check_local_dir`), so the picker does not offer it."""
    from hfchat.config import check_local_dir
    from hfchat.errors import ConfigError

    try:
        check_local_dir(result.path or "", roots)
    except ConfigError:
        return False
    return True


def local_models(roots: Sequence[str], memory: Memory) -> list[ModelResult]:
    """What the local backend can load from this machine: --local-dirs folders and GGUF files
    first, then the Hugging Face cache."""
    found = [r for r in folder_models(roots, memory) if _loadable(r, roots)]
    return [*found, *cached_models(memory)]


# ------------------------------------------------------------------ the provider check


def live_providers(repo_id: str, token: str | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """(live, staging) chat providers of `repo_id` from `model_info`, cached MAPPING_TTL_S; None
    when the Hub can't say (unreachable, not found, no access): the call then goes as before."""

    def fetch() -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        try:
            info = _hub_call(lambda: _api(token).model_info(repo_id, expand=["inferenceProviderMapping"]))
        except HubUnreachableError as exc:
            log.info("provider check skipped for %s: %s", repo_id, type(exc).__name__)
            return None
        return _mapping(info)

    return MAPPINGS.get((_endpoint(), repo_id, _FINGERPRINT(token)), fetch)


def check_provider(spec: Any, token: str | None) -> None:
    """Refuse a turn whose named provider does not serve the model live, before any request
    to the router, naming those that do. `auto` keeps huggingface_hub's own choice, and when
    the Hub can't tell (unreachable, no access), the call goes as it would without this check."""
    if spec.backend is not Backend.PROVIDERS or not spec.provider or spec.provider == AUTO:
        return
    mapping = live_providers(spec.model, token)
    if mapping is None:
        return
    live, staging = mapping
    if spec.provider in live:
        return
    if spec.provider in staging:
        said = f"{spec.provider} serves {spec.model} only in staging, not live."
    else:
        said = f"{spec.provider} does not serve {spec.model}."
    if live:
        hint = f"Pick one that serves it live: {', '.join(live)} (or auto)."
    else:
        hint = "No provider serves it live now: run it locally, or pick another model."
    raise ProviderNotLiveError(said, hint)
