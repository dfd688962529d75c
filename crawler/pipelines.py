"""The item pipeline: each page and image the spider hands over goes to detect → store.

Pages: the visible text (title first) is stored and run through the detectors. Images: bytes
are stored by content hash; the OCR reading is cached by that hash in the store, so an image is
read once however many pages or scans show it. Detection and OCR run in the scan's worker
process (``crawler.workers``) so the crawl keeps going on another core; findings from an image are recorded for every page of the scan that shows it.

When Elasticsearch is configured (``JIANFU_ES_URL`` or ``jianfu index --es``), findings are sent
to it as the scan goes: the store queues every saved finding in the same transaction, and the
pipeline drains that queue as it goes (one batch at most every two seconds) and in full at the
end. A node that is down only leaves findings queued for the next drain (``jianfu index
--drain``, or the next scan).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.utils.defer import maybe_deferred_to_future
from twisted.internet import defer

from crawler.context import ScanContext, context_of
from crawler.incremental import reuse_text_findings
from crawler.items import ImageItem, PageItem
from crawler.workers import WorkerError, detect_image, detect_text
from crawler.workers import read_image as ocr_image
from detectors import Finding
from detectors.paragraphs import Layout, continued_paragraphs, rendered_paragraphs

log = logging.getLogger(__name__)


class CapturePipeline:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        # image_url → (sha256, text read, [(finding, boxes)]) for images already read in this scan
        self.read: dict[str, tuple[str, str, list[tuple[Finding, Any]]]] = {}
        self.ocr_slots = defer.DeferredSemaphore(crawler.settings.getint("JIANFU_OCR_WORKERS", 1))
        self.bodies: dict[str, str] = {}  # content sha256 → first page URL with those bytes
        self.detected: dict[str, list[Finding]] = {}  # sha256 of a page text → its findings
        self.unreadable: dict[str, tuple[str, str]] = {}  # image_url → (sha256, why it cannot be read)
        self._indexer: Any = False  # search.indexer.Indexer, None when no index is configured
        crawler.signals.connect(self.flush_index, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CapturePipeline:
        return cls(crawler)

    @property
    def ctx(self) -> ScanContext:
        return context_of(self.crawler)

    async def process_item(self, item: Any) -> Any:
        if isinstance(item, PageItem):
            await maybe_deferred_to_future(self.save_page(item))
        elif isinstance(item, ImageItem):
            await maybe_deferred_to_future(self.ocr_slots.run(self.read_image, item))
        if self.indexer is not None:  # at most one batch every few seconds: never hold up the crawl
            self.indexer.maybe_drain()
        return item

    @property
    def indexer(self) -> Any:
        if self._indexer is False:
            from search.indexer import indexer_for_store

            self._indexer = indexer_for_store(self.ctx.store)
        return self._indexer

    def flush_index(self, spider: object) -> None:
        if self.indexer is not None:
            result = self.indexer.drain(force=True)
            self.ctx.stats["index_pending"] = self.indexer.pending()
            log.info("search index: %s", result)

    # -- pages -------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def save_page(self, item: PageItem) -> Any:
        ctx = self.ctx
        seed = ctx.seed_for(item.url)
        text = f"{item.title}\n{item.text}" if item.title else item.text
        shift = len(text) - len(item.text)  # text boxes point into the stored text, title included
        boxes = [{**b, "start": b["start"] + shift, "end": b["end"] + shift} for b in item.text_boxes or []]
        first = self.bodies.setdefault(item.content_sha256, item.url)
        duplicate_of = first if first != item.url else None
        # item.url is the page's canonical address (store.db.canonical_page_url): "/" and "/index.html"
        # are one page; each address it was fetched at is recorded, the page row is its first capture
        # in this scan (or the capture at the canonical address itself)
        new_page = ctx.store.record_page_address(ctx.scan_id, item.url, item.final_url,
                                                 content_sha256=item.content_sha256, warc_file=item.warc_file,
                                                 warc_offset=item.warc_offset)
        if new_page or item.final_url == item.url:
            ctx.store.save_page(
                ctx.scan_id, item.url, final_url=item.final_url, status=item.status,
                content_type=item.content_type, encoding=item.encoding, title=item.title, text=text,
                content_sha256=item.content_sha256, depth=item.depth,
                institution=seed.institution if seed else None,
                warc_file=item.warc_file, warc_offset=item.warc_offset, duplicate_of=duplicate_of,
                rendered=int(item.rendered), screenshot_sha256=item.screenshot_sha256,
                text_boxes=boxes if item.rendered else None,
            )
        if new_page:
            ctx.stats["pages"] += 1
        for image_url in item.images:
            known = self.read.get(image_url)
            if known:
                ctx.store.link_image(ctx.scan_id, item.url, image_url, known[0])
                self.save_image_findings(item.url, image_url, *known)
            else:  # not read yet, or could not be read (then say why here too)
                sha, reason = self.unreadable.get(image_url, (None, None))
                ctx.store.link_image(ctx.scan_id, item.url, image_url, sha, error=reason)
        reused = reuse_text_findings(ctx, item.url, item.content_sha256,
                                     self.crawler.settings.getbool("JIANFU_INCREMENTAL", True))
        if reused is not None:  # same bytes as its last capture, same rules: findings re-sighted
            ctx.stats["findings"] += reused
            return
        # "/" and "/index.html" often serve the same text: detect it once, record it under each
        # URL, so a finding's id never depends on which of the two arrived first
        # the lines of one paragraph (one HTML block around <br>, a rendered notice's stacked
        # lines) are read together: negation and context cross their line breaks
        layout = Layout.of(text, rendered_paragraphs(text, boxes) if item.rendered
                           else continued_paragraphs(item.continued_lines, offset=1 if item.title else 0))
        text_key = hashlib.sha256(f"{text}\0{layout.joined}".encode("utf-8", "surrogatepass")).hexdigest()
        findings = self.detected.get(text_key)
        if findings is None:  # the scan's worker process (crawler.workers) examines it
            status, value = yield ctx.worker.call(detect_text, layout)
            if status != "ok":
                raise WorkerError(f"检测页面 {item.url} 失败：{value}")
            findings = self.detected[text_key] = value
        ctx.store.save_findings(ctx.scan_id, item.url, "text", text, findings,
                                institution=seed.institution if seed else None,
                                district=seed.district if seed else None)
        ctx.stats["findings"] += len(findings)

    # -- images ------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def read_image(self, item: ImageItem) -> Any:
        # the reading stays the dict the worker and the store's OCR cache keep
        # (``detectors.images.ImageReading.to_dict``): this process never imports the image code
        ctx = self.ctx
        sha = hashlib.sha256(item.body).hexdigest()
        ctx.stats["images"] += 1
        cached = ctx.store.image(sha)
        if cached and cached.get("ocr") is not None:
            reading = json.loads(cached["ocr"])
            ctx.stats["ocr_cached"] += 1
        elif cached and cached.get("error"):
            self.link_failure(item, sha, cached["error"])
            return
        else:
            ctx.store.put_blob(item.body)
            outcome, reading = yield ctx.worker.call(ocr_image, item.body, ctx.settings.get("ocr", {}))
            if outcome == "rejected":
                ctx.store.save_image(sha, bytes=len(item.body), error=reading)
                self.link_failure(item, sha, reading)
                return
            if outcome != "ok":  # an engine failure must not stop the crawl
                log.error("OCR failed on %s: %s", item.url, reading)
                self.link_failure(item, sha, f"OCR failed: {reading.splitlines()[0]}"[:300])
                return
            ctx.stats["ocr_runs"] += 1
            ctx.store.save_image(sha, bytes=len(item.body), width=reading["width"], height=reading["height"],
                                 format=reading["format"], phash=reading.get("phash", ""),
                                 ocr_engine=reading.get("engine", ""),
                                 ocr=json.dumps(reading, ensure_ascii=False), qr=list(reading.get("qr", [])))
        status, found = yield ctx.worker.call(detect_image, reading)
        if status != "ok":
            raise WorkerError(f"检测图片 {item.url} 失败：{found}")
        qr = list(reading.get("qr", []))
        if qr:
            self.follow_qr(item, sha, qr)
        text = "\n".join(line["text"] for line in reading["lines"])  # ImageReading.text
        self.read[item.url] = (sha, text, found)
        pages = {item.page_url, *ctx.store.pages_showing(ctx.scan_id, item.url)}
        for page_url in sorted(pages):
            ctx.store.link_image(ctx.scan_id, page_url, item.url, sha)
            self.save_image_findings(page_url, item.url, sha, text, found)

    def link_failure(self, item: ImageItem, sha: str, reason: str) -> None:
        """An image that cannot be read: say why on every page of the scan that shows it."""
        ctx = self.ctx
        self.unreadable[item.url] = (sha, reason)
        for page_url in {item.page_url, *ctx.store.pages_showing(ctx.scan_id, item.url)}:
            ctx.store.link_image(ctx.scan_id, page_url, item.url, sha, error=reason)
        ctx.stats["images_rejected"] += 1

    def follow_qr(self, item: ImageItem, sha: str, payloads: list[str]) -> None:
        """QR codes in an ad: the spider decides which targets to fetch (the scan's own sites) and
        records the rest; a pipeline cannot yield requests, so they go to the engine directly."""
        qr_requests = getattr(self.crawler.spider, "qr_requests", None)
        if qr_requests is None:
            return
        for request in qr_requests(payloads, page_url=item.page_url, image_url=item.url, sha256=sha):
            self.crawler.engine.crawl(request)

    def save_image_findings(self, page_url: str, image_url: str, sha: str, text: str,
                            found: list[tuple[Finding, Any]]) -> None:
        ctx = self.ctx
        seed = ctx.seed_for(page_url)
        ctx.store.save_findings(
            ctx.scan_id, page_url, "image", text, [f for f, _ in found], image_url=image_url,
            image_sha256=sha, boxes=[b for _, b in found],
            institution=seed.institution if seed else None, district=seed.district if seed else None,
        )
        ctx.stats["findings"] += len(found)
