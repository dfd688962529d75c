"""robots.txt as RFC 9309 reads it (§2.3.1): Scrapy's middleware parses whatever body comes back,
so a robots.txt answering 500 or 503 (an HTML error page) counted as "allow everything".

- 2xx: the file's rules.
- 4xx (and a redirect that leads nowhere): "unavailable" — everything is allowed.
- 5xx, or no answer at all (timeout, reset, refused): "unreachable" — everything on that host is
  disallowed for the rest of the scan (after Scrapy's one retry), and every page refused this way
  is recorded with the reason (``robots_unreachable``). The next scan asks again: the host opens
  up as soon as its robots.txt answers.
"""

from __future__ import annotations

from typing import Any

from scrapy import Request
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Response

from crawler.failures import describe

UNREACHABLE = "robots.txt unreachable"


class Unreachable:
    """The verdict for a host whose robots.txt did not answer: nothing is allowed."""

    def __init__(self, why: str) -> None:
        self.why = why

    def allowed(self, url: str, user_agent: Any) -> bool:
        return False


class RobotsPolicy(RobotsTxtMiddleware):
    def process_request_2(self, rp: Any, request: Request) -> None:
        if isinstance(rp, Unreachable):
            self._stats.inc_value("robotstxt/forbidden")
            raise IgnoreRequest(f"{UNREACHABLE} ({rp.why}): RFC 9309 treats the whole site as "
                                "disallowed until robots.txt answers again")
        super().process_request_2(rp, request)

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        if 200 <= response.status < 300:
            return await super()._parse_robots(response, netloc, request)
        if response.status >= 500:
            return self._settle(netloc, Unreachable(f"HTTP {response.status}"))
        # 4xx, or a redirect not followed: no rules at all
        return await super()._parse_robots(response.replace(body=b""), netloc, request)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if isinstance(exc, IgnoreRequest):  # refused by a guard or too many redirects: no rules
            return super()._robots_error(exc, netloc)
        self._stats.inc_value(f"robotstxt/exception_count/{type(exc)}")
        self._settle(netloc, Unreachable(describe(exc)[1]))

    def _settle(self, netloc: str, verdict: Unreachable) -> None:
        waiting = self._parsers[netloc]
        self._parsers[netloc] = verdict  # type: ignore[assignment]
        waiting.callback(verdict)  # type: ignore[union-attr]
