"""Name why a fetch failed, in words an investigator can read in the scan summary."""

from __future__ import annotations

from scrapy.exceptions import IgnoreRequest
from twisted.internet import defer, error
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived

_TRANSPORT: list[tuple[tuple[type[BaseException], ...], str, str]] = [
    ((error.DNSLookupError,), "dns", "host name does not resolve"),
    ((error.ConnectionRefusedError,), "refused", "connection refused"),
    ((error.TimeoutError, error.TCPTimedOutError, defer.TimeoutError, TimeoutError), "timeout",
     "no answer within the download timeout"),
    ((error.ConnectionLost, error.ConnectionDone, ResponseFailed, ResponseNeverReceived,
      ConnectionResetError), "connection_lost", "server closed or reset the connection"),
    ((defer.CancelledError,), "too_large", "response larger than the download size limit"),
]


def describe(exc: BaseException) -> tuple[str, str]:
    """``(error, reason)`` for an exception seen while fetching."""
    if isinstance(exc, IgnoreRequest):
        text = str(exc) or "request ignored"
        if "robots.txt" in text:
            return "robots", "disallowed by robots.txt"
        if "larger than" in text or "max size" in text.lower():
            return "too_large", text
        if text.startswith("private address"):
            return "private_address", text
        return "ignored", text
    for classes, code, reason in _TRANSPORT:
        if isinstance(exc, classes):
            detail = str(exc).strip()
            return code, f"{reason} ({detail})" if detail and len(detail) < 200 else reason
    return type(exc).__name__.lower(), (str(exc) or type(exc).__name__)[:300]
