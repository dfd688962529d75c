"""Name why a fetch failed, in words an investigator can read in the scan summary."""

from __future__ import annotations

from scrapy import exceptions as scrapy_errors
from scrapy.exceptions import IgnoreRequest
from twisted.internet import defer, error
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived


def _scrapy(*names: str) -> tuple[type[BaseException], ...]:
    """Scrapy ≥2.13 wraps transport errors in its own classes; older ones do not have them."""
    return tuple(getattr(scrapy_errors, n) for n in names if hasattr(scrapy_errors, n))


_TRANSPORT: list[tuple[tuple[type[BaseException], ...], str, str]] = [
    ((error.DNSLookupError, *_scrapy("CannotResolveHostError")), "dns", "host name does not resolve"),
    ((error.ConnectionRefusedError, *_scrapy("DownloadConnectionRefusedError")), "refused", "connection refused"),
    ((error.TimeoutError, error.TCPTimedOutError, defer.TimeoutError, TimeoutError,
      *_scrapy("DownloadTimeoutError")), "timeout", "no answer within the download timeout"),
    ((defer.CancelledError, *_scrapy("DownloadCancelledError")), "too_large",
     "response larger than the download size limit"),
    ((error.ConnectionLost, error.ConnectionDone, ResponseFailed, ResponseNeverReceived,
      ConnectionResetError, *_scrapy("ResponseDataLossError", "DownloadFailedError")), "connection_lost",
     "server closed or reset the connection"),
]


def describe(exc: BaseException) -> tuple[str, str]:
    """``(error, reason)`` for an exception seen while fetching."""
    if hasattr(exc, "error") and hasattr(exc, "reason") and isinstance(exc, IgnoreRequest):
        return exc.error, exc.reason  # crawler.render.RenderFailed
    if type(exc).__module__.startswith("playwright"):
        return _browser(exc)
    if isinstance(exc, RuntimeError) and str(exc).startswith("Failed to download"):
        return "download", "the address starts a file download, not a page (the browser did not keep it)"
    if isinstance(exc, IgnoreRequest):
        text = str(exc) or "request ignored"
        if text == "max redirections reached":
            return "too_many_redirects", "too many redirects in a row (more than the crawl's limit of 10)"
        if text.startswith("robots.txt unreachable"):
            return "robots_unreachable", text
        if "robots.txt" in text:
            return "robots", "disallowed by robots.txt"
        if "larger than" in text or "maxsize" in text.lower().replace("_", "").replace(" ", ""):
            return "too_large", text
        if text.startswith("private address"):
            return "private_address", text
        return "ignored", text
    for classes, code, reason in _TRANSPORT:
        if isinstance(exc, classes):
            detail = str(exc).strip()
            readable = detail and len(detail) < 200 and "<twisted" not in detail and "Failure" not in detail
            return code, f"{reason} ({detail})" if readable else reason
    return type(exc).__name__.lower(), (str(exc) or type(exc).__name__)[:300]


def _browser(exc: BaseException) -> tuple[str, str]:
    """Name a Playwright error: timeouts, crashes, closed targets, network errors."""
    text = str(exc).strip()
    first = text.splitlines()[0][:200] if text else type(exc).__name__
    if type(exc).__name__ == "TimeoutError":
        return "render_timeout", f"the browser did not load the page in time ({first})"
    if "crash" in text.lower():
        return "browser_crash", f"the browser crashed while loading the page ({first})"
    if type(exc).__name__ == "TargetClosedError" or "has been closed" in text or "Target closed" in text:
        return "browser_crash", f"the browser or page closed while loading the page ({first})"
    if "net::ERR_" in text:
        code = text.split("net::", 1)[1].split()[0]
        return "browser_network", f"the browser could not load the page ({code})"
    return "browser_error", first
