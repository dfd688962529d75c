"""A download handler that is plain HTTP until a request asks for the browser.

jianfu installs a browser-capable handler whenever Chromium is present, because any page may turn
out to be script-built and need rendering. scrapy-playwright's handler imports Playwright and
starts its Node driver as the engine starts, which cost every plain scan about two seconds. This
handler serves plain requests with Scrapy's HTTP/1.1 handler and creates the scrapy-playwright
handler (and so Playwright and Chromium) with the first request whose meta says ``playwright``.
A rendered request gets its browser context and page here, when its download starts
(``jianfu_take_page``), not while it waits behind the per-site limits.
"""

from __future__ import annotations

import asyncio
from typing import Any

from scrapy import Request
from scrapy.core.downloader.handlers.http11 import HTTP11DownloadHandler
from scrapy.crawler import Crawler
from scrapy.http import Response


class LazyPlaywrightHandler(HTTP11DownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler=crawler)
        self._crawler = crawler
        self._browser: Any = None
        self._start_lock = asyncio.Lock()

    async def download_request(self, request: Request) -> Response:
        if not request.meta.get("playwright"):
            return await super().download_request(request)
        async with self._start_lock:
            if self._browser is None:
                from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

                handler = ScrapyPlaywrightDownloadHandler(self._crawler)
                launch = getattr(handler, "_launch", None)  # what it would have done at engine start
                if launch is None:
                    raise RuntimeError("this scrapy-playwright has no _launch(); jianfu's lazy browser "
                                       "start needs scrapy-playwright 0.0.4x (see pyproject.toml)")
                await launch()
                self._browser = handler
        take_page = request.meta.pop("jianfu_take_page", None)  # crawler.render.RenderMiddleware.take_page
        if take_page is not None:
            await take_page(request)
        return await self._browser.download_request(request)

    async def close(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        await super().close()
