"""Trusted timestamps (RFC 3161) for the packet manifest.

When a timestamp authority is configured (``jianfu export --tsa-url URL`` or ``JIANFU_TSA_URL``),
the SHA-256 of ``manifest.json`` is sent as a ``TimeStampReq`` (with a nonce, certReq=true) by
HTTP POST (``application/timestamp-query``); the whole ``TimeStampResp`` is stored as
``manifest.tsr`` — the file ``openssl ts -reply -in manifest.tsr -text`` reads and
``openssl ts -verify -data manifest.json -in manifest.tsr -CAfile tsa.pem`` checks against the
TSA's certificate. jianfu itself checks the response's status, that its message imprint is the
manifest's SHA-256 and that the nonce is ours; checking the TSA's CMS signature needs the TSA's
certificate chain and is left to ``openssl ts -verify`` (docs/evidence.md).

Nothing is sent anywhere unless a URL is configured. A tiny DER encoder/decoder is enough for
these structures. (The tests' stub TSA builds its replies in tests/test_evidence.py.)
"""

from __future__ import annotations

import os
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime

SHA256_OID = "2.16.840.1.101.3.4.2.1"
SIGNED_DATA_OID = "1.2.840.113549.1.7.2"
TST_INFO_OID = "1.2.840.113549.1.9.16.1.4"
ENV_URL = "JIANFU_TSA_URL"


class TimestampError(RuntimeError):
    pass


# -- DER ------------------------------------------------------------------------------------
def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _len(len(content)) + content


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(n: int) -> bytes:
    b = n.to_bytes(max(1, (n.bit_length() + 8) // 8), "big", signed=True)
    return tlv(0x02, b)


def oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


NULL = b"\x05\x00"
TRUE = b"\x01\x01\xff"


@dataclass
class Node:
    tag: int
    body: bytes
    raw: bytes

    def children(self) -> list[Node]:
        return parse_all(self.body)

    def int(self) -> int:
        if self.tag != 0x02:
            raise TimestampError(f"expected INTEGER, found tag {self.tag:#x}")
        return int.from_bytes(self.body, "big", signed=True)

    def oid(self) -> str:
        if self.tag != 0x06:
            raise TimestampError(f"expected OID, found tag {self.tag:#x}")
        vals, n = [], 0
        for byte in self.body:
            n = (n << 7) | (byte & 0x7F)
            if not byte & 0x80:
                vals.append(n)
                n = 0
        first = vals[0]
        head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
        return ".".join(str(v) for v in head + vals[1:])


def parse_one(data: bytes, pos: int = 0) -> tuple[Node, int]:
    try:
        tag = data[pos]
        ln = data[pos + 1]
        p = pos + 2
        if ln & 0x80:
            k = ln & 0x7F
            if k == 0 or k > 4:
                raise TimestampError("unsupported DER length")
            ln = int.from_bytes(data[p:p + k], "big")
            p += k
        end = p + ln
        if end > len(data):
            raise TimestampError("DER value runs past the end of the data (truncated)")
        return Node(tag, data[p:end], data[pos:end]), end
    except IndexError:
        raise TimestampError("DER data is truncated") from None


def parse_all(data: bytes) -> list[Node]:
    out, pos = [], 0
    while pos < len(data):
        node, pos = parse_one(data, pos)
        out.append(node)
    return out


def parse_der(data: bytes) -> Node:
    node, end = parse_one(data)
    if end != len(data):
        raise TimestampError("trailing bytes after the DER structure")
    return node


# -- RFC 3161 -------------------------------------------------------------------------------
def build_request(digest: bytes, nonce: int) -> bytes:
    """TimeStampReq { version 1, messageImprint {sha256, digest}, nonce, certReq TRUE }."""
    if len(digest) != 32:
        raise ValueError("a SHA-256 digest is 32 bytes")
    imprint = seq(seq(oid(SHA256_OID), NULL), octets(digest))
    return seq(integer(1), imprint, integer(nonce), TRUE)


@dataclass
class TokenInfo:
    status: int
    policy: str
    serial: int
    gen_time: str
    digest: bytes
    nonce: int | None


def read_response(data: bytes) -> TokenInfo:
    """Parse a TimeStampResp down to its TSTInfo (no CMS signature check — see module doc)."""
    resp = parse_der(data)
    if resp.tag != 0x30:
        raise TimestampError("not a TimeStampResp")
    parts = resp.children()
    status = parts[0].children()[0].int()
    if status not in (0, 1):
        raise TimestampError(f"the TSA refused the request (PKIStatus {status})")
    if len(parts) < 2:
        raise TimestampError("the TSA response carries no token")
    content_info = parts[1].children()
    if content_info[0].oid() != SIGNED_DATA_OID:
        raise TimestampError("token is not CMS SignedData")
    signed = content_info[1].children()[0].children()
    encap = signed[2].children()
    if encap[0].oid() != TST_INFO_OID:
        raise TimestampError("token does not hold a TSTInfo")
    tst = parse_der(encap[1].children()[0].body).children()
    imprint = tst[2].children()
    if imprint[0].children()[0].oid() != SHA256_OID:
        raise TimestampError("token's message imprint is not SHA-256")
    nonce = None
    for node in tst[5:]:
        if node.tag == 0x02:
            nonce = node.int()
            break
    gen = tst[4].body.decode("ascii", "replace")
    return TokenInfo(status=status, policy=tst[1].oid(), serial=tst[3].int(), gen_time=_gen_time(gen),
                     digest=imprint[1].body, nonce=nonce)


def check(data: bytes, digest: bytes, nonce: int | None = None) -> TokenInfo:
    info = read_response(data)
    if info.digest != digest:
        raise TimestampError("timestamp token is for a different manifest (message imprint differs)")
    if nonce is not None and info.nonce != nonce:
        raise TimestampError("timestamp token's nonce is not the one we sent")
    return info


def stamp(url: str, digest: bytes, timeout: float = 30) -> bytes:
    """POST a request for ``digest`` to the TSA at ``url``; returns the checked TimeStampResp."""
    if not url.startswith(("http://", "https://")):
        raise TimestampError(f"TSA URL must be http(s): {url!r}")
    nonce = secrets.randbits(63)
    req = urllib.request.Request(url, data=build_request(digest, nonce), method="POST",
                                 headers={"Content-Type": "application/timestamp-query",
                                          "Accept": "application/timestamp-reply"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 - configured URL only
            body = r.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise TimestampError(f"cannot reach TSA {url}: {getattr(e, 'reason', e)}") from e
    check(body, digest, nonce)
    return body


def configured_url(cli_value: str | None) -> str | None:
    return cli_value or os.environ.get(ENV_URL) or None


def _gen_time(s: str) -> str:
    try:
        t = datetime.strptime(s.rstrip("Z").split(".")[0], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        return t.isoformat().replace("+00:00", "Z")
    except ValueError:
        return s
