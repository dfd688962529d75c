"""Where every redirect ends, so that no URL the crawl touched is dropped without a word.

Scrapy follows HTTP redirects and ``<meta http-equiv=refresh>`` by scheduling a new request; when
that request's URL was already requested in the scan, the scheduler's duplicate filter drops it
silently. This extension records what happened on the fetch of the last hop:

- a redirect (or meta refresh) back to a URL of its own chain: error ``redirect_loop``, with the
  chain as the reason;
- a redirect to a URL the scan already requested: a note (not an error) naming it — that URL is
  captured, or listed as a failure, under its own name;
- a page that answers with a meta refresh: a note naming the target (the target is the page
  captured, as a browser would show it).

A redirect to a non-web address (``file:``, ``ftp:``) is marked by ``CaptureMiddleware``
(``redirect_refused``); more than ``REDIRECT_MAX_TIMES`` hops is ``too_many_redirects``
(``crawler.failures``).
"""

from __future__ import annotations

from scrapy import Request, signals
from scrapy.crawler import Crawler
from w3lib.url import canonicalize_url

from crawler.context import context_of


class RedirectOutcomes:
    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        crawler.signals.connect(self.scheduled, signal=signals.request_scheduled)
        crawler.signals.connect(self.dropped, signal=signals.request_dropped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedirectOutcomes:
        return cls(crawler)

    def scheduled(self, request: Request, spider: object) -> None:
        reasons = request.meta.get("redirect_reasons")
        hop = request.meta.get("jianfu_fetch_id")  # still the fetch that sent us here
        if reasons and reasons[-1] == "meta refresh" and hop:
            context_of(self.crawler).store.note_fetch(hop, f"meta refresh to {request.url[:500]}")

    def dropped(self, request: Request, spider: object) -> None:
        chain = request.meta.get("redirect_urls")
        hop = request.meta.get("jianfu_fetch_id")
        if not chain or not hop:
            return  # the spider's own requests are de-duplicated before they are made
        ctx = context_of(self.crawler)
        how = "meta refresh" if request.meta.get("redirect_reasons", [None])[-1] == "meta refresh" else "redirect"
        if canonicalize_url(request.url) in {canonicalize_url(u) for u in chain}:
            path = " → ".join([*chain, request.url])
            ctx.store.mark_fetch_error(hop, "redirect_loop", f"{how} loop: {path}"[:1000])
            ctx.stats["errors"] += 1
        else:
            ctx.store.note_fetch(hop, f"{how} to {request.url[:500]}, which this scan had already "
                                      "requested (captured or listed under that address)")
