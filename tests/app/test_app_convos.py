"""The chat page's wiring without a browser or a model: the app in-process on a `FakeService`,
its events sent the way the page sends them (Gradio's own HTTP protocol, `Page` below).

A turn is one quick event and one streamed one; each event saves what it changes into the
browser's list in its own update (nothing runs when the list changes); the question is saved
as it is sent, and the reply with the settings it was made with.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from gradio_client.utils import apply_diff

from hfchat import conversations as convos
from hfchat.chat import chat_signature
from hfchat.cli import parse_options
from hfchat.messages import content_text
from hfchat.testing.app import RunningApp
from hfchat.testing.fake_service import FakeService, Scripted
from hfchat.ui.page import BROWSER_STORAGE_SECRET
from tests.app.test_app_wiring import FLAGS, plain


class Page:
    """One browser tab, as far as the server can tell: the page's values (from /config, then
    as events set them), and events sent as the page sends them: a quick one to
    `run/predict`, a queued one through `queue/join` and its stream, then whatever follows it
    (`.then`). A state an update changed has its `.change` events run at once, mid-stream, as
    the page dispatches them. `requests` counts what went to the server."""

    def __init__(self, url: str, stored: dict[int, Any] | None = None) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=60)
        self.config = self.http.get("config").json()
        self.components = {c["id"]: c for c in self.config["components"]}
        self.values: dict[int, Any] = {i: c["props"].get("value") for i, c in self.components.items()}
        self.props: dict[int, dict[str, Any]] = {i: dict(c["props"]) for i, c in self.components.items()}
        self.values |= stored or {}  # the browser's local storage, kept from another tab
        self.session = uuid.uuid4().hex[:10]
        self.deps = self.config["dependencies"]
        self.requests: list[str] = []
        self.warnings: list[str] = []
        self.load()

    def find(self, *, elem_id: str | None = None, label: str | None = None, kind: str | None = None) -> int:
        """A component's id by element id, label or type (the only one of that type)."""
        found = [
            i
            for i, c in self.components.items()
            if (elem_id is None or c["props"].get("elem_id") == elem_id)
            and (label is None or c["props"].get("label") == label)
            and (kind is None or c["type"] == kind)
        ]
        assert len(found) == 1, (elem_id, label, kind, found)
        return found[0]

    def button(self, text: str) -> int:
        (found,) = [i for i, c in self.components.items() if c["type"] == "button" and c["props"]["value"] == text]
        return found

    @property
    def _store(self) -> int:
        return next(
            i
            for i, c in self.components.items()
            if c["type"] == "browserstate" and c["props"].get("storage_key") == convos.STORAGE_KEY
        )

    def stored(self) -> dict[int, Any]:
        """What the browser's local storage holds: every BrowserState's value."""
        return {i: self.values[i] for i, c in self.components.items() if c["type"] == "browserstate"}

    def triggered(self, target: int | None, event: str) -> list[dict[str, Any]]:
        return [d for d in self.deps if d["backend_fn"] and [target, event] in [list(t) for t in d["targets"]]]

    def chain(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        """`dep` and every event that follows it (`.then`), in order."""
        following = [d for d in self.deps if d["trigger_after"] == dep["id"]]
        return [dep, *(d for f in following for d in self.chain(f))]

    def load(self) -> None:
        """What the page runs as it opens (reopening the conversation that was open)."""
        for dep in self.deps:
            if dep["backend_fn"] and any(t[1] == "load" for t in dep["targets"]):
                self.run(dep)

    def trigger(self, target: int, event: str, event_data: Any = None) -> None:
        for dep in self.triggered(target, event):
            for step in self.chain(dep):
                self.run(step, event_data if step is dep else None)

    def data(self, dep: dict[str, Any]) -> list[Any]:
        return [None if self.components[i]["type"] == "state" else self.values[i] for i in dep["inputs"]]

    def run(self, dep: dict[str, Any], event_data: Any = None) -> None:
        body = {
            "data": self.data(dep),
            "fn_index": dep["id"],
            "session_hash": self.session,
            "event_data": event_data,
            "trigger_id": None,
        }
        if not dep["queue"]:
            self.requests.append("run/predict")
            answer = self.http.post("gradio_api/run/predict", json=body)
            answer.raise_for_status()
            self.apply(dep, answer.json()["data"])
            self.dispatch(answer.json().get("changed_state_ids"))
            return
        self.requests.append("queue/join")
        event_id = self.http.post("gradio_api/queue/join", json=body).raise_for_status().json()["event_id"]
        self.requests.append("queue/data")
        raw: list[Any] | None = None
        with self.http.stream("GET", "gradio_api/queue/data", params={"session_hash": self.session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") != event_id:
                    continue
                if message.get("msg") == "log" and message.get("level") == "warning":
                    self.warnings.append(message.get("log", ""))
                if message.get("msg") == "process_generating":
                    data = message["output"]["data"]
                    raw = data if raw is None else [apply_diff(old, diff) for old, diff in zip(raw, data, strict=True)]
                    self.apply(dep, raw)
                    self.dispatch(message["output"].get("changed_state_ids"))
                if message.get("msg") == "process_completed":
                    assert message.get("success"), message
                    if raw is None:
                        self.apply(dep, message["output"]["data"])
                    self.dispatch(message["output"].get("changed_state_ids"))
                    return

    def dispatch(self, changed: list[int] | None) -> None:
        """The `.change` events of the states an update changed (the page's
        `dispatch_state_change_events`), each with what follows it."""
        for state in changed or []:
            for dep in self.triggered(state, "change"):
                for step in self.chain(dep):
                    self.run(step)

    def apply(self, dep: dict[str, Any], outputs: list[Any]) -> None:
        """The page's values after an event's update: a value, or an update of props."""
        for i, value in zip(dep["outputs"], outputs, strict=True):
            if isinstance(value, dict) and value.get("__type__") == "update":
                props = {k: v for k, v in value.items() if k != "__type__"}
                if "value" in props:
                    self.values[i] = props.pop("value")
                self.props[i].update(props)
            elif self.components[i]["type"] != "state":
                self.values[i] = value

    # -- what a visitor does
    @property
    def box(self) -> int:
        return self.find(elem_id="chat-box")

    @property
    def window(self) -> int:
        return self.find(elem_id="chat-window")

    def send(self, text: str) -> None:
        self.values[self.box] = {"text": text, "files": []}
        self.trigger(self.box, "submit")

    def set(self, label: str, value: Any) -> None:
        self.values[self.find(label=label)] = value

    def shown(self) -> list[str]:
        """The texts in the chat window, thinking and speed lines left out."""
        return [content_text(m["content"]) for m in self.values[self.window] or [] if not m.get("metadata")]

    def saved(self) -> list[convos.Conversation]:
        return convos.load(self.values[self._store])

    @property
    def listing(self) -> int:
        return self.find(elem_id="conversation-list")

    def titles(self) -> list[str]:
        """The titles the conversation list shows, top to bottom."""
        return [html.unescape(t) for t in re.findall(r'<li class="item[^"]*"[^>]*data-title="([^"]*)"', self.listed())]

    def listed(self) -> str:
        return str(self.values[self.listing] or "")

    def act(self, event: str, **data: Any) -> None:
        """What the list's JavaScript sends for an item: select (open), submit (rename), delete."""
        self.trigger(self.listing, event, data)


@pytest.fixture
def fake() -> FakeService:
    """The service under the page: scripted replies, and a record of what each turn sent."""
    return FakeService()


@pytest.fixture
def app(fake: FakeService, start_app: Callable[..., RunningApp]) -> RunningApp:
    return start_app(parse_options(FLAGS, {}), fake)


def plain_texts(exported: dict[str, Any]) -> list[str]:
    """The questions and answers of an exported conversation (the speed line carries metadata)."""
    return [m["text"] for m in exported["messages"] if "metadata" not in m]


def test_the_list_is_stored_under_a_fixed_key_and_secret(app: RunningApp) -> None:
    page = Page(app.url)
    stores = {c["props"]["storage_key"]: c["props"] for c in page.components.values() if c["type"] == "browserstate"}
    assert stores[convos.STORAGE_KEY]["secret"] == BROWSER_STORAGE_SECRET
    assert stores["hfchat-open"]["secret"] == BROWSER_STORAGE_SECRET


def test_a_turn_is_one_quick_event_and_one_streamed_one_and_nothing_follows_a_save(app: RunningApp) -> None:
    """Five requests per turn in the browser: run/predict (the question shows), queue/join and
    queue/data (the reply streams), run/predict once as its reply begins (`write_begun`: the
    question saved into the browser's storage), run/predict (the box and the list drawn, and
    the finished turn stored). The stream carries no BrowserState: Gradio rebuilds each output
    a streamed update leaves out, and a BrowserState was 16% of the app's CPU per update (issue 14)."""
    page = Page(app.url)
    window = page.window
    for target, event in ((page.box, "submit"), (window, "retry"), (window, "edit")):
        (dep,) = page.triggered(target, event)
        steps = page.chain(dep)
        assert [s["queue"] for s in steps] == [False, True, False], (event, [s["api_name"] for s in steps])
        assert steps[1]["types"]["generator"], "the reply streams"
        stored = {i for i, c in page.components.items() if c["type"] == "browserstate"}
        assert not stored & set(steps[1]["outputs"]), "the stream writes no BrowserState"
        assert not steps[2]["types"]["generator"] and page.box in steps[2]["outputs"], "then the box unlocks"
        assert page._store in steps[2]["outputs"], "and the finished turn is stored"
    chat = {page._store, page.window, *(i for i, c in page.components.items() if c["type"] == "state")}
    watching = [d for d in page.deps if any(t[0] in chat and t[1] == "change" for t in d["targets"])]
    assert [d["api_name"] for d in watching] == ["write_begun"], "only the mark of a begun reply is watched"
    (mark,) = {t[0] for t in watching[0]["targets"]}
    writers = [d["api_name"] for d in page.deps if mark in d["outputs"]]
    assert [w.rstrip("_0123456789") for w in writers] == ["respond"] * 4, "the turns' streams alone set it"
    assert not watching[0]["queue"] and page._store in watching[0]["outputs"]
    loops = [d["api_name"] for d in page.deps if any(t[1] == "change" and t[0] in d["outputs"] for t in d["targets"])]
    assert loops == [], "no event writes back what triggers it"


def test_a_question_is_saved_once_its_reply_begins_and_the_reply_with_its_settings(
    app: RunningApp, fake: FakeService
) -> None:
    # Slow enough that the page's write of the begun reply (`write_begun`) lands mid-reply.
    fake.script(Scripted("Hello, visitor.", thinking="A greeting.", delay_s=0.2))
    page = Page(app.url)
    page.set("System prompt", "Be brief.")
    page.values[page.box] = {"text": "Hi", "files": []}
    page.requests.clear()  # the page's own start-up calls
    (begin,) = page.triggered(page.box, "submit")
    page.run(begin)
    assert page.saved() == [] and page.titles() == [], "nothing saved before the reply begins"
    assert page.shown() == ["Hi"]
    assert page.props[page.box]["stop_btn"] and not page.props[page.box]["interactive"], "Stop shown while it streams"

    snapshots: list[tuple[list[convos.Conversation], list[dict[str, Any]]]] = []
    apply = page.apply

    def recording(dep: dict[str, Any], outputs: list[Any]) -> None:
        apply(dep, outputs)
        snapshots.append((page.saved(), page.values[page.window] or []))

    page.apply = recording  # type: ignore[method-assign]
    page.run(page.chain(begin)[1])
    page.apply = apply  # type: ignore[method-assign]
    page.run(page.chain(begin)[2])  # settle: the box and the list
    asked, window = next((saved, shown) for saved, shown in snapshots if saved)
    assert plain(asked[0].messages) == ["Hi"] and asked[0].messages[-1]["content"] == convos.INTERRUPTED_TEXT
    assert len(window) >= 2 and content_text(window[1]["content"]), "saved with the reply's first text, not before"
    (done,) = page.saved()
    assert done.id == asked[0].id and plain(done.messages) == ["Hi", "Hello, visitor."], "the note is replaced"
    assert done.settings is not None and done.settings.system_prompt == "Be brief."
    assert page.shown() == ["Hi", "Hello, visitor."] and page.titles() == ["Hi"]
    assert page.props[page.box]["interactive"] and not page.props[page.box]["stop_btn"]
    assert page.requests == ["run/predict", "queue/join", "queue/data", "run/predict", "run/predict"]
    assert fake.calls[0].session == page.session, "Gradio's request (the rate limit's session) reached the service"
    assert fake.calls[0].values["system_prompt"] == "Be brief."


def test_retry_edit_undo_and_clear_keep_the_saved_list_in_step(app: RunningApp, fake: FakeService) -> None:
    fake.script("One.", "Two.", "Two again.", "Edited reply.")
    page = Page(app.url)
    page.send("First")
    page.send("Second")
    assert plain(page.saved()[0].messages) == ["First", "One.", "Second", "Two."]

    page.trigger(page.window, "retry", {"index": 3, "value": "Two."})
    assert fake.calls[2].text == "Second" and plain(fake.calls[2].history) == ["First", "One."]
    assert plain(page.saved()[0].messages) == ["First", "One.", "Second", "Two again."]

    page.trigger(page.window, "edit", {"index": 2, "value": "Changed", "previous_value": "Second"})
    assert fake.calls[3].text == "Changed" and plain(fake.calls[3].history) == ["First", "One."]
    assert plain(page.saved()[0].messages) == ["First", "One.", "Changed", "Edited reply."]

    page.trigger(page.window, "undo", {"index": 2, "value": "Changed"})
    assert page.shown() == ["First", "One."] and page.values[page.box]["text"] == "Changed", "back in the box"
    assert plain(page.saved()[0].messages) == ["First", "One."]

    page.trigger(page.window, "clear")
    assert page.saved() == [] and page.titles() == []
    page.send("Anew")
    assert plain(fake.calls[-1].history) == [], "a cleared window sends no history"


def test_new_switch_rename_delete_and_a_reload(app: RunningApp, fake: FakeService) -> None:
    fake.script("A reply.", "B reply.", "A again.")
    page = Page(app.url)
    assert not page.props[page.button("Export")]["interactive"], "nothing to export yet"
    page.send("About A")
    assert page.props[page.button("Export")]["interactive"]
    page.trigger(page.button("New chat"), "click")
    assert page.shown() == [] and not page.props[page.button("Export")]["interactive"]
    page.send("About B")
    assert page.titles() == ["About B", "About A"]
    assert page.listed().count('aria-current="true"') == 1 and 'id="conversation-title">About B<' in page.listed()

    page.act("select", id=page.saved()[1].id)
    assert page.shown() == ["About A", "A reply."]
    page.send("More on A")
    assert plain(fake.calls[-1].history) == ["About A", "A reply."], "the switched-to history goes with the turn"
    assert page.titles() == ["About A", "About B"], "the newest first"

    page.act("submit", id=page.saved()[0].id, title="  Topic   A ")
    assert page.titles() == ["Topic A", "About B"]
    page.act("submit", id=page.saved()[1].id, title="Topic B")  # another one than the open one
    assert page.titles() == ["Topic A", "Topic B"] and page.shown()[0] == "About A"

    again = Page(app.url, stored=page.stored())  # a reload: the same browser storage, a new session
    assert again.shown() == ["About A", "A reply.", "More on A", "A again."], "the open conversation comes back"
    assert again.titles() == ["Topic A", "Topic B"]

    again.act("delete", id=again.saved()[1].id)  # not the open one: the window stays
    assert again.titles() == ["Topic A"] and again.shown()[0] == "About A"
    again.act("delete", id=again.saved()[0].id)
    assert again.titles() == [] and again.shown() == []
    assert again.warnings == []


def test_a_refused_list_action_warns_once_and_changes_nothing(app: RunningApp, fake: FakeService) -> None:
    """A stale id (deleted in another tab) or an empty title: one warning, every output as it was."""
    fake.script("A reply.")
    page = Page(app.url)
    page.send("Keep me")
    before = (page.stored(), page.listed(), page.shown(), dict(page.props[page.box]))
    for event, data in (
        ("delete", {"id": "gone"}),
        ("submit", {"id": "gone", "title": "x"}),
        ("select", {"id": "gone"}),
    ):
        page.act(event, **data)
        assert (page.stored(), page.listed(), page.shown(), page.props[page.box]) == before, event
    page.act("submit", id=page.saved()[0].id, title="   ")
    assert (page.stored(), page.listed()) == before[:2]
    assert len(page.warnings) == 4, page.warnings
    assert "no saved conversation to delete" in page.warnings[0] and "enter a title" in page.warnings[3]


def test_export_offers_files_named_after_the_title_and_leaves_no_temp_files(
    app: RunningApp, fake: FakeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.script("Pack light.")
    page = Page(app.url)
    page.send("Trip?")
    page.act("submit", id=page.saved()[0].id, title="Trip plans")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the app writes its export files
    page.trigger(page.button("Export"), "click")
    files = {}
    for elem_id in ("export-json", "export-markdown"):
        button = page.find(elem_id=elem_id)
        assert page.props[button]["visible"]
        value = page.values[button]
        files[value["orig_name"]] = page.http.get(value["url"]).text
    assert set(files) == {"Trip-plans.json", "Trip-plans.md"}
    exported = json.loads(files["Trip-plans.json"])
    assert exported["title"] == "Trip plans" and plain_texts(exported) == ["Trip?", "Pack light."]
    assert files["Trip-plans.md"].startswith("# Trip plans\n")
    assert not list(tmp_path.glob("hfchat-export-*")), "the export's own files are gone once offered"

    page.send("And food?")  # the conversation changed: the old downloads are put away
    assert not page.props[page.find(elem_id="export-json")]["visible"]


def test_chat_and_ask_are_the_public_endpoints_with_every_setting_by_name_and_default(app: RunningApp) -> None:
    info = httpx.get(app.url + "gradio_api/info").json()
    public = list(info["named_endpoints"])
    expected = {"/chat", "/ask", "/search_models", "/continue"}  # the picker's search (issue 16), Continue (17)
    assert set(public) == expected and not info["unnamed_endpoints"], f"the page's events are private: {public}"
    documented = chat_signature(app.options).parameters
    params = info["named_endpoints"]["/chat"]["parameters"]
    settings = [name for name in documented if name not in ("message", "history", "request", "oauth_token")]
    assert [p["parameter_name"] for p in params] == ["message", *settings]
    continued = info["named_endpoints"]["/continue"]["parameters"]
    assert [p["parameter_name"] for p in continued] == settings, "/continue takes /chat's settings, no message"
    for p in params[1:]:
        assert p["parameter_has_default"], p["parameter_name"]
        default = documented[p["parameter_name"]].default
        if default is not None:  # an empty one shows as the control's own empty value
            assert p["parameter_default"] == default, p["parameter_name"]
