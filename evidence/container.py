"""The packet container: a canonical, uncompressed ZIP.

Every entry is STORED (no compression: the big members — WACZ, PNG, PDF — are compressed
already) with fixed metadata, in a fixed order, no extra fields, no comment. Because the layout
is a pure function of (names, contents), ``verify`` rebuilds the expected bytes and compares
them with the file: a byte flipped anywhere — in a file, a header, the central directory — is
caught, not only in the files the manifest hashes. Any ZIP tool can still open the packet.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

_DOS_TIME = 0            # 00:00:00
_DOS_DATE = (0 << 9) | (1 << 5) | 1   # 1980-01-01
_VERSION = 20
_FLAGS = 0x0800          # names are UTF-8
_EXT_ATTR = (0o100644 << 16)
_MAX = 0xFFFFFFFF - 1


class ContainerError(RuntimeError):
    pass


def build(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """The canonical ZIP bytes of ``entries`` (name, data), in the given order."""
    out = bytearray()
    central = bytearray()
    count = 0
    for name, data in entries:
        nb = name.encode("utf-8")
        crc = zlib.crc32(data) & 0xFFFFFFFF
        offset = len(out)
        if len(data) > _MAX or offset > _MAX:
            raise ContainerError("packet larger than 4 GB is not supported (split the export)")
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, _VERSION, _FLAGS, 0, _DOS_TIME, _DOS_DATE,
                           crc, len(data), len(data), len(nb), 0)
        out += nb
        out += data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, (3 << 8) | _VERSION, _VERSION, _FLAGS, 0,
                               _DOS_TIME, _DOS_DATE, crc, len(data), len(data), len(nb), 0, 0, 0, 0,
                               _EXT_ATTR, offset)
        central += nb
        count += 1
    cd_offset = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, len(central), cd_offset, 0)
    return bytes(out)


def write(path: Path, entries: Iterable[tuple[str, bytes]]) -> int:
    """Write the packet atomically (temp file + rename); returns its size."""
    data = build(entries)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)
