"""How far a model load has got, as the libraries report it, and the ticker that shows it.

A local model's first use downloads its files (huggingface_hub) and loads its weights
(transformers); both report progress through tqdm bars. `tracking(key)` collects them for
one load through their public hooks:

- downloads: `from_pretrained(..., tqdm_class=...)` hands a tqdm class to huggingface_hub's
  `hf_hub_download` / `snapshot_download` (`LoadProgress.download_bar`);
- weights: `transformers.utils.logging.set_tqdm_hook` sees every bar transformers opens,
  such as "Loading weights" (installed for the duration of the load; local loads run one at
  a time, under `hfchat.backends.local.LOAD_LOCK`).

`ChatService.respond` runs the load in a thread and, while it waits, shows `progress_of(key)`
at least once a second (`ticking`). Gradio-free; tqdm comes with huggingface_hub.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Generator, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from tqdm.auto import tqdm as auto_tqdm

T = TypeVar("T")
V = TypeVar("V")

TICK_S = 0.5
"""How often the waiting turn looks at the load (it shows a change at once, so >= 1 Hz)."""

WAITING_STAGE = "waiting for another model to load"


@dataclass
class LoadProgress:
    """One load's latest reported stage, and how far it is (None when no total is known)."""

    stage: str = ""
    done: float = 0.0
    total: float | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def report(self, stage: str, done: float, total: float | None) -> None:
        """A bar moved: it becomes the stage shown (the latest bar to move wins)."""
        self.stage, self.done, self.total = stage, done, total

    def download_bar(self) -> type[auto_tqdm]:
        """A tqdm class for huggingface_hub's downloads that reports here (bytes of the file,
        or of the whole snapshot)."""
        from huggingface_hub.utils import are_progress_bars_disabled

        return _bar_class(self, "downloading", lambda: not are_progress_bars_disabled())


_ACTIVE: dict[Hashable, LoadProgress] = {}
_ACTIVE_LOCK = threading.Lock()


def progress_of(key: Hashable) -> LoadProgress | None:
    """The progress of the load of `key` now running, or None when none runs (yet)."""
    with _ACTIVE_LOCK:
        return _ACTIVE.get(key)


@contextmanager
def tracking(key: Hashable, lock: threading.Lock) -> Iterator[LoadProgress]:
    """Hold `lock` (the process's one-load-at-a-time lock) and collect the progress of the load
    of `key` for the duration of the block. While another load holds the lock, the progress
    says so. The transformers hook is process-wide, which the lock makes safe."""
    from transformers.utils import logging as hf_logging

    progress = LoadProgress()
    with _ACTIVE_LOCK:
        _ACTIVE[key] = progress
    try:
        if lock.locked():
            progress.report(WAITING_STAGE, 0, None)
        with lock:
            progress.report("", 0, None)
            bar = _bar_class(progress, "", hf_logging.is_progress_bar_enabled)

            def hook(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                # `factory` is tqdm, or transformers' no-op when its bars are off: ours counts either way.
                return bar(*args, **kwargs)

            previous = hf_logging.set_tqdm_hook(hook)
            try:
                yield progress
            finally:
                hf_logging.set_tqdm_hook(previous)
    finally:
        with _ACTIVE_LOCK:
            if _ACTIVE.get(key) is progress:
                del _ACTIVE[key]


class _Null:
    """A file that drops what is written (a counting bar that draws nowhere)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _bar_class(progress: LoadProgress, default_stage: str, drawn: Callable[[], bool]) -> type[auto_tqdm]:
    """A tqdm subclass whose every update reports to `progress`, under its description (a
    download's file name) or `default_stage`. It always counts; it draws in the server's log
    only while `drawn()` (the library's own bars are on), as the bar it replaces would."""

    class ReportingBar(auto_tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = False
            if not drawn():
                kwargs["file"] = _Null()
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            desc = (self.desc or "").strip().rstrip(":").strip().rsplit("/", 1)[-1]  # a download's URL: its file
            stage = f"{default_stage} {desc}".strip() if default_stage else desc.lower() or "loading"
            total = self.total
            progress.report(stage, float(self.n), float(total) if total else None)
            return shown

    return ReportingBar


def ticking(
    work: Callable[[], T],
    view: Callable[[float], V],
    cancel: threading.Event,
    clock: Callable[[], float] = time.monotonic,
    wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
    tick_s: float = TICK_S,
) -> Generator[V, None, T | None]:
    """Run `work()` in a thread; until it returns, yield `view(seconds since the start)` every
    `tick_s` when it differs from the last one shown (so once a second for a seconds count);
    then return what `work` returned, or raise what it raised.

    Closing the generator (Stop) or setting `cancel` ends the wait at the next tick (then it
    returns None): the work runs on in the background (a load then lands in the cache, for the
    next turn). `clock` and `wait` are for tests (`hfchat.testing.FakeClock`)."""
    started = clock()
    done = threading.Event()
    result: dict[str, Any] = {}
    context = contextvars.copy_context()

    def run() -> None:
        try:
            result["value"] = context.run(work)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting turn, which re-raises it
            result["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name="hfchat-load", daemon=True).start()
    last: V | None = None
    while not wait(done, tick_s):
        if cancel.is_set():
            return None
        shown = view(clock() - started)
        if shown != last:
            last = shown
            yield shown
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]
