"""What a page holds: its visible text, title, same-site links, and every image an ad may be in.

Images are found in ``<img src/srcset>``, lazy attributes (``data-src``, ``data-original``,
``data-lazy``, ``data-srcset``), ``<picture><source srcset>``, inline-style and ``<style>``
``background-image``, ``og:image``/``twitter:image`` meta tags, ``<input type=image>``, SVG
``<image href>``, and ``data:`` URIs; stylesheets are returned so their ``url()`` images can be
fetched too.

Markup nested deeper than libxml2 allows (2048 open elements even with ``huge_tree``; it drops the
rest of the page) is parsed again the way a browser lays it out: Chromium stops nesting at 512
levels and attaches deeper elements at that depth, so nothing a browser shows is lost
(``_flattened``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html
from lxml import etree

_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tr", "ul", "option", "title", "button", "label",
}
_SKIP = {"script", "style", "noscript", "template", "head", "iframe", "object"}
_LAZY_ATTRS = ("src", "data-src", "data-original", "data-lazy", "data-lazy-src", "data-url")
_SRCSET_ATTRS = ("srcset", "data-srcset")
_CSS_URL = re.compile(r"""url\(\s*(['"]?)([^'")]+)\1\s*\)""", re.I)
_NOT_IMAGES = re.compile(r"\.(?:woff2?|ttf|otf|eot|css)(?:[?#]|$)", re.I)
_WS = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")


@dataclass(slots=True)
class PageContent:
    title: str = ""
    text: str = ""
    links: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    stylesheets: list[str] = field(default_factory=list)
    continued_lines: list[int] = field(default_factory=list)  # lines of ``text`` after a <br> in one block


def _srcset_urls(value: str) -> list[str]:
    if value.lstrip().startswith("data:"):
        return [value.strip()]
    return [part.strip().split()[0] for part in value.split(",") if part.strip()]


def css_image_urls(css: str) -> list[str]:
    """``url(...)`` references of a stylesheet or style attribute, less fonts and imports."""
    urls = (m.group(2).strip() for m in _CSS_URL.finditer(css))
    return [u for u in urls if u.startswith("data:image") or not (u.startswith("data:") or _NOT_IMAGES.search(u))]


_BR = object()  # a <br>: the line after it continues the paragraph of the line before it


def _visible_text(root: lxml.html.HtmlElement) -> tuple[str, list[int]]:
    """The visible text, one line per block, and the indexes of the lines that continue the line
    before them (the two are one block's text around a single ``<br>``). A line break in the
    page's source is white space, as a browser shows it (a paragraph typed over two source lines
    is one line), except inside ``<pre>``. A loop, not recursion, since a hostile page may nest
    thousands of elements deep."""
    parts: list[Any] = []
    pre = 0  # depth of <pre> elements around the current text

    def source_text(t: str) -> str:
        return t if pre else t.replace("\n", " ")

    body = root.find("body")
    # (element, True) enters an element; (element, False) leaves it: its closing text, then its tail
    stack: list[tuple[etree._Element, bool]] = [(body if body is not None else root, True)]
    top = stack[0][0]
    while stack:
        el, entering = stack.pop()
        tag = el.tag.lower() if isinstance(el.tag, str) else ""
        if entering:
            if not tag or tag in _SKIP:  # comments, processing instructions, scripts: their tail only
                if el is not top and el.tail:
                    parts.append(source_text(el.tail))
                continue
            if tag == "br":
                parts.append(_BR)
                if el is not top and el.tail:
                    parts.append(source_text(el.tail))
                continue
            if tag in _BLOCK:
                parts.append("\n")
            pre += tag == "pre"
            if el.text:
                parts.append(source_text(el.text))
            stack.append((el, False))
            stack.extend((child, True) for child in reversed(el))
            continue
        pre -= tag == "pre"
        if tag in _BLOCK:
            parts.append("\n")
        elif tag in ("td", "th"):  # a table row reads as one line: 课程 | 对象 | 时间
            parts.append(" | ")
        if tag == "img" and el.get("alt"):
            parts.append(f" {el.get('alt')} ")
        if el is not top and el.tail:
            parts.append(source_text(el.tail))
    raw: list[tuple[str, bool]] = []  # (line, whether a <br> ended the line before it)
    buf: list[str] = []
    after_br = False
    for part in parts:
        if part is _BR:
            raw.append(("".join(buf), after_br))
            buf, after_br = [], True
            continue
        first, *rest = part.split("\n")
        buf.append(first)
        for chunk in rest:
            raw.append(("".join(buf), after_br))
            buf, after_br = [chunk], False
    raw.append(("".join(buf), after_br))
    lines: list[str] = []
    continued: list[int] = []
    joinable = False  # the last kept line and this one are separated by one <br> only
    for line, soft in raw:
        line = _WS.sub(" ", line).strip()
        if not line:
            joinable = False
            continue
        if soft and joinable:
            continued.append(len(lines))
        lines.append(line)
        joinable = True
    return "\n".join(lines), continued


BROWSER_MAX_DEPTH = 512  # Chromium's HTMLConstructionSite: deeper elements attach at this depth
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
         "track", "wbr", "keygen", "frame"}
_RAW_TEXT = {"script", "style", "textarea", "title", "xmp", "noembed", "noframes", "iframe", "noscript"}
_TAG = re.compile(r"""<(/?)([a-zA-Z][^\s/>]*)(?:[^>"']|"[^"]*"|'[^']*')*>""")


def _flattened(html: str) -> str:
    """``html`` with every element that would open deeper than ``BROWSER_MAX_DEPTH`` closed right
    after its start tag (and its own end tag dropped): what it held follows it instead, as a
    browser lays it out. Tags are found by a plain scan (the contents of scripts and other raw-text
    elements skipped, those elements left whole); libxml2 then parses the result."""
    out: list[str] = []
    pos = skip_to = 0
    open_tags: list[tuple[str, bool]] = []  # (name, closed early)
    lower = html.lower()
    for m in _TAG.finditer(html):
        if m.start() < skip_to:
            continue
        name = m.group(2).lower()
        if m.group(1):  # an end tag: close up to its element
            for i in range(len(open_tags) - 1, -1, -1):
                if open_tags[i][0] == name:
                    if open_tags[i][1]:  # already closed after its start tag: drop this one
                        out.append(html[pos : m.start()])
                        pos = m.end()
                    del open_tags[i:]
                    break
        elif name in _RAW_TEXT:  # kept whole; its text is not markup
            close = lower.find(f"</{name}", m.end())
            skip_to = len(html) if close < 0 else close
        elif name not in _VOID and html[m.end() - 2] != "/":
            early = len(open_tags) >= BROWSER_MAX_DEPTH
            open_tags.append((name, early))
            if early:
                out += (html[pos : m.end()], f"</{name}>")
                pos = m.end()
    out.append(html[pos:])
    return "".join(out)


def _parse(html: str) -> lxml.html.HtmlElement:
    """lxml's HTML parser (``huge_tree``: no limit on text size, 2048 levels of nesting); past
    that depth libxml2 stops and drops the rest of the page, so the page is built again with a
    browser's depth rule instead."""
    parser = lxml.html.HTMLParser(huge_tree=True)
    root = lxml.html.document_fromstring(html, parser=parser)
    if any("Excessive depth" in e.message for e in parser.error_log):
        return lxml.html.document_fromstring(_flattened(html), parser=lxml.html.HTMLParser(huge_tree=True))
    return root


def _absolute(base: str, ref: str) -> str | None:
    ref = ref.strip()
    if not ref or ref.startswith(("javascript:", "mailto:", "tel:", "#")):
        return None
    if ref.startswith("data:"):
        return ref
    url = urldefrag(urljoin(base, ref))[0]
    return url if urlsplit(url).scheme in ("http", "https") else None


def extract(html: str, base_url: str) -> PageContent:
    """Parse ``html``; never raises on malformed markup (returns empty content instead)."""
    content = PageContent()
    if not html.strip():
        return content
    try:
        root = _parse(html)
    except (etree.ParserError, ValueError):
        return content
    base_el = root.find(".//base[@href]")
    base = urljoin(base_url, base_el.get("href")) if base_el is not None else base_url
    title = root.findtext(".//title")
    content.title = _WS.sub(" ", title).strip() if title else ""
    content.text, content.continued_lines = _visible_text(root)

    def add(bucket: list[str], ref: str | None) -> None:
        url = _absolute(base, ref) if ref else None
        if url and url not in bucket:
            bucket.append(url)

    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag == "a" or tag == "area":
            add(content.links, el.get("href"))
        elif tag in ("frame", "iframe"):
            add(content.links, el.get("src"))
        elif tag == "img" or (tag == "input" and (el.get("type") or "").lower() == "image"):
            for attr in _LAZY_ATTRS:
                add(content.images, el.get(attr))
            for attr in _SRCSET_ATTRS:
                for u in _srcset_urls(el.get(attr) or ""):
                    add(content.images, u)
        elif tag == "source" and el.getparent() is not None and el.getparent().tag == "picture":
            for attr in _SRCSET_ATTRS:
                for u in _srcset_urls(el.get(attr) or ""):
                    add(content.images, u)
        elif tag == "image" or tag.endswith("}image"):  # SVG <image href>
            add(content.images, el.get("href") or el.get("{http://www.w3.org/1999/xlink}href"))
        elif tag == "meta" and (el.get("property") or el.get("name") or "").lower() in (
            "og:image", "twitter:image", "og:image:url"
        ):
            add(content.images, el.get("content"))
        elif tag == "link" and "stylesheet" in (el.get("rel") or "").lower():
            add(content.stylesheets, el.get("href"))
        elif tag == "style" and el.text:
            for u in css_image_urls(el.text):
                add(content.images, u)
        style = el.get("style")
        if style:
            for u in css_image_urls(style):
                add(content.images, u)
    return content
