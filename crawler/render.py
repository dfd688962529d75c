"""Browser rendering: see the page as a parent sees it.

A page request whose ``meta`` says ``jianfu_render`` goes through Debian's Chromium (via
scrapy-playwright). ``RenderMiddleware`` turns that flag into scrapy-playwright meta, records the
browser's own traffic (every response, images and redirects included) into the scan's WARC and
fetch log, and once the page is in, waits for the network to go quiet, scrolls so lazy images
load, collects the visible text blocks with their positions, takes a full-page screenshot, and
closes the page. Browser contexts come from a fixed pool of names (never more than
``PLAYWRIGHT_MAX_CONTEXTS``) and are closed and recreated after a number of pages, so memory stays
flat over long crawls.

The main document reaches ``CaptureMiddleware`` too; it skips browser responses (``playwright``
flag) because the document was already written, as the browser received it, by the recorder.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import subprocess
import time
import weakref
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Headers, Response

from crawler.address_guard import is_private_host
from crawler.context import ScanContext, context_of
from crawler.failures import describe
from crawler.warc import utc_stamp
from jianfu import __version__

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}
MAX_SHOT_HEIGHT = 12000         # px: endless pages are cut here (screenshot and text boxes alike)
MAX_SCROLL_STEPS = 12           # screens scrolled to wake lazy loaders
CONTEXT_LIFETIME = 40           # pages a browser context serves before it is closed and recreated
MAX_RECORDED_RESPONSES = 400    # per page: a page that polls forever cannot flood the archive
MAX_IMAGE_BYTES = 8 * 1024 * 1024
IDLE_QUIET = 0.1                # s without a request that ends the wait early, when the page has no timer pending
IDLE_CONFIRM = 0.03             # s between the two looks that find it so


class RenderFailed(IgnoreRequest):
    """A page the browser could not capture; ``error``/``reason`` go to the fetch log."""

    def __init__(self, error: str, reason: str) -> None:
        super().__init__(reason)
        self.error, self.reason = error, reason


# -- configuration ---------------------------------------------------------------------------
def chromium_executable() -> str | None:
    """Debian's Chromium (or ``$JIANFU_CHROMIUM``) when it exists and is executable."""
    path = os.environ.get("JIANFU_CHROMIUM", CHROMIUM)
    found = shutil.which(path) if os.sep not in path else (path if os.access(path, os.X_OK) else None)
    return found


def chromium_version(executable: str) -> str:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.strip() or "unknown"


def browser_settings(executable: str, *, concurrency: int, timeout: float) -> dict[str, Any]:
    """Scrapy settings that route ``playwright`` requests through Chromium (HTTP stays HTTP)."""
    # pages open at once: as many as one site may have in flight (CONCURRENT_REQUESTS_PER_DOMAIN).
    # The capture runs after the download slot is freed, so the per-site limit alone would let
    # up to --concurrency pages (and renderer processes) pile up in the browser.
    pages = max(1, min(concurrency // 2, 8))
    contexts = 2 if pages > 1 else 1
    handler = "crawler.lazy_browser.LazyPlaywrightHandler"
    return {
        "DOWNLOAD_HANDLERS": {"http": handler, "https": handler},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": executable, "args": CHROMIUM_ARGS, "headless": True,
                                      "timeout": 30_000},
        "PLAYWRIGHT_MAX_CONTEXTS": contexts,
        # any one context may hold all the pages (while another drains before it is recreated);
        # ContextPool keeps the total at ``pages``
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": pages,
        "JIANFU_RENDER_PAGES": pages,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": timeout * 1000,
        "PLAYWRIGHT_ABORT_REQUEST": "crawler.render.abort_request",
        "PLAYWRIGHT_RESTART_DISCONNECTED_BROWSER": True,
        "JIANFU_RENDER_AVAILABLE": True,
        "JIANFU_RENDER_CONTEXTS": contexts,
    }


# -- the browser must not reach private addresses a page points it at ----------------------------
# seeded hosts exempt from the check (ScanContext.exempt_hosts: literal IPs and localhost only), set
# when the middleware starts (one scan per process)
ALLOWED_HOSTS: set[str] = set()
BLOCKED: dict[str, str] = {}       # url → why the browser was not allowed to fetch it


async def abort_request(request: Any) -> bool:
    """scrapy-playwright's ``PLAYWRIGHT_ABORT_REQUEST`` (awaited for every browser request): the
    same check as ``crawler.middlewares.PrivateAddressGuard``, host names resolved."""
    split = urlsplit(request.url)
    if split.scheme not in ("http", "https"):
        return False
    host = (split.hostname or "").lower()
    if not host or host in ALLOWED_HOSTS:
        return False
    why = await is_private_host(host)
    if why:
        if len(BLOCKED) < 10_000:
            BLOCKED[request.url] = f"{why} (browser request blocked)"
        return True
    return False


# -- JavaScript run in the page -----------------------------------------------------------------
# Installed before the page's own scripts (an init script): counts the page's pending short
# timers (``setTimeout`` up to SHORT_TIMER_MS), so the capture knows whether the page still has
# work scheduled (a pop-up after 300 ms, a fetch after ``load`` + 200 ms) once the network is
# quiet. The page's timers run exactly as before; only the count is kept.
SHORT_TIMER_MS = 1000
TIMERS_JS = """(() => {
  if (window.__jianfuTimers) return;
  const pending = new Set(), set = window.setTimeout, clear = window.clearTimeout;
  window.setTimeout = function (fn, ms, ...rest) {
    if (typeof fn !== 'function' || (Number(ms) || 0) > SHORT_TIMER_MS) return set.apply(window, arguments);
    const id = set.call(window, function () {
      try { return fn.apply(this, arguments); } finally { pending.delete(id); }
    }, ms, ...rest);
    pending.add(id);
    return id;
  };
  window.clearTimeout = function (id) { pending.delete(id); return clear.call(window, id); };
  Object.defineProperty(window, '__jianfuTimers', {value: () => pending.size});
})()""".replace("SHORT_TIMER_MS", str(SHORT_TIMER_MS))
PENDING_TIMERS_JS = "() => window.__jianfuTimers ? window.__jianfuTimers() : -1"

SCROLL_JS = """async ({maxSteps, pause, maxHeight}) => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  // the page's scroll handlers run in the next frame: wait for it (at most 1 s: a hidden page draws none)
  const frame = () => Promise.race([new Promise(r => requestAnimationFrame(() => r())), sleep(1000)]);
  const H = () => Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight);
  const initial = H();
  let steps = 0;
  if (initial > window.innerHeight + 2) {
    for (; steps < maxSteps; steps++) {
      const before = H();
      window.scrollTo(0, window.scrollY + window.innerHeight);
      await frame();
      await sleep(pause);
      const h = H();
      if (window.scrollY + window.innerHeight >= h - 2 && h === before) break;
      if (h > maxHeight) break;
    }
    window.scrollTo(0, 0);
  }
  return {steps, initial, height: H()};
}"""

OVERLAYS_JS = """() => {
  const vw = window.innerWidth, vh = window.innerHeight, out = [];
  for (const el of document.body ? document.body.querySelectorAll('*') : []) {
    const st = getComputedStyle(el);
    if (st.position !== 'fixed' && st.position !== 'sticky' && el.getAttribute('role') !== 'dialog'
        && el.getAttribute('aria-modal') !== 'true') continue;
    if (st.display === 'none' || st.visibility !== 'visible' || parseFloat(st.opacity) === 0) continue;
    const r = el.getBoundingClientRect();
    if (r.width * r.height < 0.04 * vw * vh) continue;
    if (out.some(o => o.el.contains(el))) continue;
    out.push({el, text: (el.innerText || '').trim().slice(0, 500),
              box: [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)],
              tag: el.tagName.toLowerCase(), id: el.id || null, cls: el.className && String(el.className) || null});
  }
  return out.map(({el, ...o}) => o);
}"""

# Visible text in reading order, one segment per run of text sharing a block-level ancestor, with
# the segment's box in page pixels (the screenshot's coordinates: measured at scroll top with the
# viewport as tall as the captured page).
TEXT_JS = """({maxChars}) => {
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'IFRAME', 'OBJECT', 'svg', 'SVG']);
  const INLINE = new Set(['inline', 'inline-block', 'inline-flex', 'inline-grid', 'contents', 'ruby', 'inline-table']);
  const blocks = new Map();
  const blockOf = (el) => {
    const start = el;
    while (el && el !== document.body) {
      if (blocks.has(el)) return blocks.get(el);
      if (!INLINE.has(getComputedStyle(el).display)) break;
      el = el.parentElement;
    }
    const b = el || document.body;
    blocks.set(start, b);
    return b;
  };
  const segs = [];
  let cur = null, chars = 0;
  const sx = window.scrollX, sy = window.scrollY;
  const add = (block, text, r) => {
    if (!r || (r.width === 0 && r.height === 0)) return;
    const box = [r.left + sx, r.top + sy, r.right + sx, r.bottom + sy];
    if (cur && cur.block === block) {
      cur.t += text;
      cur.b = [Math.min(cur.b[0], box[0]), Math.min(cur.b[1], box[1]), Math.max(cur.b[2], box[2]), Math.max(cur.b[3], box[3])];
    } else {
      cur = {block, t: text, b: box};
      segs.push(cur);
    }
    chars += text.length;
  };
  const walker = document.createTreeWalker(document.body || document.documentElement,
    NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT, {acceptNode(n) {
      if (n.nodeType === 1) {
        if (SKIP.has(n.tagName)) return NodeFilter.FILTER_REJECT;
        const st = getComputedStyle(n);
        if (st.display === 'none') return NodeFilter.FILTER_REJECT;
        return n.tagName === 'IMG' && n.alt ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
      }
      return NodeFilter.FILTER_ACCEPT;
    }});
  const range = document.createRange();
  for (let n = walker.nextNode(); n && chars < maxChars; n = walker.nextNode()) {
    if (n.nodeType === 1) {  // <img alt>: its words are shown when the image is not
      const st = getComputedStyle(n);
      if (st.visibility === 'visible') add(blockOf(n.parentElement), ' ' + n.alt + ' ', n.getBoundingClientRect());
      continue;
    }
    const raw = n.data;
    if (!raw || !raw.trim()) { if (cur && raw && !cur.t.endsWith(' ')) cur.t += ' '; continue; }
    const parent = n.parentElement;
    if (!parent || getComputedStyle(parent).visibility !== 'visible') continue;
    range.selectNodeContents(n);
    add(blockOf(parent), raw.replace(/\\s+/g, ' '), range.getBoundingClientRect());
  }
  return {
    title: document.title || '',
    width: Math.max(document.documentElement.scrollWidth, window.innerWidth),
    height: Math.max(document.body ? document.body.scrollHeight : 0, document.documentElement.scrollHeight),
    blocks: segs.map(s => ({t: s.t.replace(/\\s+/g, ' ').trim(),
                            b: [Math.round(s.b[0]), Math.round(s.b[1]), Math.round(s.b[2] - s.b[0]), Math.round(s.b[3] - s.b[1])]}))
                .filter(s => s.t),
  };
}"""


# One round trip for most pages: scroll, find overlays, and (when the page fits the viewport, so
# no resize is needed) read the text blocks and the rendered HTML too.
CAPTURE_JS = f"""async (arg) => {{
  const scroll = await ({SCROLL_JS})(arg);
  const overlays = ({OVERLAYS_JS})();
  if (scroll.height > window.innerHeight + 2) return {{scroll, overlays}};
  const dt = document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '';
  return {{scroll, overlays, found: ({TEXT_JS})(arg), html: dt + document.documentElement.outerHTML}};
}}"""


# -- what a rendered page hands the spider --------------------------------------------------------
@dataclass
class Rendered:
    url: str
    final_url: str
    title: str
    text: str
    text_boxes: list[dict[str, Any]]
    screenshot_sha256: str | None
    images: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # url → (content type, bytes)
    notes: list[str] = field(default_factory=list)


def text_and_boxes(blocks: list[dict[str, Any]], extra_lines: list[str] = ()) -> tuple[str, list[dict[str, Any]]]:
    """Join text blocks into the page text (one per line); boxes carry offsets into that text."""
    parts: list[str] = []
    boxes: list[dict[str, Any]] = []
    pos = 0
    for block in blocks:
        text = block["t"]
        boxes.append({"start": pos, "end": pos + len(text), "box": list(block["b"])})
        parts.append(text)
        pos += len(text) + 1
    parts.extend(extra_lines)
    return "\n".join(parts), boxes


# -- per-page recorder of the browser's own traffic ----------------------------------------------
class PageRecorder:
    """Attached to one browser page: writes each response to the WARC and fetch log, keeps image
    bytes for OCR, tracks requests in flight (network idle), dialogs, errors and pop-ups."""

    def __init__(self, ctx: ScanContext, page_url: str) -> None:
        self.ctx = ctx
        self.page_url = page_url
        self.pending: set[Any] = set()
        self.tasks: set[asyncio.Task] = set()
        self.last_activity = time.monotonic()
        # the main frame's documents: (url, status, WARC file, WARC offset, fetch id)
        self.documents: list[tuple[str, int, str, int, int]] = []
        # url → (WARC file, offset, fetch id, scan id): a document the server answered 304, which the
        # browser was handed from its earlier capture (revalidate_document)
        self.restored: dict[str, tuple[str, int, int, str]] = {}
        self.images: dict[str, tuple[str, bytes]] = {}
        self.dialogs: list[str] = []
        self.js_errors: list[str] = []
        self.popups: list[str] = []
        self.recorded = 0
        self.closed = False
        self.loaded = False  # the main frame's load event fired
        self.settled = False  # the page went quiet before the capture
        self.lost_pages = 0
        self._handlers: dict[str, Any] = {}

    def handlers(self) -> dict[str, Any]:
        if not self._handlers:
            self._handlers = {
                "request": self.on_request, "requestfinished": self.on_done, "requestfailed": self.on_failed,
                "response": self.on_response, "dialog": self.on_dialog, "pageerror": self.on_error,
                "popup": self.on_popup, "close": self.on_close, "crash": self.on_close, "load": self.on_load}
        return self._handlers

    def detach(self, page: Any) -> None:
        """Stop listening to ``page`` (it goes on to another URL with another recorder)."""
        for event, handler in self._handlers.items():
            try:
                page.remove_listener(event, handler)
            except Exception:
                pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def on_request(self, request: Any) -> None:
        self.pending.add(request)
        self.last_activity = time.monotonic()
        try:
            if request.is_navigation_request() and request.frame.parent_frame is None:
                self.loaded = False  # a new document: wait for its own load event
        except Exception:
            pass

    def on_load(self, page: Any = None) -> None:
        self.loaded = True

    def on_done(self, request: Any) -> None:
        self.pending.discard(request)
        self.last_activity = time.monotonic()

    def on_failed(self, request: Any) -> None:
        self.on_done(request)
        why = BLOCKED.pop(request.url, None)
        if why and not self.closed:
            self.ctx.store.record_fetch(self.ctx.scan_id, request.url, kind="browser", error="private_address",
                                        reason=why)

    def on_response(self, response: Any) -> None:
        if 300 <= response.status < 400:
            self.pending.discard(response.request)
        if response.url in self.restored and response.request.resource_type == "document" \
                and response.request.frame.parent_frame is None:
            # the earlier capture, handed over after a 304: archived already, nothing new to record
            warc_file, offset, fetch_id, _ = self.restored[response.url]
            self.documents.append((response.url, 200, warc_file, offset, fetch_id))
            return
        if self.closed or self.recorded >= MAX_RECORDED_RESPONSES:
            return
        if urlsplit(response.url).scheme not in ("http", "https"):
            return
        self.recorded += 1
        self._spawn(self.record(response))

    def on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}"[:500])
        self._spawn(dialog.accept() if dialog.type == "beforeunload" else dialog.dismiss())

    def on_error(self, error: Any) -> None:
        if len(self.js_errors) < 20:
            self.js_errors.append(str(error).splitlines()[0][:200] if str(error) else type(error).__name__)

    def on_close(self, page: Any = None) -> None:
        """The page closed or crashed before jianfu closed it: the browser went down underneath it
        (scrapy-playwright then loads the page again in a new one)."""
        if not self.closed:
            self.lost_pages += 1
            self.pending.clear()

    def on_popup(self, popup: Any) -> None:
        self.popups.append(popup.url)
        self._spawn(popup.close())

    async def record(self, response: Any) -> None:
        ctx = self.ctx
        request = response.request
        status = response.status
        body = b""
        try:
            if not 300 <= status < 400:
                body = await response.body()
            headers = await response.headers_array()
            req_headers = await request.headers_array()
        except Exception:  # page closed or body gone (download, aborted): nothing to archive
            return
        if len(body) > MAX_IMAGE_BYTES * 3:
            return
        ip = None
        try:
            addr = await response.server_addr()
            ip = addr["ipAddress"] if addr else None
        except Exception:
            pass
        if self.closed and not ctx.warc:  # pragma: no cover - scan finished underneath us
            return
        # the browser hands bodies decoded: describe them as they are now stored
        hdrs = [(h["name"], h["value"]) for h in headers
                if h["name"].lower() not in ("content-encoding", "content-length")]
        if body or not 300 <= status < 400:
            hdrs.append(("Content-Length", str(len(body))))
        reason = response.status_text or ""
        offset = ctx.warc.write_exchange(
            response.url, request.method, [(h["name"], h["value"]) for h in req_headers if not h["name"].startswith(":")],
            status, reason, "HTTP/1.1", hdrs, body, ip,
        )
        rtype = request.resource_type
        kind = {"document": "page", "image": "image"}.get(rtype, "browser")
        main = rtype == "document" and request.frame.parent_frame is None
        error = f"http_{status}" if status >= 400 and kind != "browser" else None
        why = f"HTTP {status} {reason}".strip() if error else None
        if 300 <= status < 400:
            location = next((v for k, v in hdrs if k.lower() == "location"), "")
            why = f"redirect to {location} (in the browser)"
        fetch_id = ctx.store.record_fetch(
            ctx.scan_id, response.url, kind=kind if not main else "page", status=status,
            headers=dict(hdrs), elapsed_ms=None, ip=ip, error=error, reason=why,
            warc_file=ctx.warc.name, warc_offset=offset,
        )
        ctx.stats["browser_responses"] += 1
        if error:
            ctx.stats["errors"] += 1
        if main:
            self.documents.append((response.url, status, ctx.warc.name, offset, fetch_id))
        ctype = next((v for k, v in hdrs if k.lower() == "content-type"), "")
        if (rtype == "image" or ctype.startswith("image/")) and status == 200 and body and len(body) <= MAX_IMAGE_BYTES:
            self.images[response.url] = (ctype, body)

    def not_modified(self, url: str, req_headers: dict[str, str], answer: Any, prev: Any) -> None:
        """The server answered the page's conditional request 304: archive that answer; the page
        points at the earlier capture the browser is handed."""
        ctx = self.ctx
        headers = [(h["name"], h["value"]) for h in answer.headers_array]
        offset = ctx.warc.write_exchange(url, "GET", list(req_headers.items()), 304, "Not Modified", "HTTP/1.1",
                                         headers, b"", None)
        fetch_id = ctx.store.record_fetch(ctx.scan_id, url, kind="page", status=304, headers=dict(headers),
                                          warc_file=ctx.warc.name, warc_offset=offset)
        self.restored[url] = (prev.warc_file, prev.warc_offset, fetch_id, prev.scan_id)
        ctx.stats["not_modified"] += 1

    async def settle(self, quiet: float, timeout: float, page: Any = None) -> bool:
        """Wait until the page is done: nothing in flight for ``quiet`` seconds. With ``page``, sooner
        once the page has loaded, nothing has been in flight for ``IDLE_QUIET`` seconds and the page
        has no short timer pending (``TIMERS_JS``), seen twice in a row. False on timeout."""
        deadline = time.monotonic() + timeout
        idle_since = 0.0  # when the page was first seen idle, timers included (0: not idle)
        while True:
            now = time.monotonic()
            quiet_for = now - self.last_activity
            if not self.pending and quiet_for >= quiet:
                return True
            if now >= deadline:
                return False
            early = page is not None and quiet > IDLE_QUIET
            if early and self.loaded and not self.pending and quiet_for >= IDLE_QUIET:
                if not await self._no_timers(page):
                    idle_since = 0.0
                elif idle_since > self.last_activity and time.monotonic() - idle_since >= IDLE_CONFIRM:
                    return True
                elif idle_since <= self.last_activity:
                    idle_since = time.monotonic()
                wait = IDLE_CONFIRM
            elif self.pending or (early and not self.loaded):
                wait = 0.03
            else:  # just until the quiet period would be over (activity meanwhile moves it)
                wait = (IDLE_QUIET if early else quiet) - quiet_for
            await asyncio.sleep(max(0.005, min(wait, deadline - time.monotonic())))

    async def _no_timers(self, page: Any) -> bool:
        try:
            return await page.evaluate(PENDING_TIMERS_JS) == 0
        except Exception:  # navigating, closed: the plain quiet period decides
            return False

    async def flush(self, timeout: float = 5.0) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)


# -- the pool of context names --------------------------------------------------------------------
class ContextPool:
    """A fixed set of context names; each context is closed after ``lifetime`` pages (once idle) and
    recreated by scrapy-playwright on the next request that names it. A page that captured cleanly
    is kept open and navigated to the context's next page: its tab keeps its renderer process, so
    the browser does not start (and later tear down) a process for every page."""

    def __init__(self, size: int, lifetime: int = CONTEXT_LIFETIME, pages: int | None = None) -> None:
        self.size, self.lifetime = size, lifetime
        self.pages = pages or 10**9     # pages open at once over all contexts
        self.served = [0] * size
        self.inflight = [0] * size
        self.retiring = [False] * size
        self.contexts: list[Any] = [None] * size
        self.idle: list[list[Any]] = [[] for _ in range(size)]  # open pages waiting for their next URL

    async def acquire(self) -> tuple[int, Any]:
        """A context slot and, when that context has one, an open page to reuse."""
        while True:
            free = [i for i in range(self.size) if not self.retiring[i]]
            if free and sum(self.inflight) < self.pages:
                # a context with an open page first (no new tab), then the one already in use: one
                # context serves until it retires, while the other drains and is closed
                slot = min(free, key=lambda i: (not self.idle[i], -self.inflight[i], i))
                break
            await asyncio.sleep(0.02)
        self.inflight[slot] += 1
        self.served[slot] += 1
        if self.served[slot] >= self.lifetime:
            self.retiring[slot] = True
        page = None
        while self.idle[slot] and page is None:
            candidate = self.idle[slot].pop()
            if not candidate.is_closed():
                page = candidate
        return slot, page

    async def release(self, slot: int, context: Any = None, page: Any = None) -> None:
        """The slot's request is done; ``page`` (open, captured cleanly) may serve the next one."""
        if context is not None:
            self.contexts[slot] = context
        self.inflight[slot] -= 1
        if page is not None:
            if self.retiring[slot] or context is None:
                await _close_page(page)
            else:
                self.idle[slot].append(page)
        if self.retiring[slot] and self.inflight[slot] == 0:
            ctx, self.contexts[slot] = self.contexts[slot], None
            pages, self.idle[slot] = self.idle[slot], []
            try:
                for idle in pages:
                    await _close_page(idle)
                if ctx is not None:
                    await asyncio.wait_for(ctx.close(), 10)
            except Exception:
                pass
            finally:
                self.served[slot] = 0
                self.retiring[slot] = False


async def _close_page(page: Any) -> None:
    try:
        if not page.is_closed():
            await asyncio.wait_for(page.close(), 10)
    except Exception:
        pass


# -- the downloader middleware --------------------------------------------------------------------
class RenderMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        s = crawler.settings
        self.timeout = s.getfloat("DOWNLOAD_TIMEOUT", 20)
        self.wait_for = s.get("JIANFU_RENDER_WAIT_FOR") or None
        self.quiet = s.getfloat("JIANFU_RENDER_QUIET", 0.4)
        self.pool = ContextPool(s.getint("JIANFU_RENDER_CONTEXTS", 1), pages=s.getint("JIANFU_RENDER_PAGES") or None)
        ALLOWED_HOSTS.update(context_of(crawler).exempt_hosts)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RenderMiddleware:
        return cls(crawler)

    @property
    def ctx(self) -> ScanContext:
        return context_of(self.crawler)

    async def process_request(self, request: Request) -> None:
        if not request.meta.get("jianfu_render"):
            return None
        recorder = PageRecorder(self.ctx, request.url)
        request.meta.pop("playwright_page", None)
        request.meta.update({
            "playwright": True, "playwright_include_page": True,
            "playwright_context_kwargs": {"viewport": dict(VIEWPORT), "accept_downloads": False,
                                          "locale": "zh-CN", "service_workers": "block",
                                          "ignore_https_errors": True},
            "playwright_page_goto_kwargs": {"wait_until": "domcontentloaded", "timeout": self.timeout * 1000},
            "playwright_page_event_handlers": recorder.handlers(),
            "jianfu_recorder": recorder, "jianfu_take_page": self.take_page, "dont_retry": True,
        })
        request.meta["playwright_page_init_callback"] = prepare_page
        if request.meta.get("jianfu_render_prev"):  # captured before: ask whether it changed
            request.meta["jianfu_render_timeout"] = self.timeout
        return None

    async def take_page(self, request: Request) -> None:
        """Called by the download handler (``crawler.lazy_browser``) when the request's turn has come
        (after the per-site limits, unlike ``process_request``): a context, and an open page of it
        when one is free, so no page waits in the queue."""
        slot, page = await self.pool.acquire()
        request.meta["jianfu_slot"] = slot
        request.meta["playwright_context"] = f"jianfu-{slot}"
        if page is not None:  # scrapy-playwright navigates the open page to this URL
            request.meta["playwright_page"] = page

    async def process_response(self, request: Request, response: Response) -> Response:
        if "playwright" not in response.flags or "jianfu_recorder" not in request.meta:
            return response
        page = request.meta.pop("playwright_page", None)
        recorder: PageRecorder = request.meta.pop("jianfu_recorder")
        clean = False
        try:
            if request.meta.get("playwright_suggested_filename"):
                raise RenderFailed("download", "the address starts a file download, not a page")
            try:
                rendered, html = await asyncio.wait_for(self.capture(page, request, recorder), self.timeout)
            except TimeoutError:
                raise RenderFailed("render_timeout", f"page not captured within {self.timeout:g} s "
                                   "(loading, scrolling or screenshot took too long)") from None
            except RenderFailed:
                raise
            except Exception as e:
                error, reason = describe(e)
                raise RenderFailed(error, reason) from e
            clean = True
        except RenderFailed as e:
            await recorder.flush(2)
            self._record_failure(request, recorder, e.error, e.reason)
            raise
        finally:
            recorder.closed = True
            # a clean capture's page may serve the context's next URL; any other is closed
            await self._close(page, request, recorder if clean else None)
        request.meta["jianfu_rendered"] = rendered
        headers = Headers(response.headers)
        headers[b"Content-Type"] = b"text/html; charset=utf-8"
        return response.replace(url=rendered.final_url, body=html.encode("utf-8"), headers=headers)

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        recorder = request.meta.pop("jianfu_recorder", None)
        if recorder is None:
            return None
        recorder.closed = True
        await self._close(request.meta.pop("playwright_page", None), request)
        error, reason = describe(exception)
        if error == "browser_crash" and not request.meta.get("jianfu_crash_retried"):
            # the browser died under this page: record it, and try once more in a fresh browser
            ctx = self.ctx
            ctx.store.record_fetch(ctx.scan_id, request.url, kind="page", error=error,
                                   reason=f"{reason}; trying again in a restarted browser")
            ctx.stats["errors"] += 1
            meta = {k: v for k, v in request.meta.items() if not k.startswith(("playwright", "jianfu_fetch"))}
            return request.replace(dont_filter=True, meta={**meta, "jianfu_crash_retried": True})
        return None  # CaptureMiddleware records the failure (crawler.failures names browser errors)

    async def _close(self, page: Any, request: Request, recorder: PageRecorder | None = None) -> None:
        """Close the page, or with the ``recorder`` of a clean capture, keep it open for the
        context's next page; either way the page's slot is free again."""
        context = keep = None
        if page is not None:
            try:
                context = page.context
                if recorder is not None and await self._reusable(page, recorder):
                    keep = page
                else:
                    await _close_page(page)
            except Exception:
                await _close_page(page)
        slot = request.meta.pop("jianfu_slot", None)
        if slot is not None:
            await self.pool.release(slot, context, keep)
        elif keep is not None:
            await _close_page(keep)

    async def _reusable(self, page: Any, recorder: PageRecorder) -> bool:
        """Ready the page for another URL: this capture's event handlers off, the viewport back to
        its size. Only a page that went quiet: not one still busy (polling), showing dialogs,
        opening windows, that crashed or left the web."""
        recorder.detach(page)
        if page.is_closed() or not recorder.settled or recorder.lost_pages or recorder.popups \
                or recorder.dialogs or urlsplit(page.url).scheme not in ("http", "https"):
            return False
        if page.viewport_size != VIEWPORT:
            await asyncio.wait_for(page.set_viewport_size(dict(VIEWPORT)), 5)
        return True

    def _record_failure(self, request: Request, recorder: PageRecorder, error: str, reason: str) -> None:
        ctx = self.ctx
        if recorder.documents:
            fetch_id = recorder.documents[-1][4]
            ctx.store.mark_fetch_error(fetch_id, error, reason)
        else:
            fetch_id = ctx.store.record_fetch(ctx.scan_id, request.url, kind="page", error=error, reason=reason)
        request.meta["jianfu_fetch_id"] = fetch_id
        ctx.stats["errors"] += 1

    # -- the capture itself --------------------------------------------------------------------
    async def capture(self, page: Any, request: Request, rec: PageRecorder) -> tuple[Rendered, str]:
        ctx = self.ctx
        notes: list[str] = []
        budget = self.timeout
        if rec.lost_pages:  # the browser crashed under this page and scrapy-playwright loaded it again
            ctx.store.record_fetch(ctx.scan_id, request.url, kind="page", error="browser_crash",
                                   reason="the browser crashed while loading the page; loaded again in a "
                                          "restarted browser")
            ctx.stats["errors"] += 1
            rec.lost_pages = 0
        rec.settled = await rec.settle(self.quiet, min(5.0, budget / 3), page)
        if not rec.settled:
            notes.append(f"network still busy after {min(5.0, budget / 3):.1f} s (captured as shown)")
        if self.wait_for:
            try:
                await page.wait_for_selector(self.wait_for, timeout=min(5.0, budget / 3) * 1000)
            except Exception:
                notes.append(f"selector {self.wait_for!r} did not appear")
        first = await self._evaluate(page, CAPTURE_JS, {"maxSteps": MAX_SCROLL_STEPS, "pause": 80,
                                                        "maxHeight": MAX_SHOT_HEIGHT, "maxChars": 500_000}, notes) or {}
        scroll, overlays = first.get("scroll"), first.get("overlays") or []
        if scroll and scroll["steps"] >= MAX_SCROLL_STEPS and scroll["height"] > scroll["initial"]:
            notes.append(f"page kept growing while scrolling (endless scroll): stopped after {scroll['steps']} screens")
        # measure and shoot with the viewport as tall as the page: boxes and pixels share coordinates
        height = min(MAX_SHOT_HEIGHT, max(VIEWPORT["height"], (scroll or {}).get("height", 0)))
        found, html = first.get("found"), first.get("html")
        if found is None:
            if height > VIEWPORT["height"]:
                await page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
                await rec.settle(0.2, 2.0, page)
            found = await self._evaluate(page, TEXT_JS, {"maxChars": 500_000}, notes)
        if found is None:
            raise RenderFailed("render_failed", "the page went away before its text could be read")
        shot = await asyncio.wait_for(screenshot(page), budget / 2)
        if html is None:
            html = await page.content()
        await rec.flush()
        final_url = page.url
        main = rec.documents[-1] if rec.documents else None
        if rec.dialogs:
            notes.append(f"dialogs: {len(rec.dialogs)} (dismissed)")
        if rec.js_errors:
            notes.append(f"JavaScript errors: {len(rec.js_errors)} (first: {rec.js_errors[0]})")
        if rec.popups:
            notes.append(f"pop-up windows: {', '.join(rec.popups[:5])} (closed)")
        if main and main[0] in rec.restored:
            notes.append(f"not modified since scan {rec.restored[main[0]][3]}: its capture drawn again")
        if final_url.rstrip("/") != request.url.rstrip("/") and urlsplit(final_url).scheme in ("http", "https"):
            notes.append(f"page moved to {final_url}")
        text, boxes = text_and_boxes(found["blocks"], [f"[{d}]" for d in rec.dialogs])
        # archive: the screenshot and what the capture saw, next to the browser's own traffic
        sha = ctx.store.put_blob(shot)
        meta = {"WARC-Refers-To-Target-URI": final_url, "WARC-Payload-Digest-SHA256": sha}
        shot_offset = ctx.warc.write_resource(f"urn:view:{final_url}", "image/png", shot, meta)
        dom_offset = ctx.warc.write_resource(f"urn:dom:{final_url}", "text/html; charset=utf-8", html.encode("utf-8"),
                                             {"WARC-Refers-To-Target-URI": final_url})
        info = {
            "url": request.url, "final_url": final_url, "captured_at": utc_stamp(), "tool": f"jianfu/{__version__}",
            "browser": _browser_version(page), "viewport": dict(VIEWPORT), "screenshot_size": [VIEWPORT["width"], height],
            "screenshot_sha256": sha, "screenshot_offset": shot_offset, "dom_offset": dom_offset,
            "document_offset": main[3] if main else None, "document_warc": main[2] if main else None,
            "settings": {
                "quiet_seconds": self.quiet, "timeout_seconds": self.timeout, "wait_for": self.wait_for,
                "max_scroll_steps": MAX_SCROLL_STEPS, "max_height": MAX_SHOT_HEIGHT},
            "scroll": scroll, "overlays": overlays, "dialogs": rec.dialogs, "js_errors": rec.js_errors,
            "popups": rec.popups, "notes": notes, "browser_responses": rec.recorded,
        }
        ctx.warc.write_metadata(f"urn:capture:{final_url}", info)
        fetch_id = main[4] if main else ctx.store.record_fetch(
            ctx.scan_id, final_url, kind="page", status=200, warc_file=ctx.warc.name, warc_offset=dom_offset)
        if notes:
            ctx.store.note_fetch(fetch_id, "; ".join(notes))
        request.meta["jianfu_fetch_id"] = fetch_id
        request.meta["jianfu_warc"] = (main[2], main[3]) if main else (ctx.warc.name, dom_offset)
        ctx.stats["rendered"] += 1
        return Rendered(url=request.url, final_url=final_url, title=found["title"].strip(), text=text,
                        text_boxes=boxes, screenshot_sha256=sha, images=rec.images, notes=notes), html

    async def _evaluate(self, page: Any, js: str, arg: Any, notes: list[str]) -> Any:
        """Evaluate ``js``; a page that navigates meanwhile is given one more chance after it loads."""
        for attempt in range(2):
            try:
                return await page.evaluate(js, arg)
            except Exception as e:
                if attempt or "context was destroyed" not in str(e) and "navigat" not in str(e):
                    if "Target" in str(e) and "closed" in str(e):
                        raise
                    notes.append(f"script step failed: {str(e).splitlines()[0][:120]}")
                    return None
                try:
                    await page.wait_for_load_state("domcontentloaded", timeout=5000)
                except Exception:
                    pass
        return None


_TIMED_PAGES: weakref.WeakSet[Any] = weakref.WeakSet()


async def prepare_page(page: Any, request: Request) -> None:
    """scrapy-playwright page init callback (before the page navigates): count the page's short
    timers (``TIMERS_JS``), and revalidate a page captured by an earlier scan."""
    if page not in _TIMED_PAGES:  # a reused page has it already
        await page.add_init_script(TIMERS_JS)
        _TIMED_PAGES.add(page)
    if request.meta.get("jianfu_render_prev"):
        await revalidate_document(page, request)


async def revalidate_document(page: Any, request: Request) -> None:
    """scrapy-playwright page init callback for a page captured by an earlier scan: the page's own
    navigation is asked for with that capture's validators (If-None-Match / If-Modified-Since), on
    the browser's behalf. A 304 is archived and the browser is handed the captured bytes, which it
    renders as it would the server's (scripts, data and images load live); any other answer lets
    the browser fetch the page itself. Chromium cannot be given the validators directly: it aborts
    a navigation answered 304 (ERR_ABORTED) because it has no cached copy to show."""
    from crawler.incremental import read_warc_body

    prev = request.meta.get("jianfu_render_prev")
    recorder: PageRecorder | None = request.meta.get("jianfu_recorder")
    if prev is None or recorder is None:
        return
    timeout = float(request.meta.get("jianfu_render_timeout", 20)) * 1000
    target = request.url.rstrip("/")
    asked = False

    async def on_route(route: Any, preq: Any) -> None:
        nonlocal asked
        if asked or preq.url.rstrip("/") != target or not preq.is_navigation_request() \
                or preq.frame.parent_frame is not None:
            return await route.fallback()
        asked = True
        headers = {k: v for k, v in (await preq.all_headers()).items() if not k.startswith(":")}
        headers.update({k.lower(): v for k, v in request.headers.to_unicode_dict().items() if v.isascii()})
        headers.pop("accept-encoding", None)  # only the status matters: nothing to decode
        if prev.etag:
            headers["if-none-match"] = prev.etag
        if prev.last_modified:
            headers["if-modified-since"] = prev.last_modified
        try:
            answer = await route.fetch(headers=headers, max_redirects=0, timeout=timeout)
        except Exception as e:  # the browser's own request will say what is wrong
            log.info("conditional request for %s failed (%s): the browser fetches it", preq.url, e)
            return await route.fallback()
        restored = None
        if answer.status == 304:
            restored = read_warc_body(recorder.ctx.store.dir / "warc" / prev.warc_file, prev.warc_offset)
        if restored is None:
            await answer.dispose()
            return await route.fallback()
        recorder.not_modified(preq.url, headers, answer, prev)
        await answer.dispose()
        raw_headers, body = restored
        keep = {k: v for k, v in raw_headers if k.lower() not in ("content-encoding", "content-length",
                                                                   "transfer-encoding")}
        await route.fulfill(status=200, headers=keep, body=body)

    await page.route("**", on_route)


_DEVTOOLS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # page → its DevTools session
SHOT_PARAMS = {"format": "png", "optimizeForSpeed": True, "captureBeyondViewport": False, "fromSurface": True}


async def screenshot(page: Any) -> bytes:
    """PNG of the viewport (as tall as the captured page), straight from Chromium's DevTools
    ``Page.captureScreenshot`` with its fast PNG encoder; Playwright's ``page.screenshot`` (which
    adds several round trips per page) when a DevTools session cannot be had. The session stays
    open with the page (a reused page shoots its next URL without opening another)."""
    for attempt in range(2):
        cdp = _DEVTOOLS.get(page)
        if cdp is None:
            try:
                cdp = _DEVTOOLS[page] = await page.context.new_cdp_session(page)
            except Exception:
                return await page.screenshot(type="png", full_page=False)
        try:
            out = await cdp.send("Page.captureScreenshot", SHOT_PARAMS)
            return base64.b64decode(out["data"])
        except Exception:
            _DEVTOOLS.pop(page, None)  # the session went away with a navigation: once more, on a new one
            if attempt:
                raise
    raise AssertionError("unreachable")


def _browser_version(page: Any) -> str:
    try:
        return page.context.browser.version
    except Exception:
        return "unknown"


def capture_info(options: dict[str, Any], executable: str | None) -> dict[str, str]:
    """Extra warcinfo fields describing the capture setup."""
    return {"browser": chromium_version(executable) if executable else "none",
            "browser-args": " ".join(CHROMIUM_ARGS) if executable else "",
            "settings": json.dumps(options, ensure_ascii=False, default=str, sort_keys=True)}


# -- which pages need the browser without --render ------------------------------------------------
_PLACEHOLDERS = ("加载中", "正在加载", "载入中", "请稍候", "loading", "请开启javascript", "请启用javascript",
                 "enable javascript", "javascript is required", "需要javascript")


def looks_script_built(html: str, visible_text: str) -> bool:
    """A page whose words are built by script: scripts present and almost no text, or a loading
    placeholder / JavaScript notice standing in for the content."""
    lower = html.lower()
    if "<script" not in lower:
        return False
    chars = sum(not c.isspace() for c in visible_text)
    if chars < 40:
        return True
    text = visible_text.lower()
    return chars < 300 and any(p in text for p in _PLACEHOLDERS)
