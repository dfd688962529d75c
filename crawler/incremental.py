"""Incremental re-scans: fetch only what changed, examine only what changed.

- ``ConditionalRequests`` (downloader middleware, just outside ``CaptureMiddleware``) sends
  ``If-None-Match`` / ``If-Modified-Since`` taken from the headers of the last successful fetch
  of the same URL in an earlier scan. On ``304 Not Modified`` (recorded as such in the fetch log
  and WARC by the capture middleware) it restores that earlier capture's body from its WARC
  record, so the spider still follows the page's links and images; the page's store row points
  at the earlier WARC record, which holds the actual bytes.
- A page drawn in the browser (``--render``, or built by script) is asked for the same way, by
  ``crawler.render.revalidate_document`` on the browser's behalf: on 304 the browser is handed the
  captured bytes and renders them (scripts, data and images are fetched live), so an unchanged
  page is rendered again, never failed; the 304 is archived and the page points at the capture.
- ``reuse_text_findings`` (called by the item pipeline) skips detection of a page whose bytes
  hash the same as its last capture in an earlier *finished* scan made with the same detector
  rules, and re-sights that capture's text findings in this scan instead. Images already skip
  OCR by content hash (the OCR cache).

``JIANFU_INCREMENTAL = False`` turns both off (a full re-examination).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.http import Headers, Response
from scrapy.responsetypes import responsetypes

from crawler.context import ScanContext, context_of

log = logging.getLogger(__name__)

_DROP = {b"content-encoding", b"content-length", b"transfer-encoding"}


@lru_cache(maxsize=1)
def detector_fingerprint() -> str:
    """Changes whenever the detector code or a rule pack changes (a rule update re-examines all)."""
    import detectors

    root = Path(detectors.__file__).parent
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".yaml", ".yml", ".json", ".jsonl", ".txt")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class Previous:
    scan_id: str
    etag: str | None
    last_modified: str | None
    warc_file: str
    warc_offset: int


class IncrementalState:
    """Per-scan view of earlier captures, loaded once when the scan starts."""

    def __init__(self, ctx: ScanContext) -> None:
        store = ctx.store
        self.fingerprint = detector_fingerprint()
        store.set_detector_fingerprint(ctx.scan_id, self.fingerprint)
        self.fetches: dict[str, Previous] = {}
        for row in store.last_fetches(exclude_scan_id=ctx.scan_id):
            headers = {k.lower(): v for k, v in json.loads(row["headers"] or "{}").items()}
            if headers.get("etag") or headers.get("last-modified"):
                self.fetches[row["url"]] = Previous(row["scan_id"], headers.get("etag"),
                                                    headers.get("last-modified"), row["warc_file"],
                                                    row["warc_offset"])
        # url → (scan id, content sha256) of its last capture in an earlier finished scan, same rules
        self.pages: dict[str, tuple[str, str]] = store.last_page_hashes(self.fingerprint, ctx.scan_id)


_STATES: dict[str, IncrementalState] = {}


def state_of(ctx: ScanContext) -> IncrementalState:
    st = _STATES.get(ctx.scan_id)
    if st is None:
        st = _STATES[ctx.scan_id] = IncrementalState(ctx)
    return st


def read_warc_body(path: Path, offset: int) -> tuple[list[tuple[str, str]], bytes] | None:
    """The HTTP headers and decoded body of the response record at ``offset``; None if unreadable."""
    from warcio.archiveiterator import ArchiveIterator

    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            for rec in ArchiveIterator(fh):
                if rec.rec_type != "response" or rec.http_headers is None:
                    return None
                return list(rec.http_headers.headers), rec.content_stream().read()
    except Exception as e:  # a missing or damaged archive: fetch the page in full instead
        log.warning("cannot read %s@%s: %s", path, offset, e)
    return None


class ConditionalRequests:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.on = crawler.settings.getbool("JIANFU_INCREMENTAL", True)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConditionalRequests:
        return cls(crawler)

    @property
    def ctx(self) -> ScanContext:
        return context_of(self.crawler)

    def process_request(self, request: Request) -> None:
        if not self.on or request.meta.get("jianfu_unconditional") or request.method != "GET":
            return None
        prev = state_of(self.ctx).fetches.get(request.url)
        if prev is None:
            return None
        if request.meta.get("jianfu_render"):
            # the browser must not send validators itself: Chromium aborts a navigation answered 304
            # (ERR_ABORTED). crawler.render asks on the page's behalf and, on 304, draws the page
            # from the captured bytes (crawler.render.revalidate_document)
            request.meta["jianfu_render_prev"] = prev
            return None
        if prev.etag:
            request.headers[b"If-None-Match"] = prev.etag
        if prev.last_modified:
            request.headers[b"If-Modified-Since"] = prev.last_modified
        request.meta["jianfu_prev"] = prev
        return None

    def process_response(self, request: Request, response: Response) -> Request | Response:
        prev: Previous | None = request.meta.get("jianfu_prev")
        if response.status != 304 or prev is None:
            return response
        ctx = self.ctx
        restored = read_warc_body(ctx.store.dir / "warc" / prev.warc_file, prev.warc_offset)
        if restored is not None:
            try:
                return self.restore(request, response, prev, *restored)
            except Exception:
                log.exception("cannot restore %s from its earlier capture", request.url)
        # cannot restore the earlier bytes: ask again without validators
        retry = request.replace(dont_filter=True)
        for h in (b"If-None-Match", b"If-Modified-Since"):
            retry.headers.pop(h, None)
        retry.meta.pop("jianfu_prev", None)
        retry.meta["jianfu_unconditional"] = True
        return retry

    def restore(self, request: Request, response: Response, prev: Previous,
                raw_headers: list[tuple[str, str]], body: bytes) -> Response:
        ctx = self.ctx
        headers = Headers()
        for k, v in raw_headers:
            if k.lower().encode("latin-1") not in _DROP:
                headers.appendlist(k, v)
        cls = responsetypes.from_args(headers=headers, url=response.url, body=body)
        request.meta["jianfu_not_modified"] = prev.scan_id
        request.meta["jianfu_warc"] = (prev.warc_file, prev.warc_offset)
        ctx.stats["not_modified"] += 1
        return cls(url=response.url, status=200, headers=headers, body=body, request=request,
                   flags=[*response.flags, "not_modified"], ip_address=response.ip_address,
                   protocol=response.protocol)


def reuse_text_findings(ctx: ScanContext, url: str, content_sha256: str, on: bool = True) -> int | None:
    """If ``url``'s bytes are unchanged since its last capture in an earlier finished scan made
    with the same rules, re-sight that capture's text findings in this scan and return how many;
    None when the page must be examined."""
    if not on:
        return None
    prev = state_of(ctx).pages.get(url)
    if prev is None or prev[1] != content_sha256:
        return None
    n = ctx.store.resight(ctx.scan_id, ctx.store.sighted(prev[0], url, "text"))
    ctx.stats["pages_reused"] += 1
    return n
