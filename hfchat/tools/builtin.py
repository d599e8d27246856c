"""The app's own tools: `calculator`, `web_search` and `current_time`, each off unless the
operator enables it (`builtin_tools(names)` builds the enabled ones).

- **calculator** never runs Python. The expression is parsed (`ast.parse(mode="eval")`) and
  every node checked against a whitelist before anything evaluates it. Whole-number and
  fraction arithmetic is done exactly here, with a bound on the size of every intermediate
  number (so `2**10` is `1024` and `2**100` is exact, and `10**100000` is refused at once);
  anything with floats, pi, e or functions goes to numexpr in float64. Both run in a worker
  process that is killed after `CALCULATOR_TIME_LIMIT_S`: a thread could not be abandoned, since
  one big-integer operation in C holds the GIL until it finishes.
- **web_search** asks SerpAPI's JSON API when `SERPAPI_API_KEY` is set (the seed's search), else
  DuckDuckGo through `ddgs`. The key travels in the query string, as SerpAPI wants it, so every
  message that could show a URL or the server's words is cleaned of it first.
- **current_time** answers in ISO 8601 with the weekday and UTC offset, in any IANA zone.

Only `hfchat.tools.types` is imported at the top: the calculator's worker process imports this
module, and it should start in the time numexpr takes to import, not httpx's and the errors'.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import difflib
import functools
import json
import logging
import math
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from fractions import Fraction
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from hfchat.tokens import redact
from hfchat.tools.types import Tool, ToolError, ToolSpec

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

BUILTIN_NAMES = ("calculator", "web_search", "current_time")
"""The built-in tools, by the name the model sees and `--tools` takes."""

# ------------------------------------------------------------------ calculator

MAX_EXPRESSION_CHARS = 500
"""The longest expression the calculator takes: arithmetic a person would write, not a program."""
MAX_INT_DIGITS = 1000
"""The most digits any whole number (or a fraction's numerator or denominator) may have along
the way: exact and instant at this size; `10**100000` and `9**9**9**9` are refused by rule."""
MAX_NESTING = 60
"""The deepest the expression's tree may be (parentheses, unary minus, calls)."""
CALCULATOR_TIME_LIMIT_S = 2.0
"""How long one evaluation may run before its worker process is killed: the rules above keep
real arithmetic far below it; this is the net behind them."""
WORKER_START_TIMEOUT_S = 30.0
"""How long the worker may take to start (Python and numexpr, about 0.2 s; more on a loaded machine)."""
WORKER_MEMORY_BYTES = 1 << 30
"""The worker's address-space limit (Linux and macOS): about 100 MB are numpy's and numexpr's."""

FUNCTIONS: dict[str, int] = {
    "sqrt": 1,
    "sin": 1,
    "cos": 1,
    "tan": 1,
    "arcsin": 1,
    "arccos": 1,
    "arctan": 1,
    "arctan2": 2,
    "sinh": 1,
    "cosh": 1,
    "tanh": 1,
    "exp": 1,
    "log": 1,
    "log10": 1,
    "log1p": 1,
    "expm1": 1,
    "abs": 1,
}
"""The functions the calculator knows (numexpr's), with how many arguments each takes."""
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}

_OPERATORS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_COMPARISONS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)
_FUNCTION_LIST = ", ".join(f"{name}(y, x)" if arity == 2 else f"{name}(x)" for name, arity in FUNCTIONS.items())
ALLOWED = (
    "numbers, + - * / // % and ** (powers), unary minus, parentheses, one comparison of the whole "
    f"expression (< <= > >= == !=), the constants pi and e, and the functions {_FUNCTION_LIST} "
    "(log is the natural logarithm; angles are in radians)"
)
"""What the calculator takes, as its description and its refusals say it."""


class _Inexact(Exception):
    """The expression needs floats (a float literal, pi, a function, a fractional power)."""


def _refused(what: str) -> ToolError:
    return ToolError(f"Not allowed: {what}. The calculator evaluates arithmetic, not Python; it takes {ALLOWED}.")


def parse_expression(expression: str) -> ast.expr:
    """The expression's tree, every node of it checked against the whitelist; ToolError says
    what is not allowed and what is. Nothing is evaluated here."""
    text = expression.strip()
    if not text:
        raise ToolError(
            f'The expression is empty. Send one, e.g. {{"expression": "2**10"}}; the calculator takes {ALLOWED}.'
        )
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ToolError(
            f"The expression is {len(text)} characters long; the calculator takes at most {MAX_EXPRESSION_CHARS}. "
            "Split the calculation into steps."
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        hint = " Write powers as 2**10, not 2^10." if "^" in text else ""
        raise ToolError(
            f"The expression is not valid arithmetic ({exc.msg}).{hint} The calculator takes {ALLOWED}; "
            "write multiplication as *, and numbers without thousands separators."
        ) from None
    except (ValueError, RecursionError, MemoryError):  # a NUL byte; nesting deeper than the parser goes
        raise ToolError(
            f"The expression cannot be read (nested too deeply, or a character that is not arithmetic). "
            f"The calculator takes {ALLOWED}."
        ) from None
    body = tree.body
    if isinstance(body, ast.Compare):
        if len(body.ops) != 1 or not isinstance(body.ops[0], _COMPARISONS):
            raise _refused("a chained comparison, or one other than < <= > >= == != (compare two values once)")
        _check(body.left, 1)
        _check(body.comparators[0], 1)
    else:
        _check(body, 1)
    return body


def _check(node: ast.AST, depth: int) -> None:
    """Raise ToolError for the first node outside the whitelist."""
    if depth > MAX_NESTING:
        raise ToolError(f"The expression is nested more than {MAX_NESTING} levels deep. Simplify it.")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or value is None or value is Ellipsis:
            raise _refused(f"`{value!r}` (only numbers are values here)")
        if isinstance(value, (str, bytes)):
            raise _refused("text in quotes (strings)")
        if isinstance(value, complex):
            raise _refused("complex numbers (`j`)")
        return
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _OPERATORS:
            if isinstance(node.op, ast.BitXor):
                raise _refused("`^` (write powers as 2**10)")
            raise _refused(f"the operator `{_source(node)}` (bitwise and matrix operators)")
        _check(node.left, depth + 1)
        _check(node.right, depth + 1)
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            raise _refused("`not` and `~`")
        _check(node.operand, depth + 1)
        return
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return
        if node.id in FUNCTIONS:
            raise _refused(f"`{node.id}` on its own (it is a function: call it, as in {node.id}(2))")
        raise _refused(f"the name `{node.id}` (the only names are pi, e and the functions)")
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name):
            _check(func, depth + 1)  # an attribute, a subscript, a lambda: refused for what it is
            raise _refused("calling anything but a function by its name")
        if func.id not in FUNCTIONS:
            raise _refused(f"the function `{func.id}`")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise _refused(f"keyword or * arguments in {func.id}(...)")
        arity = FUNCTIONS[func.id]
        if len(node.args) != arity:
            raise ToolError(
                f"{func.id} takes {arity} argument{'s' if arity > 1 else ''}, not {len(node.args)}. "
                f"The functions are {_FUNCTION_LIST}."
            )
        for arg in node.args:
            _check(arg, depth + 1)
        return
    raise _refused(_kind(node))


def _kind(node: ast.AST) -> str:
    """What a refused node is, in the words of its refusal."""
    if isinstance(node, ast.Attribute):
        return f"attribute access (`.{node.attr}`)"
    if isinstance(node, ast.Subscript):
        return "subscripts (`[...]`)"
    if isinstance(node, ast.Lambda):
        return "lambda"
    if isinstance(node, ast.Tuple):
        return "several values separated by commas (write 1000, not 1,000; one expression at a time)"
    if isinstance(node, (ast.List, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return "lists, sets, dicts and comprehensions"
    if isinstance(node, ast.JoinedStr):
        return "text in quotes (strings)"
    if isinstance(node, ast.BoolOp):
        return "`and` and `or`"
    if isinstance(node, ast.Compare):
        return "a comparison inside the expression (only the whole expression may be one comparison)"
    if isinstance(node, ast.IfExp):
        return "`if ... else`"
    if isinstance(node, ast.NamedExpr):
        return "assignment (`:=`)"
    return f"this kind of expression ({type(node).__name__})"


def _source(node: ast.BinOp) -> str:
    ops = {ast.BitAnd: "&", ast.BitOr: "|", ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@"}
    return ops.get(type(node.op), type(node.op).__name__)


def evaluate(expression: str, *, max_digits: int = MAX_INT_DIGITS) -> str:
    """The expression's value as text, in this process (the worker calls it; the tool goes
    through the worker). Exact for whole numbers and fractions; float64 through numexpr once
    floats, pi, e or functions are involved. ToolError for whatever the model should read."""
    body = parse_expression(expression)
    try:
        return _exact_text(body, max_digits)
    except _Inexact:
        return _float_text(body)
    except ZeroDivisionError:
        raise ToolError("Division by zero (/, // or %, or 0 to a negative power): the result is undefined.") from None


def _exact_text(body: ast.expr, max_digits: int) -> str:
    if isinstance(body, ast.Compare):
        left, right = _exact(body.left, max_digits), _exact(body.comparators[0], max_digits)
        return str(_compare(body.ops[0], left, right))
    value = _exact(body, max_digits)
    if value.denominator == 1:
        return str(value.numerator)
    try:
        return repr(float(value))
    except OverflowError:
        raise ToolError("The result is a fraction too large to write as a float (over about 1.8e308).") from None


def _compare(op: ast.cmpop, left: Any, right: Any) -> bool:
    if isinstance(op, ast.Lt):
        return bool(left < right)
    if isinstance(op, ast.LtE):
        return bool(left <= right)
    if isinstance(op, ast.Gt):
        return bool(left > right)
    if isinstance(op, ast.GtE):
        return bool(left >= right)
    if isinstance(op, ast.Eq):
        return bool(left == right)
    return bool(left != right)


def _exact(node: ast.AST, max_digits: int) -> Fraction:
    """The exact value of a whole-number-and-fraction tree; _Inexact when it needs floats."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int):
            return _bounded(Fraction(node.value), max_digits)
        raise _Inexact
    if isinstance(node, ast.UnaryOp):
        operand = _exact(node.operand, max_digits)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs":
        return abs(_exact(node.args[0], max_digits))
    if not isinstance(node, ast.BinOp):
        raise _Inexact  # pi, e, the other functions
    left, right = _exact(node.left, max_digits), _exact(node.right, max_digits)
    op = node.op
    if isinstance(op, ast.Pow):
        return _power(left, right, max_digits)
    if isinstance(op, ast.Add):
        result = left + right
    elif isinstance(op, ast.Sub):
        result = left - right
    elif isinstance(op, ast.Mult):
        result = left * right
    elif isinstance(op, ast.Div):
        result = left / right
    elif isinstance(op, ast.FloorDiv):
        result = Fraction(left // right)
    else:
        result = left % right
    return _bounded(result, max_digits)


def _power(base: Fraction, exponent: Fraction, max_digits: int) -> Fraction:
    """base ** exponent, refused before it is computed when the result would be too long."""
    if exponent.denominator != 1:
        raise _Inexact  # 2**0.5 and the like: irrational in general
    n = exponent.numerator
    largest = max(abs(base.numerator), base.denominator)
    if largest > 1 and abs(n) * (largest.bit_length() - 1) > max_digits * math.log2(10):
        raise ToolError(
            f"The power {_short(base)}**{_short(exponent)} would have more than {max_digits} digits, "
            "more than the calculator computes exactly. Use a smaller exponent, or a float base "
            "(e.g. 10.0**300) for an approximate value."
        )
    return _bounded(base**n, max_digits)


def _short(value: Fraction) -> str:
    text = str(value)
    return text if len(text) <= 30 else f"{text[:12]}…({len(text)} digits)"


@functools.cache
def _digit_limit(max_digits: int) -> int:
    return 10**max_digits


def _bounded(value: Fraction, max_digits: int) -> Fraction:
    limit = _digit_limit(max_digits)
    if abs(value.numerator) >= limit or value.denominator >= limit:
        raise ToolError(
            f"A number along the way has more than {max_digits} digits, more than the calculator computes "
            "exactly. Use floats (e.g. 1.0e300 * 1.0e300) for an approximate value, or smaller numbers."
        )
    return value


class _Floats(ast.NodeTransformer):
    """Whole-number literals become floats for numexpr: its integers are 64-bit and wrap around."""

    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        if isinstance(node.value, int):
            try:
                return ast.copy_location(ast.Constant(float(node.value)), node)
            except OverflowError:
                raise ToolError("A number in the expression is too large for a float (over about 1.8e308).") from None
        return node


def _float_text(body: ast.expr) -> str:
    import warnings

    import numexpr

    text = ast.unparse(_Floats().visit(body))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's "invalid value" warnings: NaN and inf are answered below
            value = numexpr.evaluate(text, local_dict=dict(CONSTANTS), global_dict={}).item()
    except ZeroDivisionError:
        raise ToolError("Division by zero: the result is undefined.") from None
    except OverflowError:
        raise ToolError("The result is too large for a float (over about 1.8e308): overflow.") from None
    except (ValueError, TypeError, KeyError, SyntaxError) as exc:
        raise ToolError(f"numexpr could not evaluate it ({exc}). The calculator takes {ALLOWED}.") from None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, complex) or math.isnan(number := float(value)):  # (-8)**(1/3) comes back complex
        raise ToolError(
            "The result is not a real number: e.g. sqrt or log of a negative number, arcsin(2), "
            "or a negative number to a fractional power."
        )
    if math.isinf(number):
        raise ToolError(
            "The result is infinite: a division by zero, log(0), or a value too large for a float (over about 1.8e308)."
        )
    return repr(number)


# The worker: a separate Python process that evaluates, so one stuck evaluation is abandoned by
# killing it. It reads one JSON request a line and answers one JSON line.
_WORKER_LAUNCHER = """
import ctypes, signal, sys
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the app
except (OSError, AttributeError):
    pass  # not Linux: the worker still ends when its stdin closes
sys.path.insert(0, sys.argv[1])
from hfchat.tools.builtin import _worker_main
_worker_main()
"""
_SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.I)


def _worker_main() -> None:
    """The worker's loop: numexpr imported once, memory limited, one answer per request line."""
    out = sys.stdout
    try:
        import numexpr  # noqa: F401  (imported now, so a request pays nothing for it)
    except ImportError as exc:
        out.write(json.dumps({"fatal": f"numexpr cannot be imported ({exc}); install it (pip install numexpr)"}) + "\n")
        out.flush()
        return
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ImportError, ValueError, OSError):
        pass  # Windows, or a hard limit already lower: the time limit still applies
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = {"result": evaluate(request["expression"], max_digits=int(request["max_digits"]))}
        except ToolError as exc:
            answer = {"error": exc.message}
        except MemoryError:
            answer = {"error": "The calculation needed more memory than the calculator allows. Use smaller numbers."}
        except RecursionError:
            answer = {"error": f"The expression is nested too deeply. Simplify it; the calculator takes {ALLOWED}."}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class _Worker:
    """The one worker process of this app, started on the first calculation and again after
    one was killed; one evaluation at a time (they take microseconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.starts = 0
        """How many worker processes were started (tests read it: a killed one is replaced)."""

    def ask(self, request: dict[str, Any], time_limit_s: float, cancel: threading.Event) -> dict[str, Any]:
        while not self._lock.acquire(timeout=0.05):
            if cancel.is_set():
                raise ToolError("Stopped before the calculation ran.")
        try:
            proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start(cancel)
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            deadline = time.monotonic() + time_limit_s
            while True:
                try:
                    line = self._lines.get(timeout=0.05)
                except queue.Empty:
                    if cancel.is_set():
                        self._kill()
                        raise ToolError("Stopped: the calculation was abandoned.") from None
                    if time.monotonic() > deadline:
                        self._kill()
                        raise ToolError(
                            f"The calculation took longer than {time_limit_s:g} s and was stopped. "
                            "Simplify it: smaller exponents, fewer steps, or floats for an approximate value."
                        ) from None
                    continue
                if line is None:
                    self._kill()
                    raise ToolError(
                        "The calculation was stopped: it needed more memory than the calculator allows, "
                        "or its process failed. Use smaller numbers."
                    )
                return json.loads(line)
        finally:
            self._lock.release()

    def _start(self, cancel: threading.Event) -> subprocess.Popen[str]:
        self._kill()
        env = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}  # it needs no credentials
        env.update(NUMEXPR_MAX_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        root = str(Path(__file__).resolve().parents[2])
        proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_LAUNCHER, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.starts += 1
        self._proc = proc
        lines: queue.Queue[str | None] = queue.Queue()
        self._lines = lines
        assert proc.stdout is not None
        threading.Thread(target=_read_lines, args=(proc.stdout, lines), name="hfchat-calculator", daemon=True).start()
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while time.monotonic() < deadline and not cancel.is_set():
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                continue
            hello = json.loads(line) if line is not None else {"fatal": "its process ended while starting"}
            if hello.get("ready"):
                return proc
            self._kill()
            raise ToolError(f"The calculator is not available: {hello.get('fatal')}.")
        self._kill()
        raise ToolError("The calculator is not available: its process did not start in time. Try again.")

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        with self._lock:
            self._kill()


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    with contextlib.suppress(OSError, ValueError):
        for line in stream:
            lines.put(line)
    lines.put(None)


_WORKER = _Worker()
atexit.register(_WORKER.close)


class Calculator:
    """The `calculator` tool (see the module's docstring)."""

    def __init__(self, *, time_limit_s: float = CALCULATOR_TIME_LIMIT_S, max_digits: int = MAX_INT_DIGITS) -> None:
        self.time_limit_s = time_limit_s
        self.max_digits = max_digits

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name="calculator",
            description=(
                "Evaluate an arithmetic expression and return its value. Whole numbers and fractions are exact "
                f"(up to {MAX_INT_DIGITS} digits); anything with decimals, pi, e or functions is a 64-bit float. "
                f"It takes {ALLOWED}. It is not Python: no variables, strings or other names."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "description": f"The arithmetic expression, e.g. 2**10, (3 + 4) * 5 / 7, sqrt(2) * pi, "
                        f"log(100) / log(10), 17 % 5. At most {MAX_EXPRESSION_CHARS} characters.",
                    }
                },
                "required": ["expression"],
                "additionalProperties": False,
            },
        )

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        expression = arguments.get("expression")
        if not isinstance(expression, str):
            raise ToolError('The calculator needs {"expression": "<arithmetic>"}, e.g. {"expression": "2**10"}.')
        parse_expression(expression)  # refuse here, at once, without a round trip to the worker
        answer = _WORKER.ask({"expression": expression, "max_digits": self.max_digits}, self.time_limit_s, cancel)
        if "error" in answer:
            raise ToolError(str(answer["error"]))
        return str(answer["result"])


# ------------------------------------------------------------------ web search

DEFAULT_SERPAPI_URL = "https://serpapi.com"
DEFAULT_SEARCH_TIMEOUT_S = 15.0
"""How long one search may take in all (connect, wait and read), unless the caller says otherwise."""
DEFAULT_RESULTS = 5
MAX_RESULTS = 10
MAX_QUERY_CHARS = 400
MAX_TITLE_CHARS = 200
MAX_URL_CHARS = 500
MAX_SNIPPET_CHARS = 400
MAX_SEARCH_OUTPUT_CHARS = 6000
"""The most one search's text may be: ten results at their caps fit; the rest is said to be left out."""
MAX_SEARCH_BYTES = 4_000_000
"""The most a search service may send back (a SerpAPI page is typically 50-300 kB)."""
_NO_RESULTS = re.compile(r"hasn.t returned any results|no results", re.I)


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


def _one_line(text: Any, limit: int) -> str:
    words = " ".join(str(text or "").split())
    return words if len(words) <= limit else words[: limit - 1].rstrip() + "…"


def format_results(query: str, results: Iterable[SearchResult], source: str) -> str:
    """The numbered list the model reads: title, URL and snippet each, within the caps."""
    rows = [r for r in results if r.url.startswith(("http://", "https://"))]
    if not rows:
        return f"No results for {query!r} ({source})."
    lines = [f"Web search results for {query!r} ({source}):"]
    size = len(lines[0])
    for number, row in enumerate(rows, start=1):
        entry = [f"{number}. {_one_line(row.title, MAX_TITLE_CHARS) or '(no title)'}"]
        entry.append(f"   URL: {_one_line(row.url, MAX_URL_CHARS)}")
        if snippet := _one_line(row.snippet, MAX_SNIPPET_CHARS):
            entry.append(f"   {snippet}")
        block = "\n".join(entry)
        if size + len(block) + 1 > MAX_SEARCH_OUTPUT_CHARS:
            lines.append(
                f"({len(rows) - number + 1} more left out: the results are capped at "
                f"{MAX_SEARCH_OUTPUT_CHARS} characters.)"
            )
            break
        lines.append(block)
        size += len(block) + 1
    return "\n".join(lines)


class WebSearch:
    """The `web_search` tool: SerpAPI when it has a key, else DuckDuckGo (`ddgs`).

    SerpAPI is asked through its own httpx client built on `hfchat.net`'s GuardedTransport, not
    through `hfchat.net.session()`: that session is huggingface_hub's, whose request hook logs
    every URL at debug level (this one carries the key in its query) and refuses everything
    under HF_HUB_OFFLINE with the URL in its message. The transport still gives what matters:
    the thread's deadline on every connect and read (a server that trickles bytes cannot hold
    the call past `timeout_s`), the byte budget (a huge body is cut off, not read whole), and
    `hfchat.net.install()`'s scrubbing of httpx's log lines. No Authorization header is ever
    set, no Hugging Face token is anywhere near it, and redirects are not followed.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str = DEFAULT_SERPAPI_URL,
        timeout_s: float = DEFAULT_SEARCH_TIMEOUT_S,
    ) -> None:
        self._api_key = (api_key or "").strip() or None
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @property
    def source(self) -> str:
        """Which service answers: what the results and the errors name."""
        return "Google via SerpAPI" if self._api_key else "DuckDuckGo"

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name="web_search",
            description=(
                f"Search the web ({self.source}) and return the top results as a numbered list: title, URL and a "
                "short snippet each. Use it for recent events or facts you are not sure of, then answer from the "
                "snippets and cite the URLs. The snippets are all you get; pages are not opened."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "query": {
                        "type": "string",
                        "description": f"What to search for, as you would type it into a search engine "
                        f"(at most {MAX_QUERY_CHARS} characters).",
                    },
                    "max_results": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_RESULTS,
                        "description": f"How many results to return (default {DEFAULT_RESULTS}).",
                    },
                },
                "required": ["query"],
                "additionalProperties": False,
            },
        )

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolError('web_search needs {"query": "<what to search for>"}, e.g. {"query": "population of Lyon"}.')
        query = " ".join(redact(query).split())  # a token the model was shown never leaves in a query
        if len(query) > MAX_QUERY_CHARS:
            raise ToolError(f"The query is {len(query)} characters long; at most {MAX_QUERY_CHARS}. Shorten it.")
        count = arguments.get("max_results", DEFAULT_RESULTS)
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RESULTS:
            raise ToolError(f"max_results must be a whole number from 1 to {MAX_RESULTS}, not {count!r}.")
        if cancel.is_set():
            raise ToolError("Stopped before the search was sent.")
        results = self._serpapi(query, count) if self._api_key else _duckduckgo(query, count, self.timeout_s)
        text = format_results(query, results[:count], self.source)
        return text.replace(self._api_key, "***") if self._api_key else text

    # -- SerpAPI
    def _http(self) -> httpx.Client:
        import httpx

        from hfchat import net

        with self._client_lock:
            if self._client is None:
                net.install()  # httpx's log lines lose their query (the key) from now on
                self._client = httpx.Client(transport=net.GuardedTransport(net.EGRESS), follow_redirects=False)
            return self._client

    def _serpapi(self, query: str, count: int) -> list[SearchResult]:
        import httpx

        from hfchat.deadline import DeadlineExceeded, io_budget, io_deadline
        from hfchat.errors import HFChatError
        from hfchat.net import display

        where = display(self.base_url)
        params = {"engine": "google", "q": query, "num": str(count), "api_key": self._api_key or ""}
        timed_out = ToolError(
            f"The web search timed out: SerpAPI ({where}) did not answer within {self.timeout_s:g} s. "
            "Try again later, or answer without searching."
        )
        try:
            with io_deadline(time.monotonic() + self.timeout_s), io_budget(MAX_SEARCH_BYTES):
                response = self._http().get(f"{self.base_url}/search.json", params=params, timeout=self.timeout_s)
        except (httpx.TimeoutException, DeadlineExceeded):
            raise timed_out from None
        except HFChatError as exc:  # the byte budget (ReplyTooLargeError)
            raise ToolError(
                f"The web search failed: SerpAPI ({where}) sent more than {MAX_SEARCH_BYTES:,} bytes, "
                f"more than a search may return. {self._clean(exc.message)}"
            ) from None
        except httpx.HTTPError as exc:
            detail = self._clean(str(exc)) or type(exc).__name__
            raise ToolError(f"The web search failed: SerpAPI ({where}) cannot be reached ({detail}).") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 200 and isinstance(body, dict) and not message:
            rows = body.get("organic_results") or []
            return [
                SearchResult(str(r.get("title") or ""), str(r.get("link") or ""), str(r.get("snippet") or ""))
                for r in rows
                if isinstance(r, dict)
            ]
        said = f": {self._clean(str(message))}" if message else ""
        status = response.status_code
        if status == 200 and message and _NO_RESULTS.search(str(message)):
            return []
        if status in (401, 403):
            raise ToolError(
                f"The web search is not available: SerpAPI ({where}) refused the API key ({status}){said}. "
                "The operator must set a valid SERPAPI_API_KEY; answer without searching."
            )
        if status == 429:
            raise ToolError(
                f"The web search is rate limited: SerpAPI ({where}) answered 429{said}. "
                "Its searches for now are used up; answer without searching."
            )
        if status >= 500:
            raise ToolError(
                f"The web search failed: SerpAPI ({where}) had a server error ({status}){said}. Try again later."
            )
        if status == 200 and not isinstance(body, dict):
            raise ToolError(f"The web search failed: SerpAPI ({where}) answered with something that is not its JSON.")
        raise ToolError(f"The web search failed: SerpAPI ({where}) answered {status}{said}.")

    def _clean(self, text: str) -> str:
        """`text` without the SerpAPI key, URL queries or tokens, on one line, short."""
        from hfchat.net import scrub

        if self._api_key:
            text = text.replace(self._api_key, "***")
        return _one_line(redact(scrub(text), self._api_key), 300)


def _duckduckgo(query: str, count: int, timeout_s: float) -> list[SearchResult]:
    """DuckDuckGo (and the engines `ddgs` spreads a query over), no key needed. `ddgs` makes its
    own requests (primp), out of reach of `hfchat.net`; it cannot be tested offline."""
    try:
        from ddgs import DDGS
        from ddgs.exceptions import DDGSException, RatelimitException, TimeoutException
    except ImportError:
        raise ToolError(
            "The web search is not available: the ddgs package is not installed (pip install ddgs)."
        ) from None
    try:
        rows = DDGS(timeout=max(1, round(timeout_s))).text(query, max_results=count)
    except TimeoutException:
        raise ToolError(f"The web search timed out: DuckDuckGo did not answer within {timeout_s:g} s.") from None
    except RatelimitException:
        raise ToolError("The web search is rate limited by DuckDuckGo for now; answer without searching.") from None
    except DDGSException as exc:
        if _NO_RESULTS.search(str(exc)):
            return []
        raise ToolError(f"The web search failed: DuckDuckGo said {_one_line(exc, 300)}.") from None
    return [SearchResult(str(r.get("title") or ""), str(r.get("href") or ""), str(r.get("body") or "")) for r in rows]


# ------------------------------------------------------------------ current time


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@functools.cache
def _zone_names() -> dict[str, str]:
    """Every IANA zone this machine knows, by its lower-cased name."""
    return {name.lower(): name for name in available_timezones()}


def find_zone(name: str) -> tzinfo:
    """The IANA zone `name` (any case; UTC without a database); ToolError with a hint otherwise."""
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return timezone.utc
    if len(text) <= 64:
        canonical = _zone_names().get(text.lower(), text)
        try:
            return ZoneInfo(canonical)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    close = difflib.get_close_matches(text.lower()[:64], list(_zone_names()), n=3, cutoff=0.6)
    guess = f" Did you mean {', '.join(_zone_names()[c] for c in close)}?" if close else ""
    raise ToolError(
        f"Unknown time zone {_one_line(text, 64)!r}.{guess} Use an IANA name such as Europe/Paris, "
        "America/New_York, Asia/Tokyo or UTC (not an abbreviation like PST or CET, nor a city alone)."
    )


class CurrentTime:
    """The `current_time` tool: the clock is an argument, so tests fix it."""

    def __init__(self, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock

    @property
    def spec(self) -> ToolSpec:
        return ToolSpec(
            name="current_time",
            description=(
                "The current date and time, in ISO 8601 with the weekday and the UTC offset, e.g. "
                "'Tuesday 2026-12-01T22:12:23+01:00 (Europe/Paris, UTC+01:00, CET)'. Give an IANA time zone "
                "for local time there; without one it answers in UTC (the user's own zone is not known)."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "timezone": {
                        "type": "string",
                        "description": "An IANA time zone name, e.g. Europe/Paris, America/New_York, Asia/Tokyo "
                        "(default UTC).",
                    }
                },
                "additionalProperties": False,
            },
        )

    def run(self, arguments: Mapping[str, Any], cancel: threading.Event) -> str:
        name = arguments.get("timezone") or "UTC"
        if not isinstance(name, str):
            raise ToolError('timezone must be an IANA name as a string, e.g. {"timezone": "Europe/Paris"}.')
        zone = find_zone(name)
        now = self._clock()
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        local = now.astimezone(zone).replace(microsecond=0)
        offset = local.utcoffset() or timedelta(0)
        sign = "-" if offset < timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        label = getattr(zone, "key", None) or "UTC"
        abbreviation = local.tzname() or ""
        extra = f", {abbreviation}" if abbreviation and abbreviation not in (label, "UTC") else ""
        return f"{local:%A} {local.isoformat()} ({label}, UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}{extra})"


# ------------------------------------------------------------------ building them


def builtin_tools(
    names: Iterable[str],
    *,
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], datetime] = utc_now,
    timeout_s: float = DEFAULT_SEARCH_TIMEOUT_S,
) -> dict[str, Tool]:
    """The enabled built-in tools by name, in `BUILTIN_NAMES` order. `environ` (default
    os.environ) gives SERPAPI_API_KEY and HFCHAT_SERPAPI_URL; `timeout_s` bounds one search.
    ConfigError for a name that is not a built-in tool, or a malformed HFCHAT_SERPAPI_URL."""
    from hfchat.errors import ConfigError  # here: the calculator's worker imports this module, not the errors

    env = os.environ if environ is None else environ
    wanted = {name.strip() for name in names if name.strip()}
    unknown = sorted(wanted - set(BUILTIN_NAMES))
    if unknown:
        raise ConfigError(
            f"Unknown built-in tool{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.",
            f"Choose from {', '.join(BUILTIN_NAMES)}, comma-separated (e.g. --tools calculator,web_search).",
        )
    tools: dict[str, Tool] = {}
    if "calculator" in wanted:
        tools["calculator"] = Calculator()
    if "web_search" in wanted:
        base_url = env.get("HFCHAT_SERPAPI_URL", "").strip() or DEFAULT_SERPAPI_URL
        if not re.match(r"^https?://[^/\s?#]+", base_url):
            raise ConfigError(
                f"HFCHAT_SERPAPI_URL is not an http(s) URL: {base_url[:100]!r}.",
                "Set it to SerpAPI's base URL, e.g. https://serpapi.com (or unset it).",
            )
        tools["web_search"] = WebSearch(api_key=env.get("SERPAPI_API_KEY"), base_url=base_url, timeout_s=timeout_s)
    if "current_time" in wanted:
        tools["current_time"] = CurrentTime(clock)
    return tools


__all__ = [
    "BUILTIN_NAMES",
    "CALCULATOR_TIME_LIMIT_S",
    "MAX_EXPRESSION_CHARS",
    "MAX_INT_DIGITS",
    "Calculator",
    "CurrentTime",
    "SearchResult",
    "WebSearch",
    "builtin_tools",
    "evaluate",
    "find_zone",
    "format_results",
    "parse_expression",
]
