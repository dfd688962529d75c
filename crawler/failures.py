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
    if isinstance(exc, IgnoreRequest):
        text = str(exc) or "request ignored"
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
