"""The WARC writer: request/response pairs, resource and metadata records, addressable by offset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from crawler.warc import WarcWriter


def test_records_check_clean_and_offsets_address_them(tmp_path):
    w = WarcWriter(tmp_path, "scan1", {"operator": "jianfu", "settings": json.dumps({"render": True})})
    resp = w.write_exchange("http://127.0.0.1:1/a.html", "GET", [("User-Agent", "jianfu")], 200, "OK", "HTTP/1.1",
                            [("Content-Type", "text/html"), ("Transfer-Encoding", "chunked")], "幼小衔接".encode(),
                            "127.0.0.1")
    shot = w.write_resource("urn:view:http://127.0.0.1:1/a.html", "image/png", b"\x89PNG fake",
                            {"WARC-Refers-To-Target-URI": "http://127.0.0.1:1/a.html"})
    meta = w.write_metadata("urn:capture:http://127.0.0.1:1/a.html", {"captured_at": "2026-01-01T00:00:00Z"})
    w.close()
    check = subprocess.run([str(Path(sys.executable).with_name("warcio")), "check", str(w.path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with open(w.path, "rb") as fh:
        it = ArchiveIterator(fh)
        recs = {}
        for r in it:
            body = r.content_stream().read()  # read before asking for the offset
            recs[it.get_record_offset()] = (r.rec_type, r.rec_headers, body)
    assert recs[resp][0] == "response" and recs[resp][1].get_header("WARC-IP-Address") == "127.0.0.1"
    assert recs[resp][2] == "幼小衔接".encode()
    assert recs[shot][0] == "resource" and recs[shot][2] == b"\x89PNG fake"
    assert recs[meta][0] == "metadata" and json.loads(recs[meta][2])["captured_at"].endswith("Z")
    types = [t for t, _, _ in recs.values()]
    assert types == ["warcinfo", "response", "request", "resource", "metadata"]
    assert b"render" in recs[0][2]
