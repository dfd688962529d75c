"""scrapy-playwright's download handler, started on first use.

The stock handler starts Playwright (a Node driver) when the engine starts. jianfu installs the
handler whenever Chromium is present, because any page may turn out to be script-built and need
the browser; starting Playwright eagerly cost every plain scan about two seconds. This handler
starts it with the first request that asks for the browser; plain HTTP requests never touch it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from scrapy.crawler import Crawler
from scrapy.http import Response
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler
from twisted.internet import defer


class LazyPlaywrightHandler(ScrapyPlaywrightDownloadHandler):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self._start_lock = asyncio.Lock()

    async def _maybe_launch_in_thread(self) -> None:  # engine_started (Scrapy's async API)
        return None

    def _engine_started(self) -> defer.Deferred:  # engine_started (older Scrapy)
        return defer.succeed(None)

    async def _download_request(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        async with self._start_lock:
            if getattr(self, "browser_provider", None) is None:
                await self._launch()
        return await super()._download_request(request, *args, **kwargs)
