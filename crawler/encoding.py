"""Decode page bytes the way a Chinese site means them.

Order: a BOM; the charset the server declared; the charset the page declares in ``<meta>``; strict
UTF-8; strict GB18030 (a superset of GBK and GB2312); charset detection restricted to the
encodings Chinese sites use; lossy UTF-8 as the last resort. A declaration that does not decode
strictly is not trusted (sites often send GBK labelled as UTF-8). GBK/GB2312 labels are read as
GB18030, which decodes everything they do and more.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.I)
_SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030", "gb_2312-80": "gb18030", "ascii": "utf-8",
              "iso8859-1": "cp1252", "latin-1": "cp1252", "big5": "big5hkscs"}
_CANDIDATES = ["utf_8", "gb18030", "big5hkscs", "cp1252"]


@dataclass(frozen=True, slots=True)
class Decoded:
    text: str
    encoding: str
    how: str  # bom | header | meta | utf-8 | gb18030 | detected | lossy


def _canonical(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return _SUPERSETS.get(name, name)


def _strict(body: bytes, encoding: str) -> str | None:
    try:
        return body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def header_charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    m = re.search(r"charset\s*=\s*[\"']?([^\s;\"']+)", content_type, re.I)
    return m.group(1) if m else None


def decode_html(body: bytes, content_type: str | None = None) -> Decoded:
    for bom, enc in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if body.startswith(bom):
            text = body[len(bom):].decode(enc, errors="replace")
            return Decoded(text, enc, "bom")
    head = body[:4096]
    meta = _META_CHARSET.search(head)
    for label, how in ((header_charset(content_type), "header"), (meta.group(1).decode("ascii", "ignore") if meta else None, "meta")):
        enc = _canonical(label)
        if enc and (text := _strict(body, enc)) is not None:
            return Decoded(text, enc, how)
    for enc in ("utf-8", "gb18030"):
        if (text := _strict(body, enc)) is not None:
            return Decoded(text, enc, enc)
    best = from_bytes(body[:65536], cp_isolation=_CANDIDATES).best()
    if best is not None:
        enc = _canonical(best.encoding) or best.encoding
        return Decoded(body.decode(enc, errors="replace"), enc, "detected")
    return Decoded(body.decode("utf-8", errors="replace"), "utf-8", "lossy")
