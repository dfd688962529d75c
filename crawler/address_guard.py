"""One private-address check for both ways jianfu fetches: Scrapy's downloader
(``crawler.middlewares.PrivateAddressGuard``) and the browser (``crawler.render.abort_request``).

A host is private when it is, or resolves to, an address that is not globally routable
(loopback, RFC 1918, link-local, carrier-grade NAT, reserved, unspecified). Names are resolved
with the running asyncio loop's ``getaddrinfo``; a name that does not resolve is not blocked: the
fetch itself fails and is recorded with its own reason.

Which hosts are exempt is the caller's business (``ScanContext.exempt_hosts``): only seeds an
investigator typed as a literal address or ``localhost``. A seeded DNS name is checked like any
other host, since the institution controls its own DNS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

RESOLVED_TTL = 60.0   # seconds a host's verdict is reused (a crawl asks once per host, not per request)
_CACHE_MAX = 4096
_cache: dict[str, tuple[float, str | None]] = {}


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_exempt_seed_host(host: str) -> bool:
    """A seeded host the guards let through: a literal IP address or ``localhost``."""
    host = host.lower()
    return host == "localhost" or literal_address(host) is not None


def _private(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1
    return not ip.is_global


async def resolve(host: str) -> list[str]:
    """Every address ``host`` resolves to (raises OSError when it does not)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


async def is_private_host(host: str) -> str | None:
    """Why ``host`` must not be fetched (``"private address: ..."``), or None when it may be."""
    host = (host or "").lower().rstrip(".")
    if not host:
        return None
    ip = literal_address(host)
    if ip is not None:
        return f"private address: {host} is not a seeded host" if _private(ip) else None
    if host == "localhost" or host.endswith(".localhost"):  # loopback by definition (RFC 6761); Chromium
        return f"private address: {host} (loopback) is not a seeded host"  # never asks DNS for these
    now = time.monotonic()
    hit = _cache.get(host)
    if hit and hit[0] > now:
        return hit[1]
    try:
        addresses = await resolve(host)
    except (OSError, UnicodeError, ValueError):  # does not resolve: let the fetch fail and be recorded
        return None
    reason = None
    for addr in addresses:  # any private answer blocks: the client may pick any of them
        found = literal_address(addr)
        if found is not None and _private(found):
            reason = f"private address: {host} ({found}) is not a seeded host"
            break
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[host] = (now + RESOLVED_TTL, reason)
    return reason
