"""What is inside a sent-in PDF or saved web page, page by page: its text and the images it holds.

PDFs are read with PDFium (pypdfium2): each page's text layer, and each image drawn on it (pixel
count checked from the image's own size before it is decoded); a page with neither is rendered
and read as an image (a scan saved as vector outlines). Saved pages: plain HTML or MHTML (the
standard library's e-mail parser), their visible text and every image the page shows — lazy
``data-src`` included (``crawler.extract``) — taken from the archive's own parts, ``data:`` URIs, or
(plain HTML on disk) files beside it. Nothing is fetched from the network: an image the saved page
only links to is listed as not included.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from intake.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES

RENDER_SCALE = 2.0     # a page without text or images is rendered at 144 dpi
MAX_PAGE_IMAGES = 40   # images read per PDF page / saved page
LOCAL_BASE = "http://saved-page.invalid/"  # the address relative links of a saved HTML file resolve against


@dataclass
class PageImage:
    name: str                    # where it was on the page (for people and the WARC record's URI)
    data: bytes | None           # PNG/JPEG/… bytes, None when not included
    reason: str | None = None    # why it was not read


@dataclass
class DocPage:
    number: int                  # 1-based
    text: str
    images: list[PageImage] = field(default_factory=list)
    title: str = ""
    continued_lines: list[int] = field(default_factory=list)
    rendered: bool = False       # the page itself was rendered to be read


def pdf_pages(data: bytes) -> Iterator[DocPage]:
    """The pages of a PDF already passed by ``intake.uploads.check_pdf``."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    doc = pdfium.PdfDocument(data)
    try:
        for index in range(len(doc)):
            page = doc[index]
            try:
                textpage = page.get_textpage()
                text = textpage.get_text_bounded().replace("\r\n", "\n").replace("\r", "\n").strip()
                textpage.close()
                images: list[PageImage] = []
                for k, obj in enumerate(page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=4)):
                    name = f"p{index + 1}/image{k + 1}.png"
                    if len(images) >= MAX_PAGE_IMAGES:
                        images.append(PageImage(name, None, f"本页图片超过 {MAX_PAGE_IMAGES} 张，其余未识别"))
                        break
                    width, height = obj.get_px_size()
                    if width * height > MAX_PIXELS:
                        images.append(PageImage(name, None, f"图片像素过多（{width}×{height}），疑似像素炸弹，未解码"))
                        continue
                    try:
                        pil = obj.get_bitmap(render=True).to_pil()
                    except Exception as e:  # noqa: BLE001 - one broken image does not stop the document
                        images.append(PageImage(name, None, f"图片无法解码（{type(e).__name__}）"))
                        continue
                    images.append(PageImage(name, _png(pil)))
                rendered = False
                if not text and not images:
                    images.append(PageImage(f"p{index + 1}/page.png",
                                            _png(page.render(scale=RENDER_SCALE).to_pil())))
                    rendered = True
                yield DocPage(index + 1, text, images, rendered=rendered)
            finally:
                page.close()
    finally:
        doc.close()


def _png(image) -> bytes:  # noqa: ANN001 - a PIL image
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


@dataclass
class SavedPage:
    page: DocPage
    original_url: str | None     # the address the page was saved from, when the file says


def saved_page(data: bytes, kind: str, *, beside: Path | None = None) -> SavedPage:
    """A saved web page (``kind`` html or mhtml). ``beside``: the directory of an HTML file on
    disk, whose images (``name_files/…``) may be read from inside it."""
    from crawler.encoding import decode_html
    from crawler.extract import extract

    parts: dict[str, bytes] = {}
    original = None
    if kind == "mhtml":
        html_bytes, charset, original, parts = _mhtml(data)
        html = decode_html(html_bytes, f"text/html; charset={charset}" if charset else None).text
        base = original or LOCAL_BASE
    else:
        html = decode_html(data).text
        original = _saved_from(html)
        base = LOCAL_BASE  # relative images: files beside an HTML file on disk
    content = extract(html, base)
    images = []
    for url in content.images[:MAX_PAGE_IMAGES]:
        images.append(_resolve(url, parts, beside))
    for url in content.images[MAX_PAGE_IMAGES:]:
        images.append(PageImage(url, None, f"网页图片超过 {MAX_PAGE_IMAGES} 张，其余未识别"))
    text = content.text
    return SavedPage(DocPage(1, text, images, title=content.title, continued_lines=content.continued_lines),
                     original)


def _saved_from(html: str) -> str | None:
    import re

    m = re.search(r"<!--\s*saved from url=\(\d+\)(\S+?)\s*-->", html[:4096], re.I)
    if m:
        return m.group(1)
    m = re.search(r"""<meta[^>]+property=["']og:url["'][^>]+content=["']([^"']+)""", html[:65536], re.I)
    return m.group(1) if m else None


def _mhtml(data: bytes) -> tuple[bytes, str | None, str | None, dict[str, bytes]]:
    """(the HTML part's bytes, its charset, the address it was saved from, location → part bytes)."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    original = msg.get("Snapshot-Content-Location")
    html, charset, parts = None, None, {}
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True) or b""
        location = part.get("Content-Location")
        if location:
            parts[location.strip()] = payload
        cid = part.get("Content-ID")
        if cid:
            parts["cid:" + cid.strip().strip("<>")] = payload
        if html is None and part.get_content_type() == "text/html":
            html, charset = payload, part.get_content_charset()
            original = original or (location.strip() if location else None)
    if html is None:
        from intake.uploads import UploadRefused

        raise UploadRefused("网页存档（MHTML）中没有网页正文", "empty")
    return html, charset, original, parts


def _resolve(url: str, parts: dict[str, bytes], beside: Path | None) -> PageImage:
    if url.startswith("data:"):
        head, _, body = url.partition(",")
        try:
            raw = base64.b64decode(body) if head.endswith(";base64") else unquote(body).encode("utf-8")
        except ValueError:
            return PageImage(url[:80], None, "data: 图片无法解码")
        return PageImage(url[:80] + ("…" if len(url) > 80 else ""), raw)
    if url in parts:
        return PageImage(url, parts[url])
    if beside is not None and url.startswith(LOCAL_BASE):
        root = beside.resolve()
        path = (root / unquote(urlsplit(url).path).lstrip("/")).resolve()
        if path.is_relative_to(root) and path.is_file():
            if path.stat().st_size > MAX_UPLOAD_BYTES:
                return PageImage(path.name, None, "图片文件过大，未识别")
            return PageImage(path.relative_to(root).as_posix(), path.read_bytes())
    return PageImage(url, None, "保存的网页中没有这张图片（只有链接，未联网下载）")
