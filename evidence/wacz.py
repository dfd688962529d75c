"""The WACZ inside a packet: the relevant WARC records copied byte-for-byte from the store's
WARC files, our own pages list (``wacz create --detect-pages`` misses pages), built and checked
with py-wacz (``wacz create -p pages.jsonl``, ``wacz validate``), run in-process.

Records are addressed in the store as (warc file, offset of the response record); each record
is its own gzip member, so a record is copied as the exact bytes of its member(s) and keeps its
digests. Screenshot ``resource`` records (``urn:view:<url>``) found in the scan WARC come along;
a screenshot that exists only as a store blob is added as a new resource record and marked so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter


class WarcError(RuntimeError):
    pass


@dataclass
class RecordRef:
    """One record of a store WARC file."""
    warc_file: str
    offset: int
    length: int
    type: str
    target_uri: str | None
    record_id: str
    date: str
    concurrent_to: str | None = None
    refers_to: str | None = None
    ip: str | None = None
    payload_digest: str | None = None
    content_type: str | None = None


@dataclass
class WarcIndex:
    """Every record of one store WARC file, by offset, by id and by target URI."""
    path: Path
    by_offset: dict[int, RecordRef] = field(default_factory=dict)
    by_id: dict[str, RecordRef] = field(default_factory=dict)
    by_uri: dict[str, list[RecordRef]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> WarcIndex:
        idx = cls(path)
        try:
            with open(path, "rb") as fh:
                it = ArchiveIterator(fh, check_digests=False)
                for rec in it:
                    h = rec.rec_headers
                    rec.raw_stream.read()
                    ref = RecordRef(
                        warc_file=path.name, offset=it.get_record_offset(), length=0, type=rec.rec_type,
                        target_uri=h.get_header("WARC-Target-URI"), record_id=h.get_header("WARC-Record-ID"),
                        date=h.get_header("WARC-Date"), concurrent_to=h.get_header("WARC-Concurrent-To"),
                        refers_to=h.get_header("WARC-Refers-To"), ip=h.get_header("WARC-IP-Address"),
                        payload_digest=h.get_header("WARC-Payload-Digest"),
                        content_type=h.get_header("Content-Type"),
                    )
                    ref.length = it.get_record_length()
                    idx.by_offset[ref.offset] = ref
                    idx.by_id[ref.record_id] = ref
                    if ref.target_uri:
                        idx.by_uri.setdefault(ref.target_uri, []).append(ref)
        except OSError as e:
            raise WarcError(f"cannot read WARC file {path}: {e}") from e
        except Exception as e:  # warcio raises a variety of parse errors on a damaged file
            raise WarcError(f"WARC file {path} is damaged: {type(e).__name__}: {e}") from e
        return idx

    def warcinfo(self) -> RecordRef | None:
        return next((r for r in self.by_offset.values() if r.type == "warcinfo"), None)

    def companions(self, ref: RecordRef) -> list[RecordRef]:
        """The request written with a response (WARC-Concurrent-To) and records referring to it."""
        return [r for r in self.by_offset.values()
                if r is not ref and (r.concurrent_to == ref.record_id or r.refers_to == ref.record_id)]

    def raw(self, ref: RecordRef) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(ref.offset)
            data = fh.read(ref.length)
        if len(data) != ref.length:
            raise WarcError(f"{self.path.name}: record at {ref.offset} is truncated")
        return data


def resource_record(uri: str, content_type: str, data: bytes, headers: dict[str, str]) -> bytes:
    """A new gzip-member resource record (for a screenshot kept only as a store blob)."""
    buf = io.BytesIO()
    writer = WARCWriter(buf, gzip=True)
    rec = writer.create_warc_record(uri, "resource", payload=io.BytesIO(data), warc_content_type=content_type,
                                    warc_headers_dict=headers)
    writer.write_record(rec)
    return buf.getvalue()


def read_payload(raw: bytes) -> bytes:
    """The HTTP payload (content-decoded) of one raw response/resource record."""
    for rec in ArchiveIterator(io.BytesIO(raw)):
        return rec.content_stream().read()
    return b""


def build_wacz(warc_path: Path, pages: list[dict], out: Path, title: str, desc: str) -> None:
    """``wacz create`` with our pages list; raises WarcError with wacz's message on failure."""
    pages_file = out.with_name("pages.jsonl")
    lines = [{"format": "json-pages-1.0", "id": "pages", "title": title}, *pages]
    pages_file.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in lines), encoding="utf-8")
    try:
        rc, msg = _wacz("create", "-o", str(out), "-p", str(pages_file), "--title", title, "--desc", desc,
                        str(warc_path))
    finally:
        pages_file.unlink(missing_ok=True)
    if rc != 0 or not out.is_file():
        tail = msg.strip().splitlines()[-3:]
        raise WarcError(f"wacz create failed: {' / '.join(tail)}")


def validate_wacz(path: Path) -> tuple[bool, str]:
    """``wacz validate -f PATH``; returns (ok, wacz's last message line)."""
    rc, out = _wacz("validate", "-f", str(path))
    lines = out.strip().splitlines()
    return rc == 0, (lines[-1] if lines else "")


def _wacz(*args: str) -> tuple[int, str]:
    """Run py-wacz's command line in this process (its import dominates a subprocess's cost)."""
    from wacz.main import main

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            rc = main(list(args))
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except Exception as e:  # py-wacz raises plain exceptions on bad input
        return 1, f"{buf.getvalue()}\n{type(e).__name__}: {e}"
    return int(rc or 0), buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
