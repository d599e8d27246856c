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


class ModelCache(Generic[K, V]):
    """Least-recently-used, size-bounded; concurrent requests for one key build it once."""

    def __init__(self, max_size: int = 2, on_evict: Callable[[V], None] | None = None) -> None:
        if max_size < 1:
            raise ValueError("cache size must be at least 1")
        self.max_size = max_size
        self.stats = CacheStats()
        self._on_evict = on_evict
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
        evicted: list[V] = []
        with self._lock:
            self.stats.builds += 1
            self._entries[key] = value
            while len(self._entries) > self.max_size:
                old_key, old = self._entries.popitem(last=False)
                self.stats.evictions += 1
                evicted.append(old)
                log.info("evicted a cached model (%s)", type(old_key).__name__)
            flight.value = value
            del self._flights[key]
        flight.done.set()
        self._drop(evicted)
        return value, False

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
