"""What the spider hands to the pipeline: a page it read, or an image it fetched."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PageItem:
    url: str
    final_url: str
    status: int
    content_type: str
    encoding: str
    title: str
    text: str
    depth: int
    content_sha256: str
    images: list[str] = field(default_factory=list)
    warc_file: str | None = None
    warc_offset: int | None = None
    rendered: bool = False                 # captured by the browser (crawler.render)
    screenshot_sha256: str | None = None
    text_boxes: list | None = None         # [{start, end, box: [x, y, w, h]}], offsets into ``text``
    continued_lines: list[int] = field(default_factory=list)  # lines of ``text`` after a <br> in one block


@dataclass(slots=True)
class ImageItem:
    url: str
    page_url: str
    body: bytes
    content_type: str
