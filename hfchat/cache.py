"""A thread-safe, single-flight LRU cache of built chat models, keyed by ModelSpec.

Building a model means downloading and loading weights, so two visitors asking for the
same key at once must share one build, and an evicted model must really free its memory.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


@dataclass
class CacheStats:
    hits: int = 0
    builds: int = 0
    evictions: int = 0


def free_memory() -> None:
    """Return the memory of dropped models now: they hold reference cycles, and GPU caches."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


MAX_CLIENTS = 64
"""Entries that hold no loaded weights (remote clients) kept at most, apart from `max_size`."""


def loads_weights(key: object) -> bool:
    """Whether the value built for `key` holds loaded weights (`ModelSpec.loads_weights`);
    a key that doesn't say is counted."""
    return bool(getattr(key, "loads_weights", True))


class ModelCache(Generic[K, V]):
    """Least-recently-used and size-bounded; concurrent requests for one key build it once.

    `max_size` counts what is loaded: values whose key `counts` (by default, models with
    weights in memory; a remote client is a few objects and counts apart, up to
    `max_clients`). Only a build that succeeded enters, and eviction happens only after
    one did: a failed build, or any number of cheap clients, never evicts a loaded model."""

    def __init__(
        self,
        max_size: int = 2,
        on_evict: Callable[[V], None] | None = None,
        counts: Callable[[K], bool] = loads_weights,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        if max_size < 1:
            raise ValueError("cache size must be at least 1")
        self.max_size = max_size
        self.max_clients = max_clients
        self.stats = CacheStats()
        self._on_evict = on_evict
        self._counts = counts
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._flights: dict[K, _Flight] = {}
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def cached_keys(self) -> list[K]:
        with self._lock:
            return list(self._entries)

    def peek(self, key: K) -> V | None:
        """The cached value for `key`, or None: no build, no hit counted, its place in the
        LRU order unchanged (the context meter reads a built model's tokenizer with it)."""
        with self._lock:
            return self._entries.get(key)

    def get(self, key: K, build: Callable[[], V]) -> tuple[V, bool]:
        """The cached value for `key`, building it if needed; the bool says whether it was a hit."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.stats.hits += 1
                return self._entries[key], True
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            with self._lock:
                self.stats.hits += 1
            return flight.value, True
        try:
            value = build()
        except BaseException as exc:
            flight.error = exc
            with self._lock:
                del self._flights[key]
            flight.done.set()
            raise
        with self._lock:
            self.stats.builds += 1
            self._entries[key] = value
            evicted = self._over_limit()
            flight.value = value
            del self._flights[key]
        flight.done.set()
        self._drop(evicted)
        return value, False

    def _over_limit(self) -> list[V]:
        """Remove the least recently used entries past either bound (the lock is held)."""
        evicted: list[V] = []
        for counted, limit in ((True, self.max_size), (False, self.max_clients)):
            keys = [k for k in self._entries if self._counts(k) is counted]
            for old_key in keys[: max(len(keys) - limit, 0)]:
                evicted.append(self._entries.pop(old_key))
                self.stats.evictions += 1
                log.info("evicted a cached %s (%s)", "model" if counted else "client", type(old_key).__name__)
        return evicted

    def _drop(self, evicted: list[V]) -> None:
        """Run the hook, keep no reference (not even a loop variable), then collect."""
        if not evicted:
            return
        while evicted:
            old = evicted.pop()
            if self._on_evict is not None:
                self._on_evict(old)
            del old
        free_memory()

    def clear(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        self._drop(entries)
