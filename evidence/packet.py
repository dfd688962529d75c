"""``jianfu export``: collect the findings and their captures from a store, build the packet.

collect → (WARC records, WACZ, images and highlights, findings.json, custody log, report) →
manifest → timestamp → signature → canonical ZIP. Every failure is an ``ExportError`` with one
line that says what to do; nothing is written at the output path unless the whole packet is.
"""

from __future__ import annotations

import getpass
import json
import os
import platform
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from evidence import container, highlight, signing
from evidence import timestamp as tsa
from evidence.wacz import (
    RecordRef,
    WarcError,
    WarcIndex,
    build_wacz,
    read_payload,
    resource_record,
    sha256,
    validate_wacz,
)
from jianfu import __version__
from store.backends import split_location, store_exists
from store.db import Store

FORMAT = "jianfu-evidence-packet/1"
CHINA = timezone(timedelta(hours=8), "北京时间")
UNSIGNED = ("manifest.json", "manifest.sig", "manifest.tsr")   # the only files the manifest does not list
SIG_CONTEXT = b"jianfu-evidence-packet/1\n"


SCAN_STATUS_ZH = {"finished": "完成", "failed": "失败", "interrupted": "中断", "running": "进行中"}


class ExportError(RuntimeError):
    pass


@dataclass
class ExportRequest:
    finding_ids: list[str] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)
    institution: str | None = None
    scan_id: str | None = None
    examiner: str | None = None
    tsa_url: str | None = None
    skip_missing: bool = False
    include_dismissed: bool = False
    pdf: bool = True


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def china_time(utc: str | None) -> str | None:
    """'2026-11-28T11:18:35.201Z' → '2026-11-28 19:18:35 (UTC+8)'."""
    if not utc:
        return None
    try:
        t = datetime.fromisoformat(utc.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S (UTC+8)")


def signed_message(manifest: bytes, tsr: bytes | None) -> bytes:
    """What ``manifest.sig`` signs: the manifest and, when present, the timestamp token."""
    msg = SIG_CONTEXT + b"manifest.json sha256=" + sha256(manifest).encode() + b"\n"
    if tsr is not None:
        msg += b"manifest.tsr sha256=" + sha256(tsr).encode() + b"\n"
    return msg


def check_output(out: Path) -> None:
    """Fail before any work when the packet cannot be written: a missing directory, a directory
    as the output, no permission, a read-only file system (probed, which also holds for root)."""
    if out.exists() and out.is_dir():
        raise ExportError(f"cannot write packet to {out}: it is a directory")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write packet to {out}: directory {parent} does not exist")
    if out.exists() and not os.access(out, os.W_OK):
        raise ExportError(f"cannot write packet to {out}: permission denied")
    probe = parent / f".{out.name}.partial"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.close(fd)
        probe.unlink()
    except OSError as e:
        raise ExportError(f"cannot write packet to {out}: {e.strerror or e}") from e


class Custody:
    """The chain-of-custody log: one event per step, capture to export."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, at: str | None, step: str, actor: str, detail: str, **data: Any) -> None:
        ev = {"time_utc": at, "time_china": china_time(at), "step": step, "actor": actor, "detail": detail}
        self.events.append(ev | {k: v for k, v in data.items() if v is not None})


class Exporter:
    def __init__(self, store_dir: str | Path, out: str | Path, req: ExportRequest,
                 progress: Callable[[str], None] | None = None) -> None:
        self.store_location = str(store_dir)  # a directory, or a PostgreSQL URL with ?files=
        try:
            self.store_dir = split_location(store_dir)[1]  # WARCs and keys: the store's file directory
        except ValueError as e:
            raise ExportError(str(e)) from None
        self.out = Path(out)
        self.req = req
        self.progress = progress or (lambda s: None)
        self.files: dict[str, bytes] = {}          # packet path → bytes (everything but the WACZ)
        self.custody = Custody()
        self.warnings: list[str] = []
        self.notes: list[str] = []                 # the warnings in Chinese, for the report
        self.indexes: dict[str, WarcIndex] = {}
        self.timings: dict[str, float] = {}
        self.tool = f"jianfu {__version__}"
        self.exporter = req.examiner or _whoami()

    # -- entry -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        started = now_utc()
        t0 = time.perf_counter()
        check_output(self.out)
        if not store_exists(self.store_location):
            raise ExportError(f"no jianfu store at {self.store_location}")
        with Store(self.store_location) as store:  # opened first: no key pair is made in a store that cannot open
            key, created = self._key()
            self.store = store
            findings = self.select()
            self.custody.add(started, "export.start", self.exporter,
                             f"导出开始：{self.tool}，导出范围：{self.selection_zh()}，共 {len(findings)} 条问题线索",
                             host=socket.gethostname(), python=platform.python_version())
            if created:
                self.custody.add(now_utc(), "export.key", self.tool, "首次使用：在存储目录 keys/ 下生成 Ed25519 签名密钥对")
            captures = self.locate(findings)
            with tempfile.TemporaryDirectory(prefix="jianfu-export-") as tmp:
                work = Path(tmp)
                wacz_path = self.build_archive(findings, captures, work)
                entries = self.build_findings(findings, captures)
                cases = self.build_cases(entries, captures)
                self.add_submissions(findings, captures)
                self.add_scan_history(findings, captures)
                self.build_report(cases, entries, work)
                packet_size = self.seal(key, wacz_path)
        self.timings["total"] = time.perf_counter() - t0
        return {"out": str(self.out), "findings": len(findings), "cases": len(cases), "size": packet_size,
                "files": len(self.files) + 1, "warnings": self.warnings, "timings": self.timings,
                "key_fingerprint": signing.fingerprint(key.public_key()), "timestamped": bool(self.req.tsa_url)}

    def _key(self):
        try:
            return signing.load_or_create_key(self.store_dir)
        except (signing.SigningError, OSError) as e:
            raise ExportError(str(e)) from e

    def selection_text(self) -> str:
        r = self.req
        if r.case_ids:
            return "--case " + " ".join(r.case_ids)
        if r.finding_ids:
            return "--finding " + " ".join(r.finding_ids)
        if r.institution:
            return f"--institution {r.institution}"
        return f"--scan {r.scan_id}"

    def selection_zh(self) -> str:
        """The selection as the report states it (no command-line flags)."""
        r = self.req
        if r.case_ids:
            return "指定案件 " + "、".join(r.case_ids)
        if r.finding_ids:
            return "指定问题线索 " + "、".join(r.finding_ids)
        if r.institution:
            return f"机构“{r.institution}”的全部问题线索（最近一次抓取）"
        return f"扫描 {r.scan_id} 发现的全部问题线索"

    def warn(self, english: str, chinese: str) -> None:
        self.warnings.append(english)
        self.notes.append(chinese)

    # -- select ------------------------------------------------------------------------------
    def select(self) -> list[dict[str, Any]]:
        store, r = self.store, self.req
        if r.finding_ids:
            ids = [self._resolve_id(i) for i in r.finding_ids]
            ids = list(dict.fromkeys(ids))
            return list(store.findings(ids=ids))
        if r.case_ids:
            rows = []
            for raw in r.case_ids:
                cid = store.resolve_case_id(raw)
                if cid is None:
                    raise ExportError(f"unknown case id {raw!r} (list cases with `jianfu findings --store "
                                      f"{self.store_dir} --by case`)")
                rows += [f for f in store.case_findings(cid) if f["id"] not in {x["id"] for x in rows}]
        elif r.scan_id:
            if not store.scan(r.scan_id):
                known = ", ".join(s["id"] for s in store.scans()[-5:]) or "none"
                raise ExportError(f"unknown scan id {r.scan_id} (recent scans: {known})")
            rows = list(store.findings(scan_id=r.scan_id))
        else:
            rows = [f for f in store.findings() if f["institution"] == r.institution]
            if not rows:
                names = sorted({n for (n,) in store.db.execute(
                    "SELECT DISTINCT institution FROM findings WHERE institution IS NOT NULL")})
                raise ExportError(f"no findings for institution {r.institution!r} "
                                  f"(institutions with findings: {', '.join(names) or 'none'})")
        if not r.include_dismissed:
            dismissed = [f for f in rows if f["status"] == "dismissed"]
            if dismissed:
                self.warn(f"{len(dismissed)} dismissed finding(s) left out (--include-dismissed)",
                          f"已排除的问题线索 {len(dismissed)} 条未导出")
            rows = [f for f in rows if f["status"] != "dismissed"]
        if not rows and not r.scan_id:
            raise ExportError("nothing to export: every selected finding was dismissed")
        return rows

    def _resolve_id(self, raw: str) -> str:
        raw = raw.strip()
        rows = self.store.db.execute("SELECT id FROM findings WHERE id=?", (raw,)).fetchall()
        if not rows and len(raw) >= 6:
            rows = self.store.db.execute("SELECT id FROM findings WHERE id LIKE ? LIMIT 3",
                                         (raw.replace("%", "").replace("_", "").lower() + "%",)).fetchall()  # ids: lower-case hex
        if not rows:
            raise ExportError(f"unknown finding id {raw!r} (list ids with `jianfu findings --store "
                              f"{self.store_dir} --format jsonl`)")
        if len(rows) > 1:
            raise ExportError(f"finding id prefix {raw!r} is ambiguous: give more characters")
        return rows[0][0]

    # -- locate captures ----------------------------------------------------------------------
    def scan_for(self, f: dict[str, Any]) -> str:
        return self.req.scan_id or f["last_scan_id"]

    def index(self, warc_file: str) -> WarcIndex:
        if warc_file not in self.indexes:
            path = self.store_dir / "warc" / warc_file
            if not path.is_file():
                raise WarcError(f"WARC file {warc_file} is missing from {self.store_dir / 'warc'}")
            self.indexes[warc_file] = WarcIndex.load(path)
        return self.indexes[warc_file]

    def record_at(self, warc_file: str | None, offset: int | None, what: str) -> RecordRef:
        if not warc_file or offset is None:
            raise WarcError(f"{what} has no WARC record in the store")
        ref = self.index(warc_file).by_offset.get(int(offset))
        if ref is None or ref.type not in ("response", "resource"):
            raise WarcError(f"{what}: no response record at {warc_file}@{offset}")
        return ref

    def fetch_row(self, scan_id: str, url: str, kinds: tuple[str, ...]
                  ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The fetch whose WARC record carries ``url``'s bytes for ``scan_id``, and the re-check.

        Returns (payload, recheck): payload is the scan's newest 2xx fetch with a WARC record; when
        the scan only re-checked the URL (``304 Not Modified``, a response record with no body) it is
        the newest 2xx fetch with a WARC record before that 304 — the capture the 304 says is
        unchanged — and recheck is the 304 fetch. (None, None) when neither exists."""
        marks = ",".join("?" * len(kinds))
        base = f"SELECT * FROM fetches WHERE url=? AND kind IN ({marks}) AND warc_offset IS NOT NULL "
        ok = base + "AND status BETWEEN 200 AND 299 "
        row = self.store.db.execute(ok + "AND scan_id=? ORDER BY id DESC LIMIT 1",
                                    (url, *kinds, scan_id)).fetchone()
        if row:
            return dict(row), None
        recheck = self.store.db.execute(base + "AND status=304 AND scan_id=? ORDER BY id DESC LIMIT 1",
                                        (url, *kinds, scan_id)).fetchone()
        if recheck is None:
            return None, None
        row = self.store.db.execute(ok + "AND id<? ORDER BY id DESC LIMIT 1",
                                    (url, *kinds, recheck["id"])).fetchone()
        return (dict(row) if row else None), dict(recheck)

    def locate(self, findings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """For each finding: its scan, page row, fetch rows and WARC records; raises (or, with
        ``skip_missing``, drops the finding) when any part of the capture is missing."""
        captures: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for f in findings:
            try:
                captures[f["id"]] = self._locate_one(f)
            except (WarcError, OSError, sqlite3.Error) as e:
                missing.append(f"{f['id']}: {e}")
        if missing:
            if not self.req.skip_missing:
                more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
                raise ExportError("capture missing for finding " + "; ".join(missing[:3]) + more +
                                  " — re-scan, or pass --skip-missing to export the rest")
            for m in missing:
                self.warn(f"skipped finding {m}", f"因原始抓取记录缺失而跳过问题线索 {m.split(':')[0]}")
                self.custody.add(now_utc(), "export.skip", self.tool, f"因原始抓取记录缺失而跳过：{m}")
            findings[:] = [f for f in findings if f["id"] in captures]
            if not findings:
                raise ExportError("no finding left to export: every capture is missing")
        return captures

    def _locate_one(self, f: dict[str, Any]) -> dict[str, Any]:
        scan_id = self.scan_for(f)
        page = self.store.page(scan_id, f["url"])
        if page is None:
            raise WarcError(f"page {f['url']} was not captured in scan {scan_id}")
        # the page's canonical URL may not be the address it was fetched at ("/" reached as "/index.html")
        fetch, recheck = self.fetch_row(scan_id, page.get("final_url") or f["url"], ("page",))
        resp = self.record_at(page.get("warc_file"), page.get("warc_offset"), f"page {f['url']} (scan {scan_id})")
        cap: dict[str, Any] = {"scan_id": scan_id, "page": page, "fetch": fetch, "recheck": recheck,
                               "response": resp, "image": None, "image_fetch": None, "image_recheck": None,
                               "image_response": None, "image_bytes": None}
        if f["source"] == "image":
            ifetch, irecheck = self.fetch_row(scan_id, f["image_url"], ("image", "page", "other"))
            if ifetch is None:
                raise WarcError(f"image {f['image_url']} was not fetched in scan {scan_id}"
                                + (" (re-checked 304 Not Modified, but no earlier capture holds its bytes)"
                                   if irecheck else ""))
            cap["image_fetch"], cap["image_recheck"] = ifetch, irecheck
            cap["image_response"] = self.record_at(ifetch["warc_file"], ifetch["warc_offset"],
                                                   f"image {f['image_url']}")
            cap["image"] = self.store.image(f["image_sha256"]) if f["image_sha256"] else None
            # the packet points at this record: it must carry the image's bytes
            data = read_payload(self.index(ifetch["warc_file"]).raw(cap["image_response"]))
            if f["image_sha256"] and sha256(data) != f["image_sha256"]:
                raise WarcError(f"image {f['image_url']}: the response record at {ifetch['warc_file']}@"
                                f"{ifetch['warc_offset']} does not carry the image (sha256 {f['image_sha256'][:12]}…)")
            cap["image_bytes"] = data
        return cap

    # -- archive -----------------------------------------------------------------------------
    def build_archive(self, findings: list[dict[str, Any]], captures: dict[str, dict[str, Any]],
                      work: Path) -> Path:
        t0 = time.perf_counter()
        chosen: dict[tuple[str, int], RecordRef] = {}
        pages: dict[str, tuple[dict[str, Any], RecordRef]] = {}
        extra: list[tuple[str, bytes, dict[str, Any]]] = []   # new resource records (screenshots from blobs)

        def take(ref: RecordRef) -> None:
            idx = self.index(ref.warc_file)
            for r in (ref, *idx.companions(ref)):
                chosen.setdefault((r.warc_file, r.offset), r)

        if self.req.scan_id:   # a scan export carries the scan's whole capture, robots.txt and errors too
            for (warc_file,) in self.store.db.execute(
                    "SELECT DISTINCT warc_file FROM fetches WHERE scan_id=? AND warc_file IS NOT NULL",
                    (self.req.scan_id,)):
                try:
                    idx = self.index(warc_file)
                except WarcError as e:
                    raise ExportError(str(e)) from e
                for ref in idx.by_offset.values():
                    if ref.type != "warcinfo":
                        chosen.setdefault((ref.warc_file, ref.offset), ref)
            for p in self.store.pages(self.req.scan_id):
                if p.get("warc_file") and p.get("warc_offset") is not None:
                    ref = self.index(p["warc_file"]).by_offset.get(p["warc_offset"])
                    if ref and (p.get("status") or 0) < 300:
                        pages.setdefault(p["url"], (p, ref))
                        take(ref)   # an unchanged page of a re-scan: its bytes are in an earlier scan's WARC
            # what the scan re-checked (304, no body): the earlier capture that holds the bytes
            for url, kind in self.store.db.execute(
                    "SELECT DISTINCT url, kind FROM fetches WHERE scan_id=? AND status=304", (self.req.scan_id,)):
                row, _ = self.fetch_row(self.req.scan_id, url, (kind,))
                ref = row and self._maybe_record(row["warc_file"], row["warc_offset"])
                if ref:
                    take(ref)
        for f in findings:
            cap = captures[f["id"]]
            take(cap["response"])
            pages.setdefault(f["url"], (cap["page"], cap["response"]))
            if cap["image_response"] is not None:
                take(cap["image_response"])
            # the other images of the page, so that it replays as it looked
            for (image_url,) in self.store.db.execute(
                    "SELECT image_url FROM page_images WHERE scan_id=? AND page_url=?", (cap["scan_id"], f["url"])):
                row, _ = self.fetch_row(cap["scan_id"], image_url, ("image",))
                if row:
                    ref = self._maybe_record(row["warc_file"], row["warc_offset"])
                    if ref:
                        take(ref)
        # screenshots: a resource record urn:view:<url> in the scan WARC, or the blob as a new record
        self.screenshots: dict[str, dict[str, Any]] = {}
        for url, (page, ref) in pages.items():
            shot = page.get("screenshot_sha256")
            if not shot:
                continue
            idx = self.index(ref.warc_file)
            targets = dict.fromkeys([page.get("final_url") or url, url])
            recs = [r for t in targets for r in idx.by_uri.get(f"urn:view:{t}", []) if r.type == "resource"]
            # the rendered DOM and the capture metadata (browser, viewport, overlays, notes) come along
            for t in targets:
                for kind in ("urn:dom:", "urn:capture:"):
                    for r in idx.by_uri.get(f"{kind}{t}", [])[-1:]:
                        take(r)
            blob = self.store.blob_path(shot)
            info: dict[str, Any] = {"sha256": shot, "uri": f"urn:view:{url}"}
            if recs:
                take(recs[-1])
                info["record"] = recs[-1]
            elif blob.is_file():
                extra.append((url, blob.read_bytes(), {"WARC-Refers-To": ref.record_id,
                                                       "WARC-Refers-To-Target-URI": url,
                                                       "WARC-Refers-To-Date": ref.date,
                                                       "X-Jianfu-Added": "screenshot from store blob at export"}))
            if blob.is_file():
                info["bytes"] = blob.read_bytes()
                if sha256(info["bytes"]) != shot:
                    raise ExportError(f"screenshot blob {shot[:12]}… of {url} does not match its hash")
                self.screenshots[url] = info
            else:
                self.warn(f"screenshot {shot[:12]}… of {url} is missing from the store blobs",
                          f"页面 {url} 的截图 {shot[:12]}… 在存储中缺失")

        # write the packet WARC: each source file's warcinfo, then its records in file order
        warc_path = work / "data.warc.gz"
        self.packet_offsets: dict[tuple[str, int], int] = {}
        self.record_sha: dict[tuple[str, int], str] = {}
        ordered = sorted(chosen.values(), key=lambda r: (r.warc_file, r.offset))
        with open(warc_path, "wb") as fh:
            for warc_file in sorted({r.warc_file for r in ordered}):
                info_ref = self.index(warc_file).warcinfo()
                if info_ref:
                    ordered.insert(ordered.index(next(r for r in ordered if r.warc_file == warc_file)), info_ref)
            for ref in ordered:
                raw = self.index(ref.warc_file).raw(ref)
                self.packet_offsets[(ref.warc_file, ref.offset)] = fh.tell()
                self.record_sha[(ref.warc_file, ref.offset)] = sha256(raw)
                fh.write(raw)
            for url, data, headers in extra:
                ct = "image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
                pos = fh.tell()
                fh.write(resource_record(f"urn:view:{url}", ct, data, headers))
                self.screenshots[url]["packet_offset"] = pos
        n_records = len(ordered) + len(extra)
        self.custody.add(now_utc(), "export.warc", self.tool,
                         f"从存储的 WARC 文件按原字节复制 {len(ordered)} 条记录"
                         + (f"，另将 {len(extra)} 张截图作为 resource 记录补入" if extra else "")
                         + "；每条记录的 SHA-256 与存储中的原始记录一致",
                         source_files=sorted({r.warc_file for r in ordered}), records=n_records)

        page_list = []
        for url, (page, ref) in sorted(pages.items()):
            page_list.append({"id": sha256(f"{ref.warc_file}:{ref.offset}".encode())[:16], "url": url,
                              "ts": ref.date, "title": page.get("title") or url})
        wacz_path = work / "evidence.wacz"
        title = f"减负证据包 {self.selection_text()}"
        try:
            build_wacz(warc_path, page_list, wacz_path, title, f"jianfu {__version__} evidence export")
        except (WarcError, OSError) as e:
            raise ExportError(f"building the WACZ failed: {e}") from e
        ok, msg = validate_wacz(wacz_path)
        if not ok:
            raise ExportError(f"the WACZ does not validate: {msg}")
        self.custody.add(now_utc(), "export.wacz", self.tool,
                         f"生成 WACZ（{len(page_list)} 个页面，{n_records} 条 WARC 记录），wacz validate 通过",
                         pages=len(page_list), validate=msg or "ok")
        self.timings["archive"] = time.perf_counter() - t0
        return wacz_path

    def _maybe_record(self, warc_file: str | None, offset: int | None) -> RecordRef | None:
        try:
            return self.record_at(warc_file, offset, "record")
        except WarcError:
            return None

    def pointer(self, ref: RecordRef | None) -> dict[str, Any] | None:
        if ref is None:
            return None
        key = (ref.warc_file, ref.offset)
        return {"record_id": ref.record_id, "type": ref.type, "target_uri": ref.target_uri,
                "warc_date": ref.date, "payload_digest": ref.payload_digest,
                "packet": {"file": "evidence.wacz", "warc": "archive/data.warc.gz",
                           "offset": self.packet_offsets.get(key), "length": ref.length},
                "store": {"warc_file": ref.warc_file, "offset": ref.offset},
                "record_sha256": self.record_sha.get(key)}

    # -- findings.json, images, highlights -------------------------------------------------------
    def build_findings(self, findings: list[dict[str, Any]], captures: dict[str, dict[str, Any]]
                       ) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        from detectors.model import CATEGORIES  # noqa: F401 - the ids findings.json uses
        from evidence.report import CATEGORY_ZH
        entries = []
        done_images: set[str] = set()
        for n, f in enumerate(findings, 1):
            cap = captures[f["id"]]
            fetch = cap["fetch"] or {}
            resp: RecordRef = cap["response"]
            captured = fetch.get("fetched_at") or cap["page"]["fetched_at"]
            e: dict[str, Any] = {
                "no": n, "id": f["id"], "case_id": f.get("case_id"), "category": f["category"],
                "category_zh": CATEGORY_ZH.get(f["category"], ""),
                "rule_id": f["rule_id"], "severity": f["severity"], "score": f["score"],
                "tier": f.get("tier") or "rule",  # suspected (疑似): no rule fired, to be checked by hand
                "text": f["text"], "context": f["context"], "start": f["start"], "end": f["end"],
                "basis": f["basis"], "explanation": f["explanation"], "source": f["source"],
                "status": f["status"], "institution": f["institution"], "district": f["district"],
                "ledger": f.get("ledger"),  # the institution's ledger (台账) record when the scan checked it
                "page": {"url": f["url"], "final_url": cap["page"].get("final_url"),
                         "title": cap["page"].get("title"), "http_status": cap["page"].get("status")},
                "image_url": f["image_url"], "image_sha256": f["image_sha256"],
                "scan_id": cap["scan_id"],
                "captured_at": {"utc": captured, "china": china_time(captured), "warc_date": resp.date},
                "server_ip": fetch.get("ip") or resp.ip,
                "first_seen_at": f["first_seen_at"], "last_seen_at": f["last_seen_at"],
                "boxes": f["boxes"],
                "records": {"page_response": self.pointer(resp),
                            "page_request": self.pointer(next(
                                (r for r in self.index(resp.warc_file).companions(resp) if r.type == "request"),
                                None))},
                "files": {},
            }
            if f["source"] == "image":
                ifetch = cap["image_fetch"]
                e["image_captured_at"] = {"utc": ifetch["fetched_at"], "china": china_time(ifetch["fetched_at"]),
                                          "warc_date": cap["image_response"].date}
                e["image_server_ip"] = ifetch.get("ip") or cap["image_response"].ip
                e["records"]["image_response"] = self.pointer(cap["image_response"])
                sha = f["image_sha256"] or sha256(cap["image_bytes"])
                fmt = ((cap["image"] or {}).get("format") or "bin").lower()
                orig = f"images/{sha}.{fmt}"
                if sha not in done_images:
                    done_images.add(sha)
                    self.files[orig] = cap["image_bytes"]
                    ocr = json.loads((cap["image"] or {}).get("ocr") or "{}")
                    lines = ocr.get("lines", [])
                    self.files[f"images/{sha}.ocr.json"] = _json({
                        "image_url": f["image_url"], "sha256": sha, "engine": (cap["image"] or {}).get("ocr_engine"),
                        "width": ocr.get("width"), "height": ocr.get("height"), "lines": lines})
                    try:
                        png, _ = highlight.draw(cap["image_bytes"], [ln["box"] for ln in lines], highlight.OCR,
                                                fill=25, labels=[str(i + 1) for i in range(len(lines))])
                        self.files[f"images/{sha}.ocr.png"] = png
                    except OSError as err:
                        self.warn(f"cannot draw OCR boxes on {f['image_url']}: {err}",
                                  f"无法在图片 {f['image_url']} 上绘制 OCR 文字框")
                e["files"] |= {"image": orig, "image_ocr": f"images/{sha}.ocr.json"}
                if f"images/{sha}.ocr.png" in self.files:
                    e["files"]["image_ocr_boxes"] = f"images/{sha}.ocr.png"
                if f["boxes"]:
                    try:
                        png, _ = highlight.draw(cap["image_bytes"], f["boxes"])
                        self.files[f"highlights/{f['id']}.png"] = png
                        e["files"]["highlight"] = f"highlights/{f['id']}.png"
                        e["highlight_from"] = "OCR 文字框"
                    except OSError as err:
                        self.warn(f"cannot draw boxes for {f['id']}: {err}", f"无法为问题线索 {f['id']} 绘制标注框")
            shot = self.screenshots.get(f["url"])
            if shot and "bytes" in shot:
                sname = f"screenshots/{shot['sha256']}.png"
                self.files.setdefault(sname, shot["bytes"])
                e["files"]["screenshot"] = sname
                rec = shot.get("record")
                e["records"]["screenshot"] = self.pointer(rec) if rec else {
                    "target_uri": shot["uri"], "added_at_export": True,
                    "packet": {"file": "evidence.wacz", "warc": "archive/data.warc.gz",
                               "offset": shot.get("packet_offset")}}
                if f["source"] == "text":
                    boxes = f["boxes"] or highlight.span_boxes(cap["page"].get("text_boxes"), f["start"], f["end"])
                    if boxes:
                        png, _ = highlight.draw(shot["bytes"], boxes)
                        self.files[f"highlights/{f['id']}.png"] = png
                        e["files"]["highlight"] = f"highlights/{f['id']}.png"
                        e["highlight_from"] = "渲染页面文字位置"
                        crop = highlight.crop_around(png, boxes)
                        if crop:
                            self.files[f"highlights/{f['id']}-crop.png"] = crop
                            e["files"]["highlight_crop"] = f"highlights/{f['id']}-crop.png"
                        e["boxes"] = boxes
            if "highlight" not in e["files"]:
                e["highlight_note"] = ("页面抓取时未渲染截图，匹配文字以上下文标出" if not shot
                                       else "截图中未找到匹配文字的位置，匹配文字以上下文标出")
            entries.append(e)
        self.timings["findings"] = time.perf_counter() - t0
        return entries

    def build_cases(self, entries: list[dict[str, Any]], captures: dict[str, dict[str, Any]]
                    ) -> list[dict[str, Any]]:
        """Group the exported findings by case (one institution × one ad): per case its violations
        (rule × matched words, numbered), the pages and image it was captured from, and one figure
        — the ad image, or the page screenshot (cropped where tall) — with every violation boxed
        and numbered. Writes findings.json with both lists."""
        from evidence.report import CATEGORY_ZH, SEVERITY_RANK, explanation_zh, rule_title_zh
        t0 = time.perf_counter()
        by_case: dict[str, list[dict[str, Any]]] = {}
        for e in entries:
            by_case.setdefault(e["case_id"] or f"finding-{e['id']}", []).append(e)
        cases = []
        for cid, members in by_case.items():
            info = self.store.case(cid, detail=False) or {}
            first = members[0]
            source = first["source"]
            violations: dict[tuple[str, str], dict[str, Any]] = {}
            for e in sorted(members, key=lambda e: (e["page"]["url"], e["start"])):
                v = violations.setdefault((e["rule_id"], e["text"]), {
                    "category": e["category"], "category_zh": CATEGORY_ZH.get(e["category"], e["category"]),
                    "rule_id": e["rule_id"], "rule_title": rule_title_zh(e["rule_id"], e), "text": e["text"],
                    "tier": e.get("tier", "rule"),
                    "explanation_zh": explanation_zh(e["explanation"]),
                    "severity": e["severity"], "score": e["score"], "basis": e["basis"], "context": e["context"],
                    "start": e["start"], "status": e["status"], "finding_ids": [], "urls": [], "boxes": []})
                v["finding_ids"].append(e["id"])
                if e["page"]["url"] not in v["urls"]:
                    v["urls"].append(e["page"]["url"])
            ordered = sorted(violations.values(), key=lambda v: (-SEVERITY_RANK.get(v["severity"], 1), v["start"]))
            for k, v in enumerate(ordered, 1):
                v["no"] = k
            pages: dict[str, dict[str, Any]] = {}
            for e in members:
                rec = e["records"]["page_response"] or {}
                pages.setdefault(e["page"]["url"], {
                    "url": e["page"]["url"], "title": e["page"].get("title"), "captured_at": e["captured_at"],
                    "server_ip": e.get("server_ip"), "scan_id": e["scan_id"], "record_id": rec.get("record_id"),
                    "record_sha256": rec.get("record_sha256"), "packet_offset": (rec.get("packet") or {}).get("offset"),
                    "screenshot": e["files"].get("screenshot")})
            case: dict[str, Any] = {
                "no": 0, "id": cid, "institution": first["institution"], "district": first["district"],
                "ledger": first.get("ledger"),
                "source": source, "url": info.get("url") or first["page"]["url"],
                "title": info.get("title") or first["page"].get("title"),
                "image_url": first.get("image_url"), "image_sha256": first.get("image_sha256"),
                "status": info.get("status") or first["status"],
                "first_seen_at": min(e["first_seen_at"] for e in members),
                "last_seen_at": max(e["last_seen_at"] for e in members),
                "categories": sorted({e["category"] for e in members}),
                "severity": max((e["severity"] for e in members), key=lambda s: SEVERITY_RANK.get(s, 1)),
                "finding_ids": [e["id"] for e in members], "violations": ordered,
                "pages": sorted(pages.values(), key=lambda p: p["url"]), "image": None, "files": {"figures": []},
            }
            if source == "image":
                case["elsewhere"] = self.store.same_ad_elsewhere(cid) if info else []
                e = first
                case["image"] = {"url": e["image_url"], "sha256": e["image_sha256"], "file": e["files"].get("image"),
                                 "captured_at": e.get("image_captured_at"), "server_ip": e.get("image_server_ip"),
                                 "record_id": (e["records"].get("image_response") or {}).get("record_id")}
            cases.append(case)
        cases.sort(key=lambda c: (c["institution"] or "", c["url"], c["source"] != "text", c["image_url"] or ""))
        for n, case in enumerate(cases, 1):
            case["no"] = n
            self._case_figure(case, by_case[case["id"]], captures)
        self.files["findings.json"] = _json({"format": FORMAT, "selection": self.selection_text(),
                                             "exported_at": now_utc(), "count": len(entries),
                                             "findings": entries, "cases": cases})
        self.custody.add(now_utc(), "export.findings", self.tool,
                         f"写入 findings.json（{len(entries)} 条问题线索，归为 {len(cases)} 个案件）与标注图 "
                         f"{sum(len(c['files']['figures']) for c in cases)} 张")
        self.timings["cases"] = time.perf_counter() - t0
        return cases

    def add_submissions(self, findings: list[dict[str, Any]], captures: dict[str, dict[str, Any]]) -> None:
        """Material sent in (``jianfu check``, 即时检查, 举报) that the findings were read from: each
        submitted file as received (``submissions/<sha256>``, its hash checked against the store), and
        ``submissions.json`` with when and from whom it came and the tip (举报) record it belonged to."""
        pages = {(captures[f["id"]]["scan_id"], f["url"]) for f in findings}
        scan_ids = sorted({scan for scan, _ in pages})
        subs = [s for s in self.store.submissions(scan_ids=scan_ids, limit=100_000) if s["status"] == "checked"
                and any(scan == s["scan_id"] and (url == s["page_url"] or url.startswith(s["page_url"] or "\0"))
                        for scan, url in pages)]
        if not subs:
            return
        tips: dict[str, Any] = {}
        for sub in subs:
            if sub["kind"] != "url" and sub["sha256"]:
                blob = self.store.blob_path(sub["sha256"])
                data = blob.read_bytes() if blob.is_file() else None
                if data is None or sha256(data) != sub["sha256"]:
                    self.warn(f"submitted file {sub['name']} ({sub['sha256'][:12]}…) is missing or changed in the store",
                              f"送检材料 {sub['name']} 的原始文件缺失或与其哈希不符")
                else:
                    sub["file"] = f"submissions/{sub['sha256']}"
                    self.files[sub["file"]] = data
            if sub["tip_id"] and sub["tip_id"] not in tips:
                tips[sub["tip_id"]] = {"tip": self.store.tip(sub["tip_id"]),
                                       "cases": [c["id"] for c in self.store.tip_cases(sub["tip_id"])]}
        self.files["submissions.json"] = _json({"format": FORMAT, "submissions": subs, "tips": tips})
        self.custody.add(now_utc(), "export.submissions", self.tool,
                         f"写入送检材料 {sum(1 for s in subs if s.get('file'))} 份（原始文件及 SHA-256）"
                         + (f"与举报记录 {len(tips)} 条" if tips else ""))

    def _case_figure(self, case: dict[str, Any], members: list[dict[str, Any]],
                     captures: dict[str, dict[str, Any]]) -> None:
        """The case's figure(s): its ad image, or its page's screenshot, every violation boxed."""
        by_words = {(v["rule_id"], v["text"]): v for v in case["violations"]}
        if case["source"] == "image":
            page = min(e["page"]["url"] for e in members)     # the boxes are the same on every page
            data = captures[members[0]["id"]]["image_bytes"]
            boxes_from = [e for e in members if e["page"]["url"] == page]
        else:
            shot_page = next((p for p in case["pages"] if p["screenshot"]), None)
            shot = self.screenshots.get(shot_page["url"]) if shot_page else None
            data = shot.get("bytes") if shot else None
            boxes_from = [e for e in members if shot_page and e["page"]["url"] == shot_page["url"]]
        for e in boxes_from:
            by_words[(e["rule_id"], e["text"])]["boxes"].extend(e.get("boxes") or [])
        groups = [(str(v["no"]), v["boxes"]) for v in case["violations"] if v["boxes"]]
        if data is None or not groups:
            case["figure_note"] = ("页面抓取时未渲染截图，违规文字在下表“上下文”中标出" if case["source"] == "text"
                                   and data is None else "图中未找到违规文字的位置，违规文字在下表“上下文”中标出")
            return
        try:
            png, _ = highlight.draw_numbered(data, groups)
        except OSError as err:
            self.warn(f"cannot draw the boxes of case {case['id']}: {err}", f"无法为案件 {case['id']} 绘制标注框")
            return
        name = f"cases/{case['id']}.png"
        self.files[name] = png
        case["files"]["annotated"] = name
        parts = highlight.crops(png, [b for _, boxes in groups for b in boxes])
        for k, crop in enumerate(parts, 1):
            self.files[f"cases/{case['id']}-{k}.png"] = crop
        case["files"]["figures"] = ([f"cases/{case['id']}-{k}.png" for k in range(1, len(parts) + 1)]
                                    if parts else [name])

    def add_scan_history(self, findings: list[dict[str, Any]], captures: dict[str, dict[str, Any]]) -> None:
        """Custody events before export: scans, captures, OCR and detection, from the store."""
        before: list[dict[str, Any]] = []
        c = Custody()
        for scan_id in sorted({cap["scan_id"] for cap in captures.values()}):
            s = self.store.scan(scan_id) or {}
            settings = json.loads(s.get("settings") or "{}")
            c.add(s.get("started_at"), "scan.start", f"jianfu crawler (scan {scan_id})",
                  f"扫描开始，起始网址 {', '.join(json.loads(s.get('seeds') or '[]'))}",
                  scan_id=scan_id, settings=settings, target=s.get("target"))
            c.add(s.get("finished_at"), "scan.finish", f"jianfu crawler (scan {scan_id})",
                  f"扫描结束（{SCAN_STATUS_ZH.get(s.get('status') or '', s.get('status'))}）：页面 {s.get('pages')}，图片 {s.get('images')}，错误 {s.get('errors')}",
                  scan_id=scan_id)
        seen: set[tuple[str, int]] = set()
        for f in findings:
            cap = captures[f["id"]]
            for fetch, ref, recheck in ((cap["fetch"], cap["response"], cap["recheck"]),
                                        (cap["image_fetch"], cap["image_response"], cap["image_recheck"])):
                if recheck and ("recheck", recheck["id"]) not in seen:
                    seen.add(("recheck", recheck["id"]))
                    c.add(recheck["fetched_at"], "recheck", f"jianfu crawler (scan {recheck['scan_id']})",
                          f"条件请求复查 {recheck['url']}：服务器答复 HTTP 304（未修改），内容与此前抓取的记录相同"
                          f"（记录 {ref.record_id if ref else '?'}）；304 应答写入 WARC {recheck['warc_file']} "
                          f"偏移 {recheck['warc_offset']}（无正文，未放入证据包）",
                          scan_id=recheck["scan_id"], same_as_record_id=ref.record_id if ref else None)
                if ref is None or (ref.warc_file, ref.offset) in seen:
                    continue
                seen.add((ref.warc_file, ref.offset))
                fetch = fetch or {}
                actor = f"jianfu crawler (scan {fetch.get('scan_id') or cap['scan_id']})"
                c.add(fetch.get("fetched_at") or ref.date, "capture", actor,
                      f"抓取 {ref.target_uri}（HTTP {fetch.get('status')}，服务器 IP {fetch.get('ip') or ref.ip}），"
                      f"写入 WARC {ref.warc_file} 偏移 {ref.offset}",
                      record_id=ref.record_id, record_sha256=self.record_sha.get((ref.warc_file, ref.offset)))
            if cap["image"] and cap["image"].get("ocr_engine"):
                c.add(cap["image"]["first_seen_at"], "ocr", f"OCR 引擎 {cap['image']['ocr_engine']}",
                      f"识别广告图片 {f['image_url']} 中的文字", image_sha256=f["image_sha256"])
            c.add(f["first_seen_at"], "detect", f"jianfu detectors（规则 {f['rule_id']}）",
                  f"发现问题线索 {f['id']}：“{f['text']}”（{f['category']}），末次发现 {f['last_seen_at']}",
                  finding_id=f["id"], review_status=f["status"])
        # dedupe identical events (an OCR seen for several findings), then order by time
        uniq = {json.dumps(e, sort_keys=True, ensure_ascii=False): e for e in c.events}
        before = sorted(uniq.values(), key=lambda e: e["time_utc"] or "")
        self.custody.events[:0] = before

    # -- report ------------------------------------------------------------------------------
    def build_report(self, cases: list[dict[str, Any]], entries: list[dict[str, Any]], work: Path) -> None:
        from evidence import report
        t0 = time.perf_counter()
        key_pub = self.key_fingerprint
        meta = {"selection": self.selection_zh(), "exported_at": now_utc(), "exporter": self.exporter,
                "tool": self.tool, "key_fingerprint": key_pub, "tsa_url": self.req.tsa_url,
                "warnings": self.notes}
        meta["exported_china"] = china_time(meta["exported_at"])
        html = report.render_html(cases, entries, meta, self.custody.events)
        self.files["report.html"] = html.encode("utf-8")
        self.custody.add(now_utc(), "export.report", self.tool, "生成中文报告 report.html")
        if self.req.pdf:
            site = work / "site"
            for name, data in self.files.items():
                p = site / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(data)
            try:
                pdf = report.html_to_pdf(site / "report.html", work / "report.pdf")
            except report.PdfError as e:
                raise ExportError(f"PDF rendering failed: {e} (use --no-pdf to export without report.pdf)") from e
            self.files["report.pdf"] = pdf
            self.custody.add(now_utc(), "export.pdf", self.tool, "用无头 Chromium 打印生成 report.pdf",
                             renderer=report.chromium_version())
        self.timings["report"] = time.perf_counter() - t0

    # -- seal --------------------------------------------------------------------------------
    def seal(self, key, wacz_path: Path) -> int:
        t0 = time.perf_counter()
        pub = signing.public_pem(key.public_key())
        self.files["public_key.pem"] = pub
        self.files["README.txt"] = README.format(fp=self.key_fingerprint).encode("utf-8")
        tsa_note = (f"将 manifest.json 的 SHA-256 发送至可信时间戳服务 {self.req.tsa_url}（RFC 3161），令牌存为 manifest.tsr"
                    if self.req.tsa_url else "未配置可信时间戳服务（RFC 3161）：导出时间仅以本机时钟为准")
        self.custody.add(now_utc(), "export.seal", self.tool,
                         f"计算每个文件的 SHA-256，以 Ed25519 密钥（指纹 {self.key_fingerprint}）签名清单；{tsa_note}")
        self.files["custody.json"] = _json({"format": FORMAT, "exporter": self.exporter,
                                            "host": socket.gethostname(), "tool": self.tool,
                                            "events": self.custody.events})
        wacz = wacz_path.read_bytes()
        listed = {**self.files, "evidence.wacz": wacz}
        names = sorted(listed)
        manifest = {
            "format": FORMAT, "created": now_utc(), "tool": self.tool, "exporter": self.exporter,
            "selection": self.selection_text(), "hash": "sha256",
            "public_key": {"file": "public_key.pem", "algorithm": "Ed25519", "fingerprint": self.key_fingerprint},
            "timestamp": {"tsa_url": self.req.tsa_url, "file": "manifest.tsr"} if self.req.tsa_url else None,
            "files": [{"path": n, "sha256": sha256(listed[n]), "size": len(listed[n])} for n in names],
        }
        mbytes = _json(manifest)
        token = None
        if self.req.tsa_url:
            try:
                token = tsa.stamp(self.req.tsa_url, sha256_bytes(mbytes))
            except tsa.TimestampError as e:
                raise ExportError(f"trusted timestamp failed: {e} (omit --tsa-url to export without one)") from e
        sig = signing.sign(key, signed_message(mbytes, token))
        entries = [(n, listed[n]) for n in names] + [("manifest.json", mbytes)]
        if token is not None:
            entries.append(("manifest.tsr", token))
        entries.append(("manifest.sig", sig))
        try:
            size = container.write(self.out, entries)
        except OSError as e:
            raise ExportError(f"cannot write packet to {self.out}: {e.strerror or e}") from e
        except container.ContainerError as e:
            raise ExportError(str(e)) from e
        self.timings["seal"] = time.perf_counter() - t0
        return size

    @property
    def key_fingerprint(self) -> str:
        if not hasattr(self, "_fp"):
            key, _ = signing.load_or_create_key(self.store_dir)
            self._fp = signing.fingerprint(key.public_key())
        return self._fp


README = """减负（jianfu）证据包
====================

本压缩包由 jianfu 导出，内容：
  evidence.wacz   网页存档（WACZ，可在 https://replayweb.page 离线打开回放）
  findings.json   问题线索明细（类别、规则、匹配文字、法律依据、抓取时间、服务器 IP、存档记录位置）
  highlights/     标出匹配文字的截图 / 广告图片
  images/         原始广告图片及其 OCR 文字框
  submissions/    （如有）送检的原始文件；submissions.json 为其哈希、收到时间、来源及举报记录
  report.html / report.pdf  中文报告
  custody.json    证据保管链（从抓取到导出的每一步）
  manifest.json   每个文件的 SHA-256 与大小；manifest.sig 为其 Ed25519 签名；public_key.pem 为公钥
  manifest.tsr    （如有）RFC 3161 可信时间戳令牌

校验：jianfu verify <本文件>
签名公钥指纹：{fp}
请向出具单位核对该指纹（jianfu verify --pubkey 出具单位公钥.pem）。
"""


def sha256_bytes(data: bytes) -> bytes:
    import hashlib
    return hashlib.sha256(data).digest()


def _json(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=False) + "\n").encode("utf-8")


def _whoami() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def export(store_dir: str | Path, out: str | Path, req: ExportRequest,
           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    return Exporter(store_dir, out, req, progress).run()


__all__ = ["ExportError", "ExportRequest", "export", "signed_message", "UNSIGNED", "FORMAT"]
