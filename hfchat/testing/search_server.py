"""A loopback stand-in for SerpAPI's JSON API (`GET /search.json`), for the `web_search` tool.

Built on `hfchat.testing.servers.Recorder`, so every request is recorded (the query, the key,
the headers: a test asserts that no Authorization header or Hugging Face token arrived) and
the recorder's faults apply: `delay` answers slowly, `fail_next` with an error status. Point
the tool at it with `HFCHAT_SERPAPI_URL=<server.url>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from hfchat.testing.servers import RecordedRequest, Recorder, Response, json_response

INVALID_KEY = "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"
"""SerpAPI's own words for a wrong key (it answers 401 with them as {"error": ...})."""


def result_rows(query: str, count: int = 10) -> list[dict[str, Any]]:
    """Organic results made from the query, as SerpAPI shapes them: numbered, so a test can
    tell which came back."""
    slug = "-".join(query.lower().split())[:40] or "empty"
    return [
        {
            "position": n,
            "title": f"Result {n} for {query}",
            "link": f"https://example.org/{slug}/{n}",
            "displayed_link": f"example.org › {slug} › {n}",
            "snippet": f"Snippet {n} about {query}.",
        }
        for n in range(1, count + 1)
    ]


def serpapi_body(query: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A search answer as SerpAPI sends it (the parts the tool reads, plus metadata it ignores)."""
    return {
        "search_metadata": {"id": "stand-in", "status": "Success", "total_time_taken": 0.01},
        "search_parameters": {"engine": "google", "q": query},
        "organic_results": list(rows),
    }


class SearchServer(Recorder):
    """SerpAPI's `/search.json` on 127.0.0.1.

    By default each search answers `result_rows(q, num)`. `rows` replaces them (the same for
    every query); `answer_error` sends SerpAPI-style {"error": ...} bodies with a status;
    `answer_huge` a body of a given size; `answer_trickle` a body a few bytes at a time (each
    read is quick, the whole is slow); `delay(seconds)` (the recorder's) holds every answer.
    """

    def __init__(self, rows: Sequence[dict[str, Any]] | None = None) -> None:
        self.rows = None if rows is None else list(rows)
        super().__init__({("GET", "/search.json"): self._search})

    @property
    def searches(self) -> list[RecordedRequest]:
        """The requests that reached /search.json, oldest first."""
        return [r for r in self.requests if r.path == "/search.json"]

    def param(self, name: str, index: int = -1) -> str | None:
        """A query parameter of the `index`-th search (the last by default)."""
        values = self.searches[index].query.get(name)
        return values[0] if values else None

    def _search(self, req: RecordedRequest) -> Response:
        query = (req.query.get("q") or [""])[0]
        num = int((req.query.get("num") or ["10"])[0])
        rows = self.rows if self.rows is not None else result_rows(query, num)
        return json_response(serpapi_body(query, rows[:num]))

    def answer_error(self, status: int, message: str = INVALID_KEY, times: int | None = 1) -> None:
        """The next `times` searches get `status` with {"error": message}, as SerpAPI answers."""
        self.fail_next(status, json.dumps({"error": message}), times=times, path="/search.json")

    def answer_huge(self, size: int) -> None:
        """Every search answers a valid SerpAPI body about `size` bytes long (one long snippet)."""
        body = json.dumps(serpapi_body("huge", [{"title": "Huge", "link": "https://example.org/huge", "snippet": ""}]))
        padding = max(0, size - len(body))
        rows = [{"title": "Huge", "link": "https://example.org/huge", "snippet": "x" * padding}]
        self.route("GET", "/search.json", json_response(serpapi_body("huge", rows)))

    def answer_trickle(self, seconds_per_piece: float, pieces: int = 50) -> None:
        """Every search answers a valid body in `pieces` chunks `seconds_per_piece` apart: no
        single read waits long, so only a deadline on the whole request stops it."""
        data = json.dumps(serpapi_body("slow", result_rows("slow", 3))).encode()
        step = max(1, len(data) // pieces)

        def trickle(req: RecordedRequest) -> Response:
            def chunks() -> Iterator[bytes]:
                for start in range(0, len(data), step):
                    if self._closed.wait(seconds_per_piece):
                        return
                    yield data[start : start + step]

            return 200, {"Content-Type": "application/json"}, chunks()

        self.route("GET", "/search.json", trickle)

    def answer_normally(self) -> None:
        """Back to the default answers (and no faults)."""
        self.reset()
        self.route("GET", "/search.json", self._search)
