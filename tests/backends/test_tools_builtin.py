"""The built-in tools: the calculator (exact answers, every escape refused, nothing hangs), the
web search against a loopback SerpAPI stand-in, the clock, and how the lead builds them.

The calculator runs in its real worker process; the search goes over a real socket to
`hfchat.testing.search_server.SearchServer`. DuckDuckGo (`ddgs`) needs the internet and is not
tested here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from hfchat.errors import ConfigError
from hfchat.testing.search_server import INVALID_KEY, SearchServer
from hfchat.tools import builtin
from hfchat.tools.builtin import (
    BUILTIN_NAMES,
    MAX_SEARCH_BYTES,
    Calculator,
    CurrentTime,
    WebSearch,
    builtin_tools,
)
from hfchat.tools.types import ToolError

KEY = "serp-sentinel-key-0123456789abcdef"
HF_SENTINEL = "hf_" + "sentinelNotARealToken" + "0123456789abcd"  # built, so no scan takes it for a leak


def never() -> threading.Event:
    return threading.Event()


def calc(expression: str) -> str:
    return Calculator().run({"expression": expression}, never())


def refusal(expression: str) -> str:
    with pytest.raises(ToolError) as caught:
        calc(expression)
    return caught.value.message


# ------------------------------------------------------------------ calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2**10", "1024"),
        ("2**100", "1267650600228229401496703205376"),
        ("123456789 * 987654321", "121932631112635269"),
        ("2**64 + 1", "18446744073709551617"),  # numexpr's int64 would wrap; exact here
        ("10/2", "5"),
        ("1/3", "0.3333333333333333"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("2**-2", "0.25"),
        ("-(3 - 5) * 4", "8"),
        ("abs(-7)", "7"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("sqrt(2)", "1.4142135623730951"),
        ("2**0.5", "1.4142135623730951"),
        ("sqrt(16)", "4.0"),
        ("pi", "3.141592653589793"),
        ("e**2", "7.3890560989306495"),
        ("log10(1000)", "3.0"),
        ("exp(log(2))", "2.0"),
        ("arctan2(1, 1) * 4", "3.141592653589793"),
        ("2**10 > 1000", "True"),
        ("3 == 4", "False"),
    ],
)
def test_calculator_answers_exactly(expression: str, expected: str) -> None:
    assert calc(expression) == expected


def test_big_integers_within_the_bound_are_exact() -> None:
    result = calc("3**2000")  # 955 digits: inside the 1000-digit bound
    assert result == str(3**2000)
    assert len(result) == 955


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("__import__('os')", "the function `__import__`"),
        ("__import__('os').system('true')", "attribute access (`.system`)"),
        ("().__class__", "attribute access (`.__class__`)"),
        ("[].__class__.__base__", "attribute access (`.__base__`)"),
        ("(1).__class__.__subclasses__()", "attribute access (`.__subclasses__`)"),
        ("[1, 2][0]", "subscripts"),
        ("x + 1", "the name `x`"),
        ("os", "the name `os`"),
        ("'abc'", "strings"),
        ("f'{1}'", "strings"),
        ("lambda: 1", "lambda"),
        ("(lambda: 1)()", "lambda"),
        ("[x for x in (1, 2)]", "comprehensions"),
        ("1 if 2 else 3", "`if ... else`"),
        ("(y := 2)", "assignment"),
        ("True + 1", "`True`"),
        ("2j", "complex numbers"),
        ("2 ^ 10", "write powers as 2**10"),
        ("1 << 1000", "bitwise"),
        ("1,000", "write 1000, not 1,000"),
        ("sqrt", "it is a function"),
        ("sqrt(x=4)", "keyword"),
        ("1 < 2 < 3", "chained comparison"),
        ("(1 < 2) + 1", "comparison inside"),
    ],
)
def test_escapes_and_non_arithmetic_are_refused(expression: str, named: str) -> None:
    message = refusal(expression)
    assert message.startswith("Not allowed:")
    assert named in message
    assert "not Python" in message
    assert "sqrt(x)" in message and "pi and e" in message  # what is allowed, too


def test_wrong_arity_and_syntax_say_how_to_fix() -> None:
    assert "arctan2 takes 2 arguments, not 1" in refusal("arctan2(1)")
    message = refusal("2 +* 3")
    assert "not valid arithmetic" in message and "write multiplication as *" in message
    assert "at most 500" in refusal("1+" * 300 + "1")
    assert "nested more than" in refusal("-" * 200 + "1")
    assert "empty" in refusal("   ")


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("9**9**9**9", "would have more than 1000 digits"),
        ("10**100000", "would have more than 1000 digits"),
        ("2**(2**64)", "would have more than 1000 digits"),
        ("(10**600) * (10**600)", "more than 1000 digits"),
        ("10.0**400", "too large for a float"),
        ("9.0**9**9", "too large for a float"),
    ],
)
def test_huge_numbers_are_refused_at_once(expression: str, said: str) -> None:
    started = time.monotonic()
    assert said in refusal(expression)
    assert time.monotonic() - started < 3.0


def test_a_stuck_evaluation_is_stopped_after_the_time_limit() -> None:
    """With the digit bound lifted (as a bug in the rules would), 9**9**9 runs for minutes in
    C holding the GIL: the worker is killed, the model is told, and the next call works."""
    runaway = Calculator(max_digits=10**9, time_limit_s=1.0)
    starts = builtin._WORKER.starts
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"took longer than 1 s and was stopped"):
        runaway.run({"expression": "9**9**9"}, never())
    assert time.monotonic() - started < 3.0
    assert calc("6 * 7") == "42"
    assert builtin._WORKER.starts == starts + 1  # a fresh worker replaced the killed one


def test_stop_abandons_a_running_calculation() -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(ToolError, match="Stopped"):
        Calculator(max_digits=10**9, time_limit_s=30).run({"expression": "9**9**9"}, cancel)
    assert time.monotonic() - started < 2.0
    assert calc("1 + 1") == "2"


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("1/0", "Division by zero"),
        ("5 // 0", "Division by zero"),
        ("5 % 0", "Division by zero"),
        ("0**-1", "Division by zero"),
        ("1.0/0", "Division by zero"),
        ("sqrt(-1)", "not a real number"),
        ("(-8)**(1/3)", "not a real number"),
        ("log(0)", "infinite"),
        ("1e308 * 10", "infinite"),
    ],
)
def test_undefined_results_are_tool_errors(expression: str, said: str) -> None:
    assert said in refusal(expression)


def test_arguments_must_be_an_expression_string() -> None:
    with pytest.raises(ToolError, match=r'needs \{"expression"'):
        Calculator().run({"expr": "1+1"}, never())
    with pytest.raises(ToolError, match=r'needs \{"expression"'):
        Calculator().run({"expression": 12}, never())


# ------------------------------------------------------------------ web search


@pytest.fixture
def serp() -> Iterator[SearchServer]:
    with SearchServer() as server:
        yield server


def search(server: SearchServer, timeout_s: float = 5.0, **arguments: object) -> str:
    tool = WebSearch(api_key=KEY, base_url=server.url, timeout_s=timeout_s)
    return tool.run(arguments, never())


def failure(server: SearchServer, timeout_s: float = 5.0, **arguments: object) -> str:
    with pytest.raises(ToolError) as caught:
        search(server, timeout_s, **arguments)
    message = caught.value.message
    assert KEY not in message and "api_key" not in message
    return message


def test_search_sends_the_query_and_formats_the_results(serp: SearchServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_SENTINEL)
    text = search(serp, query="capital of France", max_results=3)
    assert text.splitlines() == [
        "Web search results for 'capital of France' (Google via SerpAPI):",
        "1. Result 1 for capital of France",
        "   URL: https://example.org/capital-of-france/1",
        "   Snippet 1 about capital of France.",
        "2. Result 2 for capital of France",
        "   URL: https://example.org/capital-of-france/2",
        "   Snippet 2 about capital of France.",
        "3. Result 3 for capital of France",
        "   URL: https://example.org/capital-of-france/3",
        "   Snippet 3 about capital of France.",
    ]
    (request,) = serp.searches
    assert request.query["q"] == ["capital of France"]
    assert request.query["engine"] == ["google"]
    assert request.query["num"] == ["3"]
    assert request.query["api_key"] == [KEY]
    assert "authorization" not in request.headers
    assert HF_SENTINEL not in repr(request)


def test_a_token_in_the_query_never_leaves(serp: SearchServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", HF_SENTINEL)
    search(serp, query=f"what is {HF_SENTINEL}")
    assert HF_SENTINEL not in repr(serp.searches)
    assert serp.param("q") == "what is hf_***"


def test_results_are_capped_in_count_and_length(serp: SearchServer) -> None:
    assert search(serp, query="many").count("   URL: ") == 5  # the default
    serp.rows = [
        {"title": "T" * 1000, "link": f"https://example.org/{n}", "snippet": "word " * 2000} for n in range(50)
    ]
    text = search(serp, query="long", max_results=10)
    assert len(text) <= 6000
    lines = text.splitlines()
    assert len(lines[1]) == len("1. ") + 200 and lines[1].endswith("T…")  # titles: 200 characters
    assert len(lines[3]) == len("   ") + 400 and lines[3].endswith("…")  # snippets: 400
    assert text.count("   URL: ") == 9  # ten at their caps would pass 6000 characters
    assert lines[-1] == "(1 more left out: the results are capped at 6000 characters.)"
    serp.rows = [{"title": "Script", "link": "javascript:alert(1)", "snippet": "x"}]
    assert search(serp, query="js") == "No results for 'js' (Google via SerpAPI)."


@pytest.mark.parametrize("max_results", [0, 11, -1, "five", True, 2.5])
def test_max_results_must_be_1_to_10(serp: SearchServer, max_results: object) -> None:
    assert "from 1 to 10" in failure(serp, query="q", max_results=max_results)
    assert serp.searches == []


def test_search_needs_a_query(serp: SearchServer) -> None:
    assert 'needs {"query"' in failure(serp, query="  ")
    assert "at most 400" in failure(serp, query="q" * 401)


def test_a_refused_key_is_a_tool_error_without_the_key(serp: SearchServer) -> None:
    serp.answer_error(401, INVALID_KEY + f" (you sent {KEY})")
    message = failure(serp, query="q")
    assert "refused the API key (401)" in message and "Invalid API key" in message
    assert "SERPAPI_API_KEY" in message


def test_server_errors_and_rate_limits_are_tool_errors(serp: SearchServer) -> None:
    serp.answer_error(500, "Internal failure")
    assert "server error (500): Internal failure" in failure(serp, query="q")
    serp.answer_error(429, "Your account has run out of searches.")
    assert "rate limited" in failure(serp, query="q")
    serp.fail_next(502, "<html>Bad gateway</html>")
    assert "server error (502)" in failure(serp, query="q")


def test_no_results_is_an_answer_not_an_error(serp: SearchServer) -> None:
    serp.answer_error(200, "Google hasn't returned any results for this query.")
    assert search(serp, query="zxqv") == "No results for 'zxqv' (Google via SerpAPI)."


def test_a_slow_server_times_out_and_says_what(serp: SearchServer) -> None:
    serp.delay(5.0)
    started = time.monotonic()
    message = failure(serp, timeout_s=0.5, query="q")
    assert time.monotonic() - started < 3.0
    assert "timed out: SerpAPI (http://127.0.0.1:" in message and "within 0.5 s" in message


def test_a_trickling_server_is_stopped_at_the_deadline(serp: SearchServer) -> None:
    """Each piece comes within the read timeout; only the deadline on the whole call stops it."""
    serp.answer_trickle(0.2, pieces=50)  # 10 s in all
    started = time.monotonic()
    assert "timed out" in failure(serp, timeout_s=1.0, query="q")
    assert time.monotonic() - started < 3.0


def test_a_huge_body_is_cut_off(serp: SearchServer) -> None:
    serp.answer_huge(MAX_SEARCH_BYTES + 1_000_000)
    assert f"more than {MAX_SEARCH_BYTES:,} bytes" in failure(serp, query="q")


def test_an_unreachable_server_is_a_tool_error() -> None:
    with SearchServer() as server:
        url = server.url
    tool = WebSearch(api_key=KEY, base_url=url, timeout_s=2.0)
    with pytest.raises(ToolError, match="cannot be reached") as caught:
        tool.run({"query": "q"}, never())
    assert KEY not in caught.value.message


def test_the_key_is_not_in_the_logs(serp: SearchServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    search(serp, query="logged?")
    serp.answer_error(500, f"echoing {KEY}")
    failure(serp, query="logged?")
    assert "HTTP Request" in caplog.text  # httpx logged the requests, scrubbed
    assert KEY not in caplog.text


# ------------------------------------------------------------------ current time

FIXED = datetime(2026, 12, 1, 21, 12, 23, 456789, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        (None, "Tuesday 2026-12-01T21:12:23+00:00 (UTC, UTC+00:00)"),
        ("Europe/Paris", "Tuesday 2026-12-01T22:12:23+01:00 (Europe/Paris, UTC+01:00, CET)"),
        ("asia/kolkata", "Wednesday 2026-12-02T02:42:23+05:30 (Asia/Kolkata, UTC+05:30, IST)"),
        ("America/St_Johns", "Tuesday 2026-12-01T17:42:23-03:30 (America/St_Johns, UTC-03:30, NST)"),
    ],
)
def test_current_time_in_a_zone(zone: str | None, expected: str) -> None:
    arguments = {} if zone is None else {"timezone": zone}
    assert CurrentTime(lambda: FIXED).run(arguments, never()) == expected


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Pariss", "../../etc/passwd", "PST", "x" * 500])
def test_an_unknown_zone_is_a_tool_error_with_a_hint(zone: str) -> None:
    with pytest.raises(ToolError) as caught:
        CurrentTime(lambda: FIXED).run({"timezone": zone}, never())
    message = caught.value.message
    assert message.startswith("Unknown time zone") and "Europe/Paris" in message and len(message) < 400


def test_a_near_miss_zone_gets_a_suggestion() -> None:
    with pytest.raises(ToolError, match=r"Did you mean Europe/Paris"):
        CurrentTime(lambda: FIXED).run({"timezone": "Europe/Pariss"}, never())


# ------------------------------------------------------------------ building them


def test_builtin_tools_builds_the_named_ones(serp: SearchServer) -> None:
    tools = builtin_tools(
        ["current_time", "calculator", "web_search"],
        environ={"SERPAPI_API_KEY": KEY, "HFCHAT_SERPAPI_URL": serp.url},
        clock=lambda: FIXED,
        timeout_s=3.0,
    )
    assert list(tools) == list(BUILTIN_NAMES)
    for name, tool in tools.items():
        spec = tool.spec
        assert spec.name == name and spec.server == "built-in"
        assert spec.parameters["type"] == "object" and spec.description
    assert tools["calculator"].run({"expression": "2**10"}, never()) == "1024"
    assert "Result 1 for q" in tools["web_search"].run({"query": "q"}, never())
    assert tools["current_time"].run({}, never()).startswith("Tuesday 2026-12-01T21:12:23")
    assert "SerpAPI" in tools["web_search"].spec.description
    keyless = builtin_tools(["web_search"], environ={})["web_search"]
    assert "DuckDuckGo" in keyless.spec.description
    assert builtin_tools([], environ={}) == {}


def test_an_unknown_tool_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        builtin_tools(["calculator", "shell"], environ={})
    assert "shell" in caught.value.message
    assert "calculator, web_search, current_time" in caught.value.hint


def test_a_malformed_search_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="HFCHAT_SERPAPI_URL"):
        builtin_tools(["web_search"], environ={"HFCHAT_SERPAPI_URL": "serpapi.com"})
