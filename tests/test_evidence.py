"""Evidence packets from a real scan of the demo sites: export, verify, WACZ, PDF, tamper cases."""

from __future__ import annotations

import http.server
import io
import json
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageStat

from evidence import container, timestamp
from evidence.verify import verify, verify_bytes
from tests.conftest import jianfu

BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def scan_id(demo_scan):
    store, summary, _ = demo_scan
    return summary["scan_id"]


@pytest.fixture(scope="session")
def packet(demo_scan, scan_id, tmp_path_factory):
    """The whole demo scan exported once, with its PDF."""
    store = demo_scan[0]
    out = tmp_path_factory.mktemp("packet") / "demo.jfpkt.zip"
    proc = jianfu("export", "--store", str(store), "--scan", scan_id, "--out", str(out), "--examiner", "测试员")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def unpacked(packet, tmp_path_factory):
    d = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(packet) as z:
        z.extractall(d)
    return d


def cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """``jianfu ARGS`` in this process (export/verify need no reactor), for the quick error cases."""
    from jianfu.cli import main
    capsys.readouterr()
    rc = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, rc, out.out, out.err)


def findings_jsonl(store: Path) -> list[dict]:
    proc = jianfu("findings", "--store", str(store), "--format", "jsonl")
    return [json.loads(line) for line in proc.stdout.splitlines()]


# -- the packet ---------------------------------------------------------------------------------
def test_export_verifies(packet, demo_scan):
    """Without --pubkey the packet is only shown self-consistent (INTACT, signer not authenticated);
    with the issuer's key pinned it is VALID."""
    from evidence import signing
    fp = signing.fingerprint(signing.load_public((demo_scan[0] / "keys" / "evidence-ed25519.pub.pem").read_bytes()))
    proc = jianfu("verify", str(packet))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "VERDICT: VALID" not in proc.stdout and "unaltered since export" not in proc.stdout
    assert (f"VERDICT: INTACT — hashes and signature are consistent; signer key {fp} NOT authenticated: "
            "compare it with the issuer's published key or pass --pubkey") in proc.stdout
    assert "no trusted (RFC 3161) timestamp" in proc.stdout
    proc = jianfu("verify", str(packet), "--pubkey", str(demo_scan[0] / "keys" / "evidence-ed25519.pub.pem"),
                  "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verdict"] == "VALID" and doc["valid"] and doc["signer_authenticated"], doc
    proc = jianfu("verify", str(packet), "--pubkey", str(demo_scan[0] / "keys" / "evidence-ed25519.pub.pem"))
    assert f"VERDICT: VALID — signed by {fp} (pinned)" in proc.stdout


def test_wacz_validates_and_holds_pages_records_and_images(unpacked, demo_scan):
    wacz = unpacked / "evidence.wacz"
    proc = subprocess.run([str(BIN / "wacz"), "validate", "-f", str(wacz)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with zipfile.ZipFile(wacz) as z:
        pages = [json.loads(x) for x in z.read("pages/pages.jsonl").decode().splitlines()[1:]]
        warc = z.read("archive/data.warc.gz")
    findings = json.loads((unpacked / "findings.json").read_text())["findings"]
    urls = {p["url"] for p in pages}
    assert {f["page"]["url"] for f in findings} <= urls
    # every pointer in findings.json lands on its record inside the WACZ's WARC
    from warcio.archiveiterator import ArchiveIterator
    for f in findings:
        for name in ("page_response", "page_request", "image_response"):
            ptr = f["records"].get(name)
            if not ptr:
                continue
            rec = next(iter(ArchiveIterator(io.BytesIO(warc[ptr["packet"]["offset"]:]))))
            assert rec.rec_headers.get_header("WARC-Record-ID") == ptr["record_id"]
            raw = warc[ptr["packet"]["offset"]:ptr["packet"]["offset"] + ptr["packet"]["length"]]
            import hashlib
            assert hashlib.sha256(raw).hexdigest() == ptr["record_sha256"]


def test_findings_json_has_what_an_investigator_needs(unpacked, demo_scan, scan_id):
    doc = json.loads((unpacked / "findings.json").read_text())
    store_ids = {f["id"] for f in findings_jsonl(demo_scan[0]) if f["last_scan_id"] == scan_id}
    assert {f["id"] for f in doc["findings"]} == store_ids and store_ids
    for f in doc["findings"]:
        for k in ("category", "category_zh", "rule_id", "text", "context", "score", "basis", "explanation"):
            assert f[k], k
        assert f["text"] in f["context"]
        assert f["page"]["url"].startswith("http://127.0.0.1:")
        assert f["server_ip"] == "127.0.0.1"
        utc, china = f["captured_at"]["utc"], f["captured_at"]["china"]
        h = int(utc[11:13])
        assert china.endswith("(UTC+8)") and int(china[11:13]) == (h + 8) % 24
        assert f["records"]["page_response"]["type"] == "response"
        if f["source"] == "image":
            assert (unpacked / f["files"]["image"]).is_file()
            assert (unpacked / f["files"]["image_ocr_boxes"]).is_file()
            assert (unpacked / f["files"]["highlight"]).is_file()
            assert f["records"]["image_response"]["target_uri"] == f["image_url"]


def test_highlight_marks_the_matched_words(unpacked):
    doc = json.loads((unpacked / "findings.json").read_text())
    f = next(f for f in doc["findings"] if f["source"] == "image" and f["boxes"])
    orig = Image.open(unpacked / f["files"]["image"]).convert("RGB")
    hl = Image.open(unpacked / f["files"]["highlight"]).convert("RGB")
    assert hl.size == orig.size
    (x0, y0), (x1, y1) = f["boxes"][0][0], f["boxes"][0][2]
    edge = (int(x0) - 2, int((y0 + y1) / 2))     # on the drawn outline, left of the box
    assert hl.getpixel(edge) != orig.getpixel(edge)
    far = (orig.width - 1, orig.height - 1) if x1 < orig.width - 20 else (0, orig.height - 1)
    assert hl.getpixel(far) == orig.getpixel(far)


def test_report_pdf_renders_chinese_pages(unpacked, tmp_path):
    html = (unpacked / "report.html").read_text()
    assert "校外培训违规线索证据报告" in html and "未配置可信时间戳服务" in html
    doc = json.loads((unpacked / "findings.json").read_text())
    assert html.count('<section class=case id="c-') == len(doc["cases"])          # one section per case
    assert sorted(i for c in doc["cases"] for i in c["finding_ids"]) == sorted(f["id"] for f in doc["findings"])
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "2", str(unpacked / "report.pdf"),
                    str(tmp_path / "pg")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("pg*.png"))
    assert len(pages) == 2
    img = Image.open(pages[0]).convert("L")
    assert abs(img.width / img.height - 210 / 297) < 0.02           # A4 portrait
    assert ImageStat.Stat(img).stddev[0] > 15                        # not blank
    assert sum(img.histogram()[:128]) > 2000          # real text on it


def test_a_suspected_finding_is_marked_as_such_in_the_report(unpacked):
    """A finding no rule made (the demo's “初三冲刺季” news item, read by the wording model) is marked
    疑似 in the report and keeps its tier in findings.json, so nobody takes it for a rule's verdict."""
    doc = json.loads((unpacked / "findings.json").read_text())
    suspected = [f for f in doc["findings"] if f.get("tier") == "suspected"]
    assert [f["text"] for f in suspected] == ["初三最后一百天，跟着我们的节奏冲刺，目标重点高中"]
    html = (unpacked / "report.html").read_text()
    assert html.count("（疑似，需人工核实）") == len(suspected)
    assert all(f.get("tier") == "rule" for f in doc["findings"] if f not in suspected)


def test_custody_log_runs_from_capture_to_export(unpacked):
    c = json.loads((unpacked / "custody.json").read_text())
    steps = [e["step"] for e in c["events"]]
    for s in ("scan.start", "capture", "detect", "scan.finish", "export.start", "export.warc", "export.wacz",
              "export.findings", "export.report", "export.pdf", "export.seal"):
        assert s in steps, s
    assert steps.index("scan.start") < steps.index("export.start") < steps.index("export.seal")
    assert c["exporter"] == "测试员" and c["tool"].startswith("jianfu ")
    assert next(e for e in c["events"] if e["step"] == "scan.start")["settings"]["max_depth"] == 3


def test_key_is_private_and_public_key_travels(demo_scan, unpacked):
    key = demo_scan[0] / "keys" / "evidence-ed25519.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    pub = (demo_scan[0] / "keys" / "evidence-ed25519.pub.pem").read_bytes()
    assert (unpacked / "public_key.pem").read_bytes() == pub
    # the fingerprint is the full SHA-256 of the raw key, everywhere it is shown
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from evidence import signing
    key = signing.load_public(pub)
    full = hashlib.sha256(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).hexdigest()
    fp = signing.fingerprint(key)
    assert fp.replace(":", "") == full and len(fp.split(":")) == 16
    assert json.loads((unpacked / "manifest.json").read_text())["public_key"]["fingerprint"] == fp
    assert fp in (unpacked / "README.txt").read_text() and fp in (unpacked / "report.html").read_text()


# -- tampering: verify catches every change ---------------------------------------------------------
def _entries(data: bytes) -> list[tuple[str, int, int]]:
    """(name, data offset, size) of each entry of a canonical packet."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for i in z.infolist():
            start = i.header_offset + 30 + len(i.filename.encode())
            out.append((i.filename, start, i.file_size))
    return out


def test_every_flipped_byte_fails(packet):
    data = packet.read_bytes()
    assert verify(packet).ok
    positions: set[int] = set()
    entries = _entries(data)
    for name, start, size in entries:
        positions |= {start, start + size // 3, start + size // 2, start + size - 1}    # in each file
        positions |= {start - 1, start - len(name.encode()) - 16}                      # its local header
    cd = data.rfind(b"PK\x01\x02")
    positions |= {cd + 4, cd + 20, cd + 40, len(data) - 10, len(data) - 1}           # directory, EOCD
    assert len(positions) > 6 * len(entries)
    tampered = packet.with_name("tampered.zip")
    bad = bytearray(data)
    for pos in sorted(positions):
        bad[pos] ^= 0x01
        v = verify_bytes(bytes(bad))
        assert not v.ok, f"flip at {pos} went unnoticed"
        bad[pos] ^= 0x01
    name = next(n for n, s, _ in entries if n == "findings.json")
    bad = bytearray(data)
    start = next(s for n, s, _ in entries if n == name)
    bad[start + 10] ^= 0x20
    tampered.write_bytes(bad)
    proc = jianfu("verify", str(tampered))
    assert proc.returncode == 1 and "findings.json: SHA-256 does not match" in proc.stdout
    assert "VERDICT: INVALID" in proc.stdout


def test_truncated_packets_fail(packet, tmp_path):
    data = packet.read_bytes()
    for cut in (1, 22, 100, len(data) // 2, len(data) - 1000):
        p = tmp_path / f"cut{cut}.zip"
        p.write_bytes(data[:-cut])
        v = verify(p)
        assert not v.ok and v.problems[0], cut
    p = tmp_path / "cut.zip"
    p.write_bytes(data[:1000])
    proc = jianfu("verify", str(p))
    assert proc.returncode == 1 and "truncated or damaged" in proc.stdout
    p.write_bytes(data + b"\0")
    assert not verify(p).ok


def test_added_removed_and_replaced_files_fail(packet, tmp_path):
    data = packet.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = [(i.filename, z.read(i)) for i in z.infolist()]
    p = tmp_path / "x.zip"
    # every file removed in turn
    for i, (name, _) in enumerate(files):
        container.write(p, files[:i] + files[i + 1:])
        v = verify(p)
        assert not v.ok, f"removing {name} went unnoticed"
    # a file added (even a plausible one), or a listed one swapped for a same-size copy
    for extra in ("notes.txt", "highlights/extra.png", "manifest.tsr"):
        container.write(p, [*files, (extra, b"hello")])
        v = verify(p)
        assert not v.ok and any(extra in m or "timestamp" in m for m in v.problems), extra
    swapped = [(n, d if n != "report.html" else d.replace("待复核".encode(), "已确认".encode())) for n, d in files]
    container.write(p, swapped)
    assert not verify(p).ok
    # rebuilt with a normal zip tool (same files): container no longer canonical
    with zipfile.ZipFile(p, "w") as z:
        for n, d in files:
            z.writestr(n, d)
    v = verify(p)
    assert not v.ok and any("ZIP container altered" in m for m in v.problems)


def test_zip_bomb_is_not_inflated(packet, tmp_path):
    """A DEFLATE entry of 200 MB of zeros (≈ 200 kB in the file): verify refuses it without reading it."""
    import tracemalloc
    with zipfile.ZipFile(packet) as z:
        files = [(i.filename, z.read(i)) for i in z.infolist()]
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w") as z:
        for n, d in files:
            z.writestr(n, d)
        info = zipfile.ZipInfo("zeros.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w") as fh:
            chunk = bytes(1 << 20)
            for _ in range(200):
                fh.write(chunk)
    assert bomb.stat().st_size < 5 * packet.stat().st_size
    tracemalloc.start()
    try:
        v = verify(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not v.ok
    assert any("zeros.bin: compressed entry" in m and "not read" in m for m in v.problems), v.problems
    assert peak < 100 << 20, f"verify used {peak >> 20} MB"
    # a STORED entry whose header claims more bytes than the packet holds is refused too
    data = bytearray(packet.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (0x7FFFFFFF).to_bytes(4, "little")     # uncompressed size of the first entry
    v = verify_bytes(bytes(data))
    assert not v.ok and any("more than the whole packet" in m for m in v.problems), v.problems


def test_resigned_packet_is_caught_by_the_pinned_key(packet, demo_scan, tmp_path):
    """Someone edits findings.json, rewrites the manifest and signs with their own key: the packet is
    self-consistent, so verify says which key signed it — and --pubkey pins the issuer's key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from evidence import signing
    from evidence.packet import signed_message
    from evidence.wacz import sha256
    with zipfile.ZipFile(packet) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    files["findings.json"] = files["findings.json"].replace("待复核".encode(), b"x")
    key = Ed25519PrivateKey.generate()
    files["public_key.pem"] = signing.public_pem(key.public_key())
    m = json.loads(files["manifest.json"])
    m["public_key"]["fingerprint"] = signing.fingerprint(key.public_key())
    for f in m["files"]:
        f["sha256"], f["size"] = sha256(files[f["path"]]), len(files[f["path"]])
    files["manifest.json"] = json.dumps(m).encode()
    files["manifest.sig"] = signing.sign(key, signed_message(files["manifest.json"], None))
    p = tmp_path / "forged.zip"
    container.write(p, list(files.items()))
    v = verify(p)
    assert v.ok and v.verdict == "INTACT"     # self-consistent, and says no more than that…
    assert v.signer == signing.fingerprint(key.public_key()) and not v.as_dict()["valid"]
    proc = jianfu("verify", str(p))
    assert proc.returncode == 0 and "VERDICT: INTACT" in proc.stdout and "NOT authenticated" in proc.stdout
    assert signing.fingerprint(key.public_key()) in proc.stdout and "VERDICT: VALID" not in proc.stdout
    pin = demo_scan[0] / "keys" / "evidence-ed25519.pub.pem"
    proc = jianfu("verify", str(p), "--pubkey", str(pin))
    assert proc.returncode == 1 and "not the pinned key" in proc.stdout
    assert jianfu("verify", str(packet), "--pubkey", str(pin)).returncode == 0


def test_packet_naming_its_key_by_the_old_128_bit_fingerprint_still_verifies(packet, demo_scan, tmp_path):
    from evidence import signing
    from evidence.packet import signed_message
    key, _ = signing.load_or_create_key(demo_scan[0])
    with zipfile.ZipFile(packet) as z:
        files = {i.filename: z.read(i) for i in z.infolist()}
    m = json.loads(files["manifest.json"])
    m["public_key"]["fingerprint"] = signing.fingerprint(key.public_key())[:39]     # 8 groups, as before
    files["manifest.json"] = json.dumps(m).encode()
    files["manifest.sig"] = signing.sign(key, signed_message(files["manifest.json"], None))
    container.write(tmp_path / "old.zip", list(files.items()))
    assert verify(tmp_path / "old.zip").ok
    m["public_key"]["fingerprint"] = "0000:" + signing.fingerprint(key.public_key())[5:39]
    files["manifest.json"] = json.dumps(m).encode()
    files["manifest.sig"] = signing.sign(key, signed_message(files["manifest.json"], None))
    container.write(tmp_path / "other.zip", list(files.items()))
    assert any("not the key the manifest names" in p for p in verify(tmp_path / "other.zip").problems)


# -- selections and bad input ---------------------------------------------------------------------
def test_export_one_finding_by_id_prefix_and_by_institution(demo_scan, tmp_path):
    store = demo_scan[0]
    rows = findings_jsonl(store)
    one = rows[0]
    out = tmp_path / "one.zip"
    proc = jianfu("export", "--store", str(store), "--finding", one["id"][:10], "--out", str(out), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(out) as z:
        doc = json.loads(z.read("findings.json"))
        assert "report.pdf" not in z.namelist()
    assert [f["id"] for f in doc["findings"]] == [one["id"]]
    assert verify(out).ok
    inst = rows[-1]["institution"]
    out2 = tmp_path / "inst.zip"
    proc = jianfu("export", "--store", str(store), "--institution", inst, "--out", str(out2), "--no-pdf", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["findings"] == sum(1 for r in rows if r["institution"] == inst)
    assert verify(out2).ok


@pytest.mark.parametrize("args,message", [
    (["--finding", "0123456789abcdef01234567"], "unknown finding id '0123456789abcdef01234567'"),
    (["--finding", "zz"], "unknown finding id 'zz'"),
    (["--scan", "nope"], "unknown scan id nope"),
    (["--institution", "不存在的机构"], "no findings for institution '不存在的机构'"),
])
def test_unknown_selections_fail_in_one_line(demo_scan, tmp_path, capsys, args, message):
    proc = cli(capsys, "export", "--store", str(demo_scan[0]), *args, "--out", str(tmp_path / "p.zip"), "--no-pdf")
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p.zip").exists()


def test_unwritable_output_fails_before_work(demo_scan, tmp_path, capsys):
    fid = findings_jsonl(demo_scan[0])[0]["id"]
    for out, why in ((tmp_path / "no" / "such" / "dir.zip", "does not exist"), (tmp_path, "is a directory"),
                     (Path("/proc/jianfu-test.zip"), "cannot write packet")):
        proc = cli(capsys, "export", "--store", str(demo_scan[0]), "--finding", fid, "--out", str(out), "--no-pdf")
        assert proc.returncode == 1 and why in proc.stderr, proc.stderr
    proc = cli(capsys, "export", "--store", str(tmp_path / "nostore"), "--finding", fid, "--out", str(tmp_path / "x.zip"))
    assert proc.returncode == 1 and "no jianfu store" in proc.stderr
    assert cli(capsys, "verify", str(tmp_path / "missing.zip")).returncode == 1


def test_missing_capture_is_reported_or_skipped(demo_scan, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(demo_scan[0], store, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    rows = findings_jsonl(store)
    gone, kept = rows[0], next(r for r in rows if r["url"] != rows[0]["url"])
    with sqlite3.connect(store / "jianfu.sqlite3") as db:
        db.execute("UPDATE pages SET warc_offset=NULL WHERE url=?", (gone["url"],))
    out = tmp_path / "p.zip"
    proc = jianfu("export", "--store", str(store), "--finding", gone["id"], kept["id"], "--out", str(out), "--no-pdf")
    assert proc.returncode == 1 and f"capture missing for finding {gone['id']}" in proc.stderr, proc.stderr
    proc = jianfu("export", "--store", str(store), "--finding", gone["id"], kept["id"], "--out", str(out),
                  "--no-pdf", "--skip-missing")
    assert proc.returncode == 0 and "skipped finding" in proc.stderr, proc.stderr
    with zipfile.ZipFile(out) as z:
        assert [f["id"] for f in json.loads(z.read("findings.json"))["findings"]] == [kept["id"]]
    for w in (store / "warc").glob("*.warc.gz"):
        w.unlink()
    proc = jianfu("export", "--store", str(store), "--finding", kept["id"], "--out", str(out), "--no-pdf")
    assert proc.returncode == 1 and "is missing from" in proc.stderr, proc.stderr


def test_rendered_page_screenshot_is_highlighted_and_archived(demo_scan, tmp_path):
    """A page captured with a browser: screenshot blob + text_boxes → highlighted screenshot and a
    urn:view: resource record in the WACZ."""
    store = tmp_path / "store"
    shutil.copytree(demo_scan[0], store, ignore=shutil.ignore_patterns("*-wal", "*-shm", "keys"))
    f = next(r for r in findings_jsonl(store) if r["source"] == "text")
    with sqlite3.connect(store / "jianfu.sqlite3") as db:
        scan, text = db.execute("SELECT scan_id, text FROM pages WHERE url=? ORDER BY id DESC",
                                (f["url"],)).fetchone()
    shot = Image.new("RGB", (800, 3000), "white")
    ImageDraw.Draw(shot).text((100, 2000), "screenshot", fill="black")
    buf = io.BytesIO()
    shot.save(buf, "PNG")
    from store import Store
    with Store(store) as s:
        sha = s.put_blob(buf.getvalue())
        boxes = [{"start": 0, "end": f["start"], "box": [10, 10, 300, 20]},
                 {"start": f["start"], "end": f["end"], "box": [100, 2000, 160, 24]}]
        s.save_page(scan, f["url"], screenshot_sha256=sha, text_boxes=boxes, rendered=1,
                    **{k: v for k, v in s.page(scan, f["url"]).items()
                       if k in ("warc_file", "warc_offset", "text", "title", "status")})
    out = tmp_path / "shot.zip"
    proc = jianfu("export", "--store", str(store), "--finding", f["id"], "--out", str(out), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    assert verify(out).ok
    with zipfile.ZipFile(out) as z:
        e = json.loads(z.read("findings.json"))["findings"][0]
        hl = Image.open(io.BytesIO(z.read(e["files"]["highlight"]))).convert("RGB")
        assert z.read(e["files"]["screenshot"]) == buf.getvalue()
        assert "highlight_crop" in e["files"]
        wacz = zipfile.ZipFile(io.BytesIO(z.read("evidence.wacz")))
        cdx = wacz.read("indexes/index.cdx.gz")
    assert e["boxes"] == [[100, 2000, 160, 24]] and e["highlight_from"] == "渲染页面文字位置"
    assert hl.getpixel((98, 2012)) != (255, 255, 255) and hl.getpixel((700, 100)) == (255, 255, 255)
    import gzip
    assert f"urn:view:{f['url']}".encode() in gzip.decompress(cdx)


def test_image_of_an_unchanged_rescan_points_at_the_capture_with_its_bytes(demo_scan, tmp_path):
    """A re-scan asks with If-None-Match / If-Modified-Since and gets 304s (no body); the packet's
    image record must be the earlier 200 response that carries the image, not the bodiless 304."""
    import hashlib

    from warcio.archiveiterator import ArchiveIterator

    from demo_site.server import INSTITUTIONS
    store = tmp_path / "store"
    shutil.copytree(demo_scan[0], store, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    seeds = demo_scan[2]
    proc = jianfu("scan", *[f"{INSTITUTIONS[n]}={u}" for n, u in seeds.items()], "--store", str(store),
                  "--json", "--quiet", "--district", "示范区")
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = json.loads(proc.stdout)["scan_id"]
    with sqlite3.connect(store / "jianfu.sqlite3") as db:
        rechecked = {u for (u,) in db.execute("SELECT url FROM fetches WHERE scan_id=? AND status=304", (second,))}
    f = next(r for r in findings_jsonl(store)
             if r["source"] == "image" and r["last_scan_id"] == second and r["image_url"] in rechecked)
    out = tmp_path / "rescan.zip"
    proc = jianfu("export", "--store", str(store), "--finding", f["id"], "--out", str(out), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    v = verify(out)
    assert v.ok, v.problems
    with zipfile.ZipFile(out) as z:
        e = json.loads(z.read("findings.json"))["findings"][0]
        custody = json.loads(z.read("custody.json"))["events"]
        with zipfile.ZipFile(io.BytesIO(z.read("evidence.wacz"))) as w:
            warc = w.read("archive/data.warc.gz")
    ptr = e["records"]["image_response"]
    rec = next(iter(ArchiveIterator(io.BytesIO(warc[ptr["packet"]["offset"]:]))))
    assert rec.rec_type == "response" and rec.rec_headers.get_header("WARC-Target-URI") == f["image_url"]
    assert rec.http_headers.get_statuscode() == "200"
    assert hashlib.sha256(rec.content_stream().read()).hexdigest() == e["image_sha256"]
    # every record of that URL in the packet carries its bytes; the re-check is in the custody log
    for rec in ArchiveIterator(io.BytesIO(warc)):
        if rec.rec_type == "response" and rec.rec_headers.get_header("WARC-Target-URI") == f["image_url"]:
            assert rec.http_headers.get_statuscode() == "200"
    assert any(ev["step"] == "recheck" and f["image_url"] in ev["detail"] for ev in custody)
    # a --scan export of the re-scan also carries the earlier captures its 304s stand for
    out2 = tmp_path / "rescan-scan.zip"
    proc = jianfu("export", "--store", str(store), "--scan", second, "--out", str(out2), "--no-pdf")
    assert proc.returncode == 0, proc.stderr
    assert verify(out2).ok
    with zipfile.ZipFile(out2) as z, zipfile.ZipFile(io.BytesIO(z.read("evidence.wacz"))) as w:
        warc = w.read("archive/data.warc.gz")
    full = {rec.rec_headers.get_header("WARC-Target-URI") for rec in ArchiveIterator(io.BytesIO(warc))
            if rec.rec_type == "response" and rec.http_headers.get_statuscode() == "200"}
    assert f["image_url"] in full and f["url"] in full


# -- trusted timestamp against a local TSA stub ---------------------------------------------------
def make_response(request: bytes, serial: int = 1, policy: str = "1.3.6.1.4.1.55555.1") -> bytes:
    """A TimeStampResp shaped like a TSA's for the stub (CMS signerInfos left empty: unsigned)."""
    from datetime import UTC, datetime
    t = timestamp
    req = t.parse_der(request).children()
    imprint = req[1].raw
    nonce = next((n.raw for n in req[2:] if n.tag == 0x02), b"")
    gen = datetime.now(UTC).strftime("%Y%m%d%H%M%SZ").encode()
    tst = t.seq(t.integer(1), t.oid(policy), imprint, t.integer(serial), t.tlv(0x18, gen), nonce)
    encap = t.seq(t.oid(t.TST_INFO_OID), t.tlv(0xA0, t.octets(tst)))
    signed = t.seq(t.integer(3), t.tlv(0x31, t.seq(t.oid(t.SHA256_OID), t.NULL)), encap, t.tlv(0x31, b""))
    token = t.seq(t.oid(t.SIGNED_DATA_OID), t.tlv(0xA0, signed))
    return t.seq(t.seq(t.integer(0)), token)


class _Tsa(http.server.BaseHTTPRequestHandler):
    refuse = False

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.headers["Content-Type"] == "application/timestamp-query"
        reply = (timestamp.seq(timestamp.seq(timestamp.integer(2))) if self.refuse
                 else make_response(body, serial=42))
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *a):
        pass


def test_trusted_timestamp_from_a_local_tsa(demo_scan, tmp_path):
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Tsa)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/tsa"
    try:
        fid = findings_jsonl(demo_scan[0])[0]["id"]
        out = tmp_path / "ts.zip"
        proc = jianfu("export", "--store", str(demo_scan[0]), "--finding", fid, "--out", str(out), "--no-pdf",
                      "--tsa-url", url)
        assert proc.returncode == 0, proc.stderr
        v = verify(out)
        assert v.ok and v.info["timestamp"]["serial"] == 42, v.problems
        # the token's TSA signature is not checked: a note, never a passed check
        assert not any("timestamp" in m.lower() for m in v.passed), v.passed
        assert any("timestamp token present, imprint matches" in n and "TSA signature not checked" in n
                   for n in v.notes), v.notes
        with zipfile.ZipFile(out) as z:
            assert "已向可信时间戳服务" in z.read("report.html").decode()
            files = [(i.filename, z.read(i)) for i in z.infolist()]
        forged = [(n, d if n != "manifest.tsr" else d[:-3] + bytes([d[-3] ^ 1]) + d[-2:]) for n, d in files]
        container.write(tmp_path / "f.zip", forged)
        assert not verify(tmp_path / "f.zip").ok
        container.write(tmp_path / "g.zip", [(n, d) for n, d in files if n != "manifest.tsr"])
        v = verify(tmp_path / "g.zip")
        assert not v.ok and any("manifest.tsr is missing" in m for m in v.problems)
        _Tsa.refuse = True
        proc = jianfu("export", "--store", str(demo_scan[0]), "--finding", fid, "--out", str(out), "--no-pdf",
                      "--tsa-url", url)
        assert proc.returncode == 1 and "TSA refused" in proc.stderr, proc.stderr
        proc = jianfu("export", "--store", str(demo_scan[0]), "--finding", fid, "--out", str(out), "--no-pdf",
                      "--tsa-url", "http://127.0.0.1:9/none")
        assert proc.returncode == 1 and "cannot reach TSA" in proc.stderr, proc.stderr
    finally:
        _Tsa.refuse = False
        srv.shutdown()
        srv.server_close()


def test_timestamp_request_is_well_formed():
    import hashlib
    d = hashlib.sha256(b"x").digest()
    req = timestamp.build_request(d, 12345)
    node = timestamp.parse_der(req).children()
    assert node[0].int() == 1 and node[2].int() == 12345
    assert node[1].children()[0].children()[0].oid() == timestamp.SHA256_OID
    info = timestamp.check(make_response(req, serial=7), d, 12345)
    assert info.serial == 7 and info.digest == d
    with pytest.raises(timestamp.TimestampError):
        timestamp.check(make_response(req), hashlib.sha256(b"y").digest())
