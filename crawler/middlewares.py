"""Downloader middlewares: *how* jianfu fetches.

- ``PrivateAddressGuard`` refuses requests to hosts that are, or resolve to, loopback, private,
  link-local or reserved addresses unless the investigator seeded that host as a literal address or
  ``localhost`` (a hostile page, or an institution's own DNS, cannot steer the crawler into an
  internal network). The browser applies the same check
  (``crawler.address_guard.is_private_host``) in ``crawler.render.abort_request``.
- ``CaptureMiddleware`` sits next to the downloader: it writes every raw response to the WARC
  and every fetch, successful or not, to the store with its status, headers, time and IP.
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from scrapy import Request
from scrapy.crawler import Crawler
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from crawler.address_guard import is_private_host
from crawler.context import ScanContext, context_of
from crawler.failures import describe


def request_kind(request: Request) -> str:
    if urlsplit(request.url).path == "/robots.txt":
        return "robots"
    return request.meta.get("jianfu_kind", "page")


class PrivateAddressGuard:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateAddressGuard:
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        host = (urlsplit(request.url).hostname or "").lower()
        ctx = context_of(self.crawler)
        if not host or host in ctx.exempt_hosts:
            return None
        why = await is_private_host(host)
        if why:
            raise IgnoreRequest(why)
        return None


class CaptureMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CaptureMiddleware:
        return cls(crawler)

    @property
    def ctx(self) -> ScanContext:
        return context_of(self.crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if "playwright" in response.flags:
            return response  # the browser's own traffic was archived by crawler.render's recorder
        ctx = self.ctx
        ip = str(response.ip_address) if response.ip_address else None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in response.headers.items() for v in vs]
        req_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, vs in request.headers.items() for v in vs]
        reason = _reason(response.status)
        offset = ctx.warc.write_exchange(
            response.url, request.method, req_headers, response.status, reason,
            response.protocol or "HTTP/1.1", headers, response.body, ip,
        )
        kind = request_kind(request)
        missing_robots = kind == "robots" and response.status in (404, 410)  # no robots.txt: all allowed
        error = f"http_{response.status}" if response.status >= 400 and not missing_robots else None
        why = f"HTTP {response.status} {reason}" if error else None
        if 300 <= response.status < 400 and b"Location" in response.headers:
            location = response.headers[b"Location"].decode("latin-1")
            why = f"redirect to {location}"
            if urlsplit(urljoin(response.url, location)).scheme.lower() not in ("http", "https"):
                error, why = "redirect_refused", f"redirect to a non-web address, not followed: {location[:500]}"
        elif 300 <= response.status < 400 and response.status != 304:
            error, why = f"http_{response.status}", f"HTTP {response.status} {reason} without a Location header"
        fetch_id = ctx.store.record_fetch(
            ctx.scan_id, response.url, kind=kind, status=response.status,
            headers=dict(headers), elapsed_ms=round(request.meta.get("download_latency", 0) * 1000, 1),
            ip=ip, error=error, reason=why, warc_file=ctx.warc.name, warc_offset=offset,
        )
        request.meta["jianfu_fetch_id"] = fetch_id
        request.meta["jianfu_warc"] = (ctx.warc.name, offset)
        ctx.stats["fetches"] += 1
        if error:
            ctx.stats["errors"] += 1
        return response

    def process_exception(self, request: Request, exception: Exception) -> None:
        if isinstance(exception, IgnoreRequest):
            return None  # recorded by the spider's errback
        ctx = self.ctx
        error, reason = describe(exception)
        request.meta["jianfu_fetch_id"] = ctx.store.record_fetch(
            ctx.scan_id, request.url, kind=request_kind(request), error=error, reason=reason,
            elapsed_ms=round(request.meta.get("download_latency", 0) * 1000, 1) or None,
        )
        ctx.stats["errors"] += 1
        return None


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
