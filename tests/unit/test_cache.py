"""The model cache: LRU, single-flight, thread-safe, and eviction frees memory."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable

import pytest

from hfchat.cache import ModelCache
from hfchat.config import Backend, ModelSpec


class Heavy:
    """Stands in for a built model: something whose lifetime we can watch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cycle = self  # real models hold reference cycles; only gc frees them


def run_concurrently(worker: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=worker) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def spec(model: str, fingerprint: str = "anonymous") -> ModelSpec:
    """A local model's key: what the cache's size counts."""
    return ModelSpec(backend=Backend.LOCAL, model=f"org/{model}", token_fingerprint=fingerprint)


def remote(model: str) -> ModelSpec:
    """A Providers client's key: no weights loaded."""
    return ModelSpec(backend=Backend.PROVIDERS, model=f"org/{model}", provider="auto")


def test_same_key_gives_same_instance() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(2)
    first, hit1 = cache.get(spec("a"), lambda: Heavy("a"))
    second, hit2 = cache.get(spec("a"), lambda: Heavy("other"))
    assert first is second
    assert (hit1, hit2) == (False, True)
    assert cache.stats.builds == 1


def test_lru_evicts_least_recently_used_and_frees_it() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(2)
    a, _ = cache.get(spec("a"), lambda: Heavy("a"))
    gone = weakref.ref(a)
    del a
    cache.get(spec("b"), lambda: Heavy("b"))
    cache.get(spec("a"), lambda: Heavy("a2"))  # touch a: b is now the oldest
    cache.get(spec("c"), lambda: Heavy("c"))
    assert spec("b") not in cache
    assert spec("a") in cache and spec("c") in cache
    assert gone() is not None  # a is still cached
    cache.get(spec("d"), lambda: Heavy("d"))
    cache.get(spec("e"), lambda: Heavy("e"))
    assert spec("a") not in cache
    assert gone() is None, "an evicted model must be garbage-collected, not kept alive"
    assert cache.stats.evictions == 3


def test_eviction_hook_runs() -> None:
    closed: list[str] = []
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(1, on_evict=lambda v: closed.append(v.name))
    cache.get(spec("a"), lambda: Heavy("a"))
    cache.get(spec("b"), lambda: Heavy("b"))
    assert closed == ["a"]
    cache.clear()
    assert closed == ["a", "b"]
    assert len(cache) == 0


def test_eight_threads_one_key_one_build() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(2)
    builds = 0
    lock = threading.Lock()
    start = threading.Barrier(8)

    def build() -> Heavy:
        nonlocal builds
        with lock:
            builds += 1
        time.sleep(0.3)  # a slow load, so every thread arrives while it runs
        return Heavy("a")

    results: list[Heavy] = []

    def worker() -> None:
        start.wait()
        value, _ = cache.get(spec("a"), build)
        with lock:
            results.append(value)

    run_concurrently(worker, 8)
    assert builds == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_failed_build_reaches_every_waiter_and_is_not_cached() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(2)
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def build() -> Heavy:
        time.sleep(0.2)
        raise OSError("no such model")

    def worker() -> None:
        start.wait()
        try:
            cache.get(spec("bad"), build)
        except OSError as exc:
            errors.append(exc)

    run_concurrently(worker, 4)
    assert len(errors) == 4
    assert spec("bad") not in cache
    value, hit = cache.get(spec("bad"), lambda: Heavy("fixed"))
    assert value.name == "fixed" and not hit


def test_different_tokens_give_different_entries() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(4)
    a, _ = cache.get(spec("m", "fp-a"), lambda: Heavy("a"))
    b, _ = cache.get(spec("m", "fp-b"), lambda: Heavy("b"))
    assert a is not b
    assert cache.stats.builds == 2


def test_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ModelCache(0)


def test_gc_collects_cycles_after_clear() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(1)
    value, _ = cache.get(spec("a"), lambda: Heavy("a"))
    ref = weakref.ref(value)
    del value
    cache.clear()
    gc.collect()
    assert ref() is None


def test_remote_clients_never_evict_a_loaded_model() -> None:
    """Issue 12 point 13: two Providers sends evicted the cached local model (cache size 2)."""
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(2)
    cache.get(spec("local"), lambda: Heavy("local"))
    for name in ("p1", "p2", "p3"):
        cache.get(remote(name), lambda: Heavy("client"))
    assert spec("local") in cache, "a client holds no weights: it must not push a loaded model out"
    assert cache.stats.evictions == 0
    cache.get(spec("other"), lambda: Heavy("other"))
    cache.get(spec("third"), lambda: Heavy("third"))
    assert spec("local") not in cache and cache.stats.evictions == 1, "loaded models still count up to the size"


def test_a_failed_build_never_evicts_a_working_model() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(1)
    cache.get(spec("working"), lambda: Heavy("working"))

    def fails() -> Heavy:
        raise OSError("no such model")

    with pytest.raises(OSError):
        cache.get(spec("broken"), fails)
    assert spec("working") in cache and spec("broken") not in cache and cache.stats.evictions == 0


def test_remote_clients_are_bounded_apart() -> None:
    cache: ModelCache[ModelSpec, Heavy] = ModelCache(1, max_clients=2)
    cache.get(spec("local"), lambda: Heavy("local"))
    for name in ("p1", "p2", "p3"):
        cache.get(remote(name), lambda: Heavy("client"))
    assert remote("p1") not in cache and remote("p2") in cache and remote("p3") in cache
    assert spec("local") in cache
