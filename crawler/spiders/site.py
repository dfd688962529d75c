"""The site spider: same-site pages from the seeds within depth and page limits, and every image
(or stylesheet that may hold images) those pages show."""

from __future__ import annotations

import base64
import binascii
import hashlib
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import scrapy
from scrapy.http import Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure
from w3lib.url import canonicalize_url

from crawler.context import ScanContext, context_of, origin
from crawler.encoding import decode_html
from crawler.extract import css_image_urls, extract
from crawler.failures import describe
from crawler.items import ImageItem, PageItem
from crawler.render import looks_script_built
from store import canonical_page_url

HTML_TYPES = ("text/html", "application/xhtml+xml")
RESOURCE_PRIORITY = 1  # images and stylesheets before pages (Scrapy's default priority is 0)


def parse_data_uri(uri: str) -> tuple[str, bytes] | None:
    """``data:image/png;base64,...`` → (content type, bytes); None when malformed."""
    try:
        header, payload = uri[5:].split(",", 1)
    except ValueError:
        return None
    ctype = header.split(";", 1)[0] or "text/plain"
    try:
        data = base64.b64decode(payload, validate=False) if header.endswith(";base64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return None
    return ctype, data


class SiteSpider(scrapy.Spider):
    name = "site"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages_scheduled = 0
        self.page_urls: set[str] = set()  # URLs already scheduled (each address of a page is fetched once)
        self.links_seen: set[str] = set()  # links as written that page_request has decided on already
        self.budget: set[str] = set()  # canonical page URLs scheduled: the budget counts pages, not addresses
        self.over_budget = 0  # pages not scheduled because the budget ran out
        self.warned_no_browser = False

    @property
    def ctx(self) -> ScanContext:
        return context_of(self.crawler)

    async def start(self) -> Any:
        for req in self.start_requests():
            yield req

    def start_requests(self) -> Iterator[scrapy.Request]:
        for seed in self.ctx.seeds:
            yield self.page_request(seed.url, depth=0)

    # -- requests ----------------------------------------------------------------------------
    def page_request(self, url: str, depth: int) -> scrapy.Request | None:
        # most links of a site point at pages already scheduled (or refused for the budget, which
        # only shrinks): once a link is decided, the same link is decided without canonicalising it
        if url in self.links_seen:
            return None
        self.links_seen.add(url)
        key = canonicalize_url(url)
        if key in self.page_urls:
            return None
        page = canonical_page_url(url)
        if page not in self.budget:  # another address of a page already scheduled costs no budget
            if self.pages_scheduled >= self.settings.getint("JIANFU_MAX_PAGES"):
                self.over_budget += 1
                return None
            self.budget.add(page)
            self.pages_scheduled += 1
        self.page_urls.add(key)
        seed = self.ctx.seed_for(url)
        render = seed.render if seed is not None and seed.render is not None else self.settings.getbool("JIANFU_RENDER")
        return scrapy.Request(url, callback=self.parse_page, errback=self.failed, meta={
            "jianfu_kind": "page", "jianfu_depth": depth,
            "jianfu_render": render and self.settings.getbool("JIANFU_RENDER_AVAILABLE")})

    def image_request(self, url: str, page_url: str) -> scrapy.Request:
        # ahead of the pages waiting: OCR (a thread of its own) then reads ads while the crawl goes
        # on, instead of all of them after the last page
        return scrapy.Request(url, callback=self.parse_image, errback=self.failed, priority=RESOURCE_PRIORITY,
                              meta={"jianfu_kind": "image", "jianfu_page": page_url})

    def qr_requests(self, payloads: list[str], *, page_url: str, image_url: str, sha256: str) -> list[scrapy.Request]:
        """QR codes read from an ad image on ``page_url``. A web address on one of the scan's sites
        is captured like a link of that page; anything else (another site, a WeChat id, a phone
        number) is recorded in ``qr_links`` with the reason it was not fetched."""
        ctx = self.ctx
        page = ctx.store.page(ctx.scan_id, page_url)
        depth = int((page or {}).get("depth") or 0) + 1
        out = []
        for payload in payloads:
            url = payload.strip()
            parts = urlsplit(url)
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                action, reason = "not_a_url", f"QR payload is not a web address: {url[:200]}"
            elif ctx.seed_for(url) is None:
                action, reason = "outside", f"QR target outside the scan's sites: {url[:500]}"
            else:
                req = self.page_request(url, depth)
                if req is None:
                    action, reason = "page_limit", f"QR target not fetched: page limit reached: {url[:500]}"
                else:
                    req.meta["jianfu_qr_image"] = image_url
                    out.append(req)
                    action, reason = "queued", f"QR target queued for capture: {url[:500]}"
            ctx.store.link_qr(ctx.scan_id, page_url, image_url, sha256, payload, action, reason)
        return out

    # -- callbacks ---------------------------------------------------------------------------
    def parse_page(self, response: Response) -> Iterator[Any]:
        ctx = self.ctx
        depth = response.meta["jianfu_depth"]
        requested = response.request.url if response.request else response.url
        first = (response.meta.get("redirect_urls") or [requested])[0]  # what was asked for, before redirects
        if origin(response.url) != origin(first):
            seed = ctx.seed_for(first)
            if depth == 0 and seed is not None:
                ctx.adopt_origin(response.url, seed)  # a seed moved (http→https, www.): its new origin is in scope
            elif ctx.seed_for(response.url) is None:  # any other page may not bring a foreign site in
                self._mark(response, "off_site", f"redirected off the scanned sites to {response.url[:500]}")
                return
        # after redirects: the page is where the content came from, known by its canonical address
        # ("/" and "/index.html" are one page; crawler.pipelines records each address)
        page_url = canonical_page_url(response.url)
        ctype = response.headers.get(b"Content-Type", b"").decode("latin-1")
        body = response.body
        if not (ctype.lower().startswith(HTML_TYPES) or (not ctype and body.lstrip()[:1] == b"<")):
            self._mark(response, "not_html", f"not a web page (Content-Type: {ctype or 'none'})")
            return
        decoded = decode_html(body, ctype)
        content = extract(decoded.text, response.url)
        rendered = response.meta.get("jianfu_rendered")  # crawler.render.Rendered when the browser drew it
        if rendered is None and self.wants_browser(response, decoded.text, content.text):
            yield self.rerender(requested, depth, response.meta.get("jianfu_fetch_id"))
            return
        captured = rendered.images if rendered else {}  # images the browser already fetched
        images = [*content.images, *(u for u in captured if u not in content.images)]
        warc_file, warc_offset = response.meta.get("jianfu_warc", (None, None))
        yield PageItem(
            url=page_url, final_url=response.url, status=response.status, content_type=ctype,
            encoding=f"{decoded.encoding} ({decoded.how})", title=rendered.title if rendered else content.title,
            text=rendered.text if rendered else content.text, depth=depth,
            content_sha256=hashlib.sha256(body).hexdigest(), images=images, warc_file=warc_file,
            warc_offset=warc_offset, rendered=rendered is not None,
            screenshot_sha256=rendered.screenshot_sha256 if rendered else None,
            text_boxes=rendered.text_boxes if rendered else None,
            continued_lines=[] if rendered else content.continued_lines,
        )
        for url in images:
            if url.startswith("data:"):
                parsed = parse_data_uri(url)
                if parsed and parsed[0].startswith("image/"):
                    yield ImageItem(url=url, page_url=page_url, body=parsed[1], content_type=parsed[0])
            elif url in captured:
                yield ImageItem(url=url, page_url=page_url, body=captured[url][1], content_type=captured[url][0])
            else:
                yield self.image_request(url, page_url)
        for url in content.stylesheets:
            yield scrapy.Request(url, callback=self.parse_stylesheet, errback=self.failed, priority=RESOURCE_PRIORITY,
                                 meta={"jianfu_kind": "stylesheet", "jianfu_page": page_url})
        if depth >= self.settings.getint("JIANFU_MAX_DEPTH"):
            return
        for url in content.links:
            if ctx.seed_for(url) is not None:
                req = self.page_request(url, depth + 1)
                if req is not None:
                    yield req

    def wants_browser(self, response: Response, html: str, text: str) -> bool:
        """A page fetched over HTTP that is clearly built by script goes to the browser (once)."""
        if response.meta.get("jianfu_render") or not self.settings.getbool("JIANFU_RENDER_AUTO"):
            return False
        if not looks_script_built(html, text):
            return False
        if not self.settings.getbool("JIANFU_RENDER_AVAILABLE"):
            if not self.warned_no_browser:
                self.warned_no_browser = True
                print(f"jianfu: {response.url} is built by script but Chromium is missing: "
                      "keeping what HTTP sees", file=sys.stderr)
            return False
        return True

    def rerender(self, url: str, depth: int, fetch_id: int | None) -> scrapy.Request:
        if fetch_id:
            self.ctx.store.note_fetch(fetch_id, "built by script: fetched again with the browser")
        return scrapy.Request(url, callback=self.parse_page, errback=self.failed, dont_filter=True,
                              meta={"jianfu_kind": "page", "jianfu_depth": depth, "jianfu_render": True})

    def parse_stylesheet(self, response: Response) -> Iterator[Any]:
        page_url = response.meta["jianfu_page"]
        css = decode_html(response.body, response.headers.get(b"Content-Type", b"").decode("latin-1")).text
        for ref in css_image_urls(css):
            yield self.image_request(response.urljoin(ref), page_url)

    def parse_image(self, response: Response) -> Iterator[ImageItem]:
        yield ImageItem(
            url=response.request.url if response.request else response.url,
            page_url=response.meta["jianfu_page"], body=response.body,
            content_type=response.headers.get(b"Content-Type", b"").decode("latin-1"),
        )

    def failed(self, failure: Failure) -> None:
        request = failure.request  # type: ignore[attr-defined]
        if failure.check(HttpError):  # the fetch was recorded with its status by the capture middleware
            if request.meta.get("jianfu_kind") == "image":  # the page's image list says why it is missing
                ctx = self.ctx
                ctx.store.link_image(ctx.scan_id, request.meta["jianfu_page"], request.url, None,
                                     error=f"HTTP {failure.value.response.status}")
            return
        if request.meta.get("jianfu_fetch_id") and not failure.check(scrapy.exceptions.IgnoreRequest):
            return  # a transport error the capture middleware already recorded
        error, reason = describe(failure.value)
        ctx = self.ctx
        if request.meta.get("jianfu_fetch_id"):
            ctx.store.mark_fetch_error(request.meta["jianfu_fetch_id"], error, reason)
        else:
            ctx.store.record_fetch(ctx.scan_id, request.url, kind=request.meta.get("jianfu_kind", "page"),
                                   error=error, reason=reason)
            ctx.stats["errors"] += 1
        if request.meta.get("jianfu_kind") == "image":
            ctx.store.link_image(ctx.scan_id, request.meta["jianfu_page"], request.url, None, error=reason)

    def closed(self, reason: str) -> None:
        """When the page budget ran out, the pages earlier scans captured that this one did not
        reach are failures of this scan (their findings keep their state: nothing says they went)."""
        if not self.over_budget:
            return
        ctx = self.ctx
        limit = self.settings.getint("JIANFU_MAX_PAGES")
        for url in ctx.store.pages_not_reached(ctx.scan_id, ctx.origins):
            ctx.store.record_fetch(ctx.scan_id, url, kind="page", error="page_limit",
                                   reason=f"not fetched: the page budget ({limit} pages) ran out before this "
                                          "page, captured by an earlier scan, was reached")
            ctx.stats["errors"] += 1

    def _mark(self, response: Response, error: str, reason: str) -> None:
        fetch_id = response.meta.get("jianfu_fetch_id")
        if fetch_id:
            self.ctx.store.mark_fetch_error(fetch_id, error, reason)
            self.ctx.stats["errors"] += 1
