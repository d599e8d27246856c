"""MCP servers' tools through `hfchat.tools.mcp`, against a real FastMCP server
(`hfchat.testing.mcp_server`) over streamable HTTP on loopback and over stdio."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import types

from hfchat.errors import ConfigError, ConnectionFailedError, EndpointNotAllowedError
from hfchat.policy import DeploymentPolicy
from hfchat.testing.mcp_server import ROOT, MCPServerProcess, stdio_command
from hfchat.testing.servers import free_port, redirect_hub
from hfchat.tools.mcp import (
    MAX_DESCRIPTION_CHARS,
    MAX_SCHEMA_CHARS,
    MAX_TOOLS_PER_SERVER,
    MCPClient,
    MCPServer,
    MCPTool,
    check_visitor_server,
    http_server,
    is_hf_mcp,
    parse_servers,
    result_text,
    stdio_server,
)
from hfchat.tools.types import MAX_RESULT_CHARS, ToolError

pytestmark = pytest.mark.timeout(180)

SENTINEL = "hf_mcp-sentinel-not-a-real-token"
"""The caller's token in these tests: hf_-prefixed like a real one, not token-shaped."""
ENV_SENTINEL = "hf_mcp-env-sentinel-not-a-real-token"
"""What HF_TOKEN holds in these tests: no MCP server may be sent it either."""


@pytest.fixture(scope="module")
def http_mcp() -> Iterator[MCPServerProcess]:
    with MCPServerProcess() as server:
        yield server


def stdio_spec(record: Path, prefix: str = "") -> MCPServer:
    return stdio_server(prefix + shlex.join([*stdio_command(), "--record", str(record)]), cwd=str(ROOT))


@pytest.fixture(params=["http", "stdio"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MCPClient]:
    """A client of the test server, over each transport, given the caller's sentinel token."""
    if request.param == "http":
        server = http_server(request.getfixturevalue("http_mcp").url)
    else:
        server = stdio_spec(tmp_path / "stdio.jsonl")
    with MCPClient(server, hf_token=SENTINEL, timeout_s=60) as c:
        yield c


def tool(client: MCPClient, name: str) -> MCPTool:
    return next(t for t in client.tools() if t.spec.name == name)


def stdio_record(path: Path) -> dict[str, object]:
    return json.loads(path.read_text().splitlines()[0])


# ------------------------------------------------------------------ listing and calling


def test_tools_are_listed_with_description_and_schema(client: MCPClient) -> None:
    specs = {t.spec.name: t.spec for t in client.tools()}
    assert set(specs) == {"add", "slow", "fail", "whoami", "picture"}
    add = specs["add"]
    assert add.description == "Add two integers and return their sum."
    assert add.parameters["type"] == "object"
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert add.parameters["required"] == ["a", "b"]
    assert add.server == client.label
    assert add.openai()["function"]["name"] == "add"


def test_a_call_sends_the_arguments_and_returns_the_text(client: MCPClient) -> None:
    cancel = threading.Event()
    assert tool(client, "add").run({"a": 2, "b": 40}, cancel) == "42"
    assert tool(client, "whoami").run({}, cancel).startswith(f"hfchat-test-mcp over {client.server.kind};")
    assert tool(client, "picture").run({}, cancel) == "a caption\n[image: image/png, 70 bytes]"


def test_a_failing_tool_raises_tool_error_naming_the_server(client: MCPClient) -> None:
    with pytest.raises(ToolError) as caught:
        tool(client, "fail").run({"message": "the disk is full"}, threading.Event())
    assert "the disk is full" in caught.value.message
    assert client.label in caught.value.message


def test_stop_ends_a_slow_call_within_two_seconds(client: MCPClient) -> None:
    slow = tool(client, "slow")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    began = time.monotonic()
    with pytest.raises(ToolError, match="stopped"):
        slow.run({"seconds": 30}, cancel)
    assert time.monotonic() - began < 2.0
    assert tool(client, "add").run({"a": 1, "b": 1}, threading.Event()) == "2"  # the session lives on


def test_calls_from_several_threads_share_one_session(client: MCPClient) -> None:
    add = tool(client, "add")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: add.run({"a": n, "b": 1000}, threading.Event()), range(16)))
    assert results == [str(n + 1000) for n in range(16)]


def test_a_call_past_its_timeout_is_a_tool_error(http_mcp: MCPServerProcess) -> None:
    with MCPClient(http_server(http_mcp.url), timeout_s=1) as client:
        began = time.monotonic()
        with pytest.raises(ToolError, match="timed out after 1 s"):
            tool(client, "slow").run({"seconds": 10}, threading.Event())
        assert time.monotonic() - began < 4.0


# ------------------------------------------------------------------ lifecycle


def test_close_ends_the_stdio_process_and_the_loop_thread(tmp_path: Path) -> None:
    record = tmp_path / "stdio.jsonl"
    client = MCPClient(stdio_spec(record))
    slow = tool(client, "slow")
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(ToolError):
        slow.run({"seconds": 30}, cancel)  # still sleeping in the server when we close
    pid = stdio_record(record)["pid"]
    assert isinstance(pid, int)
    os.kill(pid, 0)  # alive now
    client.close()
    with pytest.raises(ProcessLookupError):  # gone and reaped: a zombie still answers kill(pid, 0)
        os.kill(pid, 0)
    assert not [t for t in threading.enumerate() if t.name.startswith("hfchat-mcp-")]
    with pytest.raises(ToolError, match="closed"):
        slow.run({"seconds": 0}, threading.Event())


def test_a_dead_server_is_reported_at_once_and_reconnected_when_back() -> None:
    port = free_port()
    server = MCPServerProcess(port=port).start()
    try:
        with MCPClient(http_server(server.url)) as client:
            add = tool(client, "add")
            assert add.run({"a": 1, "b": 2}, threading.Event()) == "3"
            server.stop()
            began = time.monotonic()
            with pytest.raises(ToolError, match=f"127.0.0.1:{port}"):
                add.run({"a": 1, "b": 2}, threading.Event())
            assert time.monotonic() - began < 5.0
            server.start()
            assert add.run({"a": 2, "b": 2}, threading.Event()) == "4"
    finally:
        server.stop()


def test_an_unreachable_server_says_so() -> None:
    client = MCPClient(http_server(f"http://127.0.0.1:{free_port()}/mcp"), connect_timeout_s=5)
    with client, pytest.raises(ConnectionFailedError) as caught:
        client.tools()
    assert "Could not connect to the MCP server 127.0.0.1" in caught.value.message
    assert "/mcp" in caught.value.hint


# ------------------------------------------------------------------ the Hugging Face token


def test_no_other_server_gets_the_hf_token(http_mcp: MCPServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_SENTINEL)
    monkeypatch.setenv("HUGGINGFACEHUB_API_TOKEN", ENV_SENTINEL)
    before = len(http_mcp.requests())
    with MCPClient(http_server(http_mcp.url), hf_token=SENTINEL) as client:
        assert tool(client, "whoami").run({}, threading.Event()).endswith("Authorization header: no")
        tool(client, "add").run({"a": 1, "b": 2}, threading.Event())
    seen = http_mcp.requests()[before:]
    assert len(seen) >= 4  # initialize, initialized, tools/list, the calls
    assert not [r for r in seen if "authorization" in r["headers"]]
    assert SENTINEL not in http_mcp.raw_record()
    assert ENV_SENTINEL not in http_mcp.raw_record()


def test_hf_mcp_server_gets_the_callers_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with MCPServerProcess() as server:
        redirect_hub(monkeypatch, server.url.removesuffix("/mcp"))  # this server is "the Hub" now
        assert is_hf_mcp(server.url)
        with MCPClient(http_server(server.url), hf_token=SENTINEL) as client:
            assert tool(client, "whoami").run({}, threading.Event()).endswith("Authorization header: yes")
        posts = [r for r in server.requests() if r["method"] == "POST"]
        assert posts and all(r["headers"].get("authorization") == f"Bearer {SENTINEL}" for r in posts)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://huggingface.co/mcp", True),
        ("https://huggingface.co/mcp/", True),
        ("https://huggingface.co/mcp?login", True),
        ("https://HuggingFace.co:443/mcp", True),
        ("https://huggingface.co/mcp/sub", True),
        ("http://huggingface.co/mcp", False),  # never in clear text
        ("https://huggingface.co/mcpx", False),
        ("https://huggingface.co/api/mcp", False),
        ("https://huggingface.co/", False),
        ("https://router.huggingface.co/mcp", False),
        ("https://evil-space.hf.space/mcp", False),
        ("https://huggingface.co.evil.example/mcp", False),
        ("https://huggingface.co@evil.example/mcp", False),
        ("https://huggingface.co:8443/mcp", False),
        ("http://127.0.0.1:8000/mcp", False),
    ],
)
def test_which_urls_are_hugging_faces_mcp_server(url: str, expected: bool) -> None:
    assert is_hf_mcp(url) is expected


def test_stdio_servers_get_no_hf_token_unless_the_operator_passes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", ENV_SENTINEL)
    monkeypatch.setenv("HUGGINGFACEHUB_API_TOKEN", ENV_SENTINEL)
    plain, passed = tmp_path / "plain.jsonl", tmp_path / "passed.jsonl"
    with MCPClient(stdio_spec(plain), hf_token=SENTINEL) as client:
        client.tools()
    environment = stdio_record(plain)["environment"]
    assert isinstance(environment, list) and "PATH" in environment
    assert "HF_TOKEN" not in environment and "HUGGINGFACEHUB_API_TOKEN" not in environment
    with MCPClient(stdio_spec(passed, prefix="HF_TOKEN=explicit-by-operator ")) as client:
        client.tools()
    assert "HF_TOKEN" in stdio_record(passed)["environment"]  # type: ignore[operator]


# ------------------------------------------------------------------ visitors' servers


def test_a_visitors_loopback_server_is_refused_on_a_public_deployment(http_mcp: MCPServerProcess) -> None:
    with pytest.raises(EndpointNotAllowedError) as caught:
        check_visitor_server(http_mcp.url, DeploymentPolicy(public=True))
    assert "127.0.0.1" in caught.value.message and "public https:// URL" in caught.value.hint
    with pytest.raises(EndpointNotAllowedError):
        check_visitor_server(f"http://localhost:{http_mcp.port}/mcp", DeploymentPolicy(public=True))


def test_a_visitors_loopback_server_is_allowed_on_a_private_deployment(http_mcp: MCPServerProcess) -> None:
    server = check_visitor_server(http_mcp.url, DeploymentPolicy(public=False))
    assert server.visitor and not server.guarded
    with MCPClient(server) as client:
        assert tool(client, "add").run({"a": 3, "b": 4}, threading.Event()) == "7"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "stdio://npx server", "ftp://example.com/mcp", "npx server"])
def test_a_visitor_can_add_only_http_urls(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_visitor_server(url, DeploymentPolicy(public=False))
    assert "https://" in caught.value.hint  # says what to give instead


def test_a_guarded_servers_connections_are_checked_when_they_open(http_mcp: MCPServerProcess) -> None:
    """The check at connect time, not only when the URL was typed: a name that resolved to a
    public address then (and rebinds to loopback) is refused by the pinned connection."""
    before = len(http_mcp.requests())
    guarded = MCPServer(url=http_mcp.url, label="rebinding", visitor=True, guarded=True)
    with MCPClient(guarded, connect_timeout_s=5) as client, pytest.raises(ConnectionFailedError) as caught:
        client.tools()
    assert "local or private address (127.0.0.1)" in caught.value.message
    assert len(http_mcp.requests()) == before


# ------------------------------------------------------------------ configuration and limits


def test_servers_from_flags_and_environment() -> None:
    servers = parse_servers(
        ["https://huggingface.co/mcp", "http://127.0.0.1:8000/mcp"],
        ["HF_TOKEN=x npx -y @modelcontextprotocol/server-everything --port 3", "python -m my_pkg.server"],
        environ={"HFCHAT_MCP": "https://a.example/mcp, https://a.example/other\nhttps://huggingface.co/mcp"},
    )
    assert [(s.kind, s.label) for s in servers] == [
        ("http", "huggingface.co"),
        ("http", "127.0.0.1:8000"),
        ("http", "a.example"),
        ("http", "a.example 2"),
        ("stdio", "@modelcontextprotocol/server-everything"),
        ("stdio", "my_pkg.server"),
    ]
    assert servers[4].command == ("npx", "-y", "@modelcontextprotocol/server-everything", "--port", "3")
    assert servers[4].env == (("HF_TOKEN", "x"),)
    assert not any(s.visitor for s in servers)
    with pytest.raises(ConfigError, match="not an MCP server URL"):
        parse_servers(["huggingface.co/mcp"], environ={})
    with pytest.raises(ConfigError, match="needs a command"):
        parse_servers([], ["A=b"], environ={})


def test_listing_keeps_within_the_limits() -> None:
    client = MCPClient(http_server("http://127.0.0.1:9/mcp"))  # never connects
    listed = [
        types.Tool(name="long", description="x" * (MAX_DESCRIPTION_CHARS * 2), inputSchema={"type": "object"}),
        types.Tool(name="huge", description="", inputSchema={"type": "object", "description": "y" * MAX_SCHEMA_CHARS}),
        types.Tool(name="bad name!", description="", inputSchema={"type": "object"}),
        *(types.Tool(name=f"t{i}", description="", inputSchema={"type": "object"}) for i in range(200)),
    ]
    specs = client._specs(listed)
    assert len(specs) == MAX_TOOLS_PER_SERVER
    assert len(specs[0].description) == MAX_DESCRIPTION_CHARS
    assert "huge" not in {s.name for s in specs} and "bad name!" not in {s.name for s in specs}


def test_results_are_summarised_and_cut() -> None:
    big = types.CallToolResult(content=[types.TextContent(type="text", text="z" * (MAX_RESULT_CHARS + 10))])
    assert result_text(big).startswith("z" * MAX_RESULT_CHARS) and "10 more characters cut" in result_text(big)
    structured = types.CallToolResult(content=[], structuredContent={"answer": 42})
    assert result_text(structured) == '{"answer": 42}'
    audio = types.CallToolResult(content=[types.AudioContent(type="audio", data="A" * 16384, mimeType="audio/wav")])
    assert result_text(audio) == "[audio: audio/wav, 12 KB]"
