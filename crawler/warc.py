"""The archive: every response jianfu receives, written as WARC request/response pairs.

One gzip WARC file per scan under ``<store>/warc/``; each record is its own gzip member, so
``(file, offset)`` addresses it for replay and evidence. Bodies are kept as received (still
content-encoded); ``Transfer-Encoding`` is dropped because the body is already de-chunked.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from jianfu import __version__

_HOP_BY_HOP = {"transfer-encoding", "connection", "keep-alive"}


class WarcWriter:
    def __init__(self, directory: Path, scan_id: str, info: dict[str, str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.name = f"{scan_id}.warc.gz"
        self.path = directory / self.name
        self._fh = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        self._writer = WARCWriter(self._fh, gzip=True)
        fields = {"software": f"jianfu/{__version__}", "format": "WARC File Format 1.1",
                  "isPartOf": scan_id, **info}
        record = self._writer.create_warcinfo_record(self.name, fields)
        self._writer.write_record(record)
        self._fh.flush()

    def write_exchange(self, url: str, method: str, request_headers: list[tuple[str, str]],
                       status: int, reason: str, protocol: str, response_headers: list[tuple[str, str]],
                       body: bytes, ip: str | None = None) -> int:
        """Write a response record and its request; returns the response record's offset."""
        offset = self._fh.tell()
        headers = [(k, v) for k, v in response_headers if k.lower() not in _HOP_BY_HOP]
        http = StatusAndHeaders(f"{status} {reason}".strip(), headers, protocol=protocol or "HTTP/1.1")
        warc_headers = {"WARC-IP-Address": ip} if ip else {}
        # lengths given: warcio then digests the bytes once, without spooling them to a temporary file
        resp = self._writer.create_warc_record(url, "response", payload=io.BytesIO(body), length=len(body),
                                               http_headers=http, warc_headers_dict=warc_headers)
        self._writer.write_record(resp)
        split = urlsplit(url)
        path = (split.path or "/") + (f"?{split.query}" if split.query else "")
        req_http = StatusAndHeaders(f"{method} {path} HTTP/1.1", [("Host", split.netloc), *request_headers],
                                    is_http_request=True)
        req = self._writer.create_warc_record(
            url, "request", payload=io.BytesIO(b""), length=0, http_headers=req_http,
            warc_headers_dict={"WARC-Concurrent-To": resp.rec_headers.get_header("WARC-Record-ID")},
        )
        self._writer.write_record(req)
        self._fh.flush()
        return offset

    def write_resource(self, uri: str, content_type: str, data: bytes,
                       metadata: dict[str, str] | None = None) -> int:
        """A resource record (e.g. a screenshot as ``urn:view:<url>``); returns its offset."""
        offset = self._fh.tell()
        headers = {"Content-Type": content_type, **(metadata or {})}
        rec = self._writer.create_warc_record(uri, "resource", payload=io.BytesIO(data), length=len(data),
                                              warc_content_type=content_type, warc_headers_dict=headers)
        self._writer.write_record(rec)
        self._fh.flush()
        return offset

    def write_metadata(self, uri: str, info: dict, refers_to: str | None = None) -> int:
        """A metadata record (JSON, e.g. how a page was captured); returns its offset."""
        import json

        offset = self._fh.tell()
        headers = {"WARC-Refers-To": refers_to} if refers_to else {}
        data = json.dumps(info, ensure_ascii=False, default=str, sort_keys=True).encode("utf-8")
        rec = self._writer.create_warc_record(uri, "metadata", payload=io.BytesIO(data), length=len(data),
                                              warc_content_type="application/json", warc_headers_dict=headers)
        self._writer.write_record(rec)
        self._fh.flush()
        return offset

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
