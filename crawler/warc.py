"""The archive: every response jianfu receives, written as WARC request/response pairs.

One gzip WARC file per scan under ``<store>/warc/``; each record is its own gzip member, so
``(file, offset)`` addresses it for replay and evidence. Bodies are kept as received (still
content-encoded); ``Transfer-Encoding`` is dropped because the body is already de-chunked.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from jianfu import __version__

_HOP_BY_HOP = {"transfer-encoding", "connection", "keep-alive"}


class WarcWriter:
    """``info`` (the warcinfo record's fields) may be a function: the file is then started — its
    warcinfo record first — when the first record is written (or at ``close``), so a scan need not
    wait for slow facts (e.g. asking Chromium its version) before it starts crawling."""

    def __init__(self, directory: Path, scan_id: str, info: dict[str, str] | Callable[[], dict[str, str]]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = f"{scan_id}.warc.gz"
        self.path = directory / self.name
        self.scan_id = scan_id
        self._info = info
        self._fh: BinaryIO | None = None
        self._writer: WARCWriter | None = None
        self._closed = False
        if not callable(info):
            self._start()

    def _start(self) -> tuple[BinaryIO, WARCWriter]:
        """The open file and its writer, the file started with its warcinfo record."""
        if self._fh is None or self._writer is None:
            info = self._info() if callable(self._info) else self._info
            fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
            writer = WARCWriter(fh, gzip=True)
            fields = {"software": f"jianfu/{__version__}", "format": "WARC File Format 1.1",
                      "isPartOf": self.scan_id, **info}
            writer.write_record(writer.create_warcinfo_record(self.name, fields))
            fh.flush()
            self._fh, self._writer = fh, writer
        return self._fh, self._writer

    def write_exchange(self, url: str, method: str, request_headers: list[tuple[str, str]],
                       status: int, reason: str, protocol: str, response_headers: list[tuple[str, str]],
                       body: bytes, ip: str | None = None) -> int:
        """Write a response record and its request; returns the response record's offset."""
        fh, writer = self._start()
        offset = fh.tell()
        headers = [(k, v) for k, v in response_headers if k.lower() not in _HOP_BY_HOP]
        http = StatusAndHeaders(f"{status} {reason}".strip(), headers, protocol=protocol or "HTTP/1.1")
        warc_headers = {"WARC-IP-Address": ip} if ip else {}
        # lengths given: warcio then digests the bytes once, without spooling them to a temporary file
        resp = writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                               http_headers=http, warc_headers_dict=warc_headers)
        writer.write_record(resp)
        split = urlsplit(url)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
        req_http = StatusAndHeaders(f"{method} {path} HTTP/1.1", [("Host", split.netloc), *request_headers],
                                    is_http_request=True)
        req = writer.create_warc_record(
            url, "request", payload=io.BytesIO(b""), length=0, http_headers=req_http,
            warc_headers_dict={"WARC-Concurrent-To": resp.rec_headers.get_header("WARC-Record-ID")},
        )
        writer.write_record(req)
        fh.flush()
        return offset

    def write_resource(self, uri: str, content_type: str, data: bytes,
                       metadata: dict[str, str] | None = None) -> int:
        """A resource record (e.g. a screenshot as ``urn:view:<url>``); returns its offset."""
        fh, writer = self._start()
        offset = fh.tell()
        headers = {"Content-Type": content_type, **(metadata or {})}
        rec = writer.create_warc_record(uri, "resource", payload=io.BytesIO(data), length=len(data),
                                              warc_content_type=content_type, warc_headers_dict=headers)
        writer.write_record(rec)
        fh.flush()
        return offset

    def write_metadata(self, uri: str, info: dict, refers_to: str | None = None) -> int:
        """A metadata record (JSON, e.g. how a page was captured); returns its offset."""
        import json

        fh, writer = self._start()
        offset = fh.tell()
        headers = {"WARC-Refers-To": refers_to} if refers_to else {}
        data = json.dumps(info, ensure_ascii=False, default=str, sort_keys=True).encode("utf-8")
        rec = writer.create_warc_record(uri, "metadata", payload=io.BytesIO(data), length=len(data),
                                              warc_content_type="application/json", warc_headers_dict=headers)
        writer.write_record(rec)
        fh.flush()
        return offset

    def close(self) -> None:
        if self._closed:
            return
        fh, _ = self._start()  # a scan that fetched nothing still has its warcinfo record
        fh.close()
        self._closed = True


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
