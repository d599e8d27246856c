"""The server log: one line per event, hfchat's own at INFO, other libraries' only when they warn.

`setup_logging` is what `python app.py` runs first. What it fixes, and why:

- **Each warning once.** huggingface_hub gives its logger a handler of its own and lets
  records propagate to the root's too, so every warning printed twice (once bare, once
  formatted). Its handler is removed: records go through the root handler alone, which also
  removes credentials from URLs (`net.SCRUB_URLS`), as the bare one did not. Python
  `warnings` go through logging too (`logging.captureWarnings`), shown once per place.
- **Third-party noise below INFO.** httpx logs every request at INFO (Gradio's own start-up
  checks among them); libraries log at WARNING and above, hfchat at INFO.
- **bitsandbytes' "pip install kernels".** On a CPU with AVX512-BF16, bitsandbytes tries the
  optional `kernels` package for a faster 4-bit matmul and warns when it is missing. 4-bit
  loading works without it, so the warning becomes one INFO line that says so.
"""

from __future__ import annotations

import logging

from hfchat import net

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

LIBRARIES = (
    "huggingface_hub",
    "transformers",
    "httpx",
    "httpcore",
    "gradio",
    "gradio_client",
    "urllib3",
    "langchain",
    "langchain_core",
    "langchain_huggingface",
    "accelerate",
    "bitsandbytes",
    "uvicorn",
    "asyncio",
    "PIL",
    "matplotlib",
    "multipart",
)
"""Loggers of the libraries hfchat runs on: WARNING and above reach the log."""

OWN_HANDLERS = ("huggingface_hub",)
"""Libraries that attach a handler of their own and still propagate to the root's."""

KERNELS_LOGGER = "bitsandbytes.backends.cpu.ops"
KERNELS_EXPLAINED = (
    "bitsandbytes: the optional `kernels` package (a faster 4-bit matmul for CPUs with AVX512-BF16) is not "
    "installed; 4-bit models run on bitsandbytes' own CPU code."
)


class _KernelsHint(logging.Filter):
    """bitsandbytes' warning about the missing `kernels` package, as one INFO line that
    says 4-bit works without it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "pip install kernels" not in str(record.msg):
            return True
        record.msg, record.args = KERNELS_EXPLAINED, ()
        record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True


KERNELS_HINT = _KernelsHint()


def setup_logging(level: int = logging.INFO) -> None:
    """The server's log as described in this module's docstring; safe to call twice."""
    import huggingface_hub.utils.logging  # noqa: F401 - configures its handler now, so it can be removed

    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:  # no URL's user:password or query in any log line
        if net.SCRUB_URLS not in handler.filters:
            handler.addFilter(net.SCRUB_URLS)
    for name in OWN_HANDLERS:
        library = logging.getLogger(name)
        for handler in list(library.handlers):
            library.removeHandler(handler)
        library.propagate = True
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    kernels = logging.getLogger(KERNELS_LOGGER)
    if KERNELS_HINT not in kernels.filters:
        kernels.addFilter(KERNELS_HINT)
    logging.captureWarnings(True)


def serving_line(local_url: str, share_url: str | None) -> str:
    """Where the app answers, in this app's words: Gradio's own start-up hint says
    "set `share=True` in `launch()`", which is `--share` here."""
    if share_url:
        return f"hfchat is running on {local_url} and on the public link {share_url}"
    return f"hfchat is running on {local_url} (start it with --share for a public link)"
