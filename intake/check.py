"""Check now: read what was sent in, detect, keep it as evidence, report the findings.

``Checker`` checks files (images, phone photos, PDFs, saved HTML/MHTML pages) in this process: each
one is inspected before it is read (``intake.uploads``), its original bytes are kept as a blob and
as a WARC resource record of the check's scan (so ``jianfu export`` packs it like any capture),
and its text and images go through the same detectors and OCR as a crawl. A submission's findings
are recorded under ``submission://<first 16 hex of its sha256>/`` (``…/p3`` for page 3 of a PDF),
so the same file sent twice gives the same findings and cases, never duplicates.

``check_urls`` checks links: a one-page scan of each (depth 0, rendered in Chromium) by the
crawler — the same capture as ``jianfu scan --render``. It runs Twisted, so once per process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.images import (
    ImageReading,
    ImageRejected,
    decode_image,
    decode_qr,
    image_findings,
    ocr_image,
    perceptual_hash,
)
from detectors.ocr.model import reading_order
from detectors.paragraphs import Layout, continued_paragraphs
from intake.documents import DocPage, PageImage, pdf_pages, saved_page
from intake.photo import lines_on_photo, straighten
from intake.uploads import MAX_PIXELS, UploadRefused, inspect_upload, register_heif
from store import Store

# Submissions are often phone photos (perspective, blur, glare): the int8 OCR models a scan reads
# web images with lose accuracy on them (bench check, 24 moderate photos: CER 2.3 → 5.3 %, keywords
# 53 → 47 of 61; docs/ocr.md), so a check reads with the full-precision models.
SUBMISSION_OCR = {"int8": False}


@dataclass
class Result:
    """One submission, checked (or refused)."""

    id: str
    name: str
    kind: str
    status: str                         # checked | refused | failed
    sha256: str | None = None
    bytes: int = 0
    reason: str | None = None
    page_url: str | None = None
    scan_id: str | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def submission_url(sha256: str) -> str:
    return f"submission://{sha256[:16]}/"


def _detector(store: Store) -> Any:
    from detectors.precedents import default_precedent_detector, reviewed_precedents

    return default_precedent_detector().with_precedents(reviewed_precedents(store.reviewed_findings()))


def _text_lines_continued(text: str) -> list[int]:
    """PDF text layers break lines where the layout wraps: consecutive non-empty lines are one
    paragraph (read together, so negation and context cross the breaks)."""
    lines = text.split("\n")
    return [i for i in range(1, len(lines)) if lines[i].strip() and lines[i - 1].strip()]


class Checker:
    """Checks files into ``store`` as one scan (begun at the first file, finished by ``close``)."""

    def __init__(self, store: Store, *, institution: str | None = None, district: str | None = None,
                 source: str | None = None, tip_id: str | None = None, engine: Any = None,
                 detector: Any = None) -> None:
        self.store = store
        self.institution = institution or None
        self.district = district or None
        self.source = source or None
        self.tip_id = tip_id
        self._engine = engine
        self._detector = detector
        self.scan_id: str | None = None
        self.warc: Any = None

    # -- the scan the checks are recorded in -----------------------------------------------------
    def _begin(self) -> None:
        if self.scan_id:
            return
        from crawler.warc import WarcWriter, utc_stamp
        from jianfu import __version__

        self.scan_id = self.store.begin_scan([], {"intake": "check", "source": self.source, "tip": self.tip_id},
                                             target="即时检查")
        self.warc = WarcWriter(self.store.dir / "warc", self.scan_id, {
            "operator": "jianfu check", "created": utc_stamp(), "jianfu-version": __version__,
            "description": "files sent in to be checked (jianfu check / 即时检查 / 举报)"})

    def close(self) -> None:
        if self.warc is not None:
            self.warc.close()
            self.store.finish_scan(self.scan_id)
            self.warc = None

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from detectors.ocr import load_engine

            self._engine = load_engine(**SUBMISSION_OCR)
        return self._engine

    @property
    def detector(self) -> Any:
        if self._detector is None:
            self._detector = _detector(self.store)
        return self._detector

    # -- one file --------------------------------------------------------------------------------
    def check_file(self, data: bytes, name: str, *, beside: Path | None = None) -> Result:
        sha = hashlib.sha256(data).hexdigest()
        base = dict(name=name, sha256=sha, bytes=len(data), submitted_by=self.source,
                    institution=self.institution, district=self.district, tip_id=self.tip_id)
        try:
            kind = inspect_upload(data, name)
        except UploadRefused as e:
            sid = self.store.add_submission(kind="file", status="refused", reason=e.reason,
                                            details={"code": e.code}, **base)
            return Result(sid, name, "file", "refused", sha, len(data), e.reason, details={"code": e.code})
        self._begin()
        url = submission_url(sha)
        self.store.put_blob(data)
        offset = self.warc.write_resource(url, kind.media_type, data, {
            "X-Jianfu-Submitted-Name": name.encode("ascii", "backslashreplace").decode(),
            "X-Jianfu-Submitted-By": (self.source or "").encode("ascii", "backslashreplace").decode()})
        self.store.record_fetch(self.scan_id, url, kind="page", status=200,
                                headers={"Content-Type": kind.media_type}, warc_file=self.warc.name,
                                warc_offset=offset)
        page_fields = dict(final_url=url, status=200, content_type=kind.media_type, content_sha256=sha,
                           institution=self.institution, warc_file=self.warc.name, warc_offset=offset)
        ids: list[str] = []
        details: dict[str, Any] = {"format": kind.format}
        pages: list[str] = []
        try:
            if kind.kind == "image":
                self.store.save_page(self.scan_id, url, title=name, text="", **page_fields)
                pages.append(url)
                ids += self._image(url, url, data, kind.format, photo=True, details=details)
            elif kind.kind == "pdf":
                n = 0
                for page in pdf_pages(data):
                    n += 1
                    page_url = f"{url}p{page.number}"
                    pages.append(page_url)
                    ids += self._page(page_url, page, f"{name} 第{page.number}页", page_fields,
                                      _text_lines_continued(page.text), details)
                details["pages"] = n
            else:
                saved = saved_page(data, kind.kind, beside=beside)
                details["original_url"] = saved.original_url
                pages.append(url)
                ids += self._page(url, saved.page, saved.page.title or name, page_fields,
                                  saved.page.continued_lines, details, title_first=bool(saved.page.title))
        except UploadRefused as e:
            sid = self.store.add_submission(kind=kind.kind, media_type=kind.media_type, status="refused",
                                            reason=e.reason, scan_id=self.scan_id, details={"code": e.code}, **base)
            return Result(sid, name, kind.kind, "refused", sha, len(data), e.reason, scan_id=self.scan_id)
        except Exception as e:  # noqa: BLE001 - a file the parsers choke on is this item's failure, not the run's
            reason = f"“{name}”无法读取（{type(e).__name__}: {str(e)[:200]}），原始文件已保存"
            sid = self.store.add_submission(kind=kind.kind, media_type=kind.media_type, status="failed",
                                            reason=reason, scan_id=self.scan_id, page_url=url, **base)
            return Result(sid, name, kind.kind, "failed", sha, len(data), reason, url, self.scan_id)
        findings = list(self.store.findings(ids=ids)) if ids else []
        cases = sorted({f["case_id"] for f in findings if f.get("case_id")})
        sid = self.store.add_submission(kind=kind.kind, media_type=kind.media_type, status="checked",
                                        scan_id=self.scan_id, page_url=url, findings=len(findings),
                                        details=details, **base)
        if self.tip_id and cases:
            self.store.link_tip_cases(self.tip_id, cases)
        return Result(sid, name, kind.kind, "checked", sha, len(data), None, url, self.scan_id, findings, cases,
                      details)

    def _page(self, page_url: str, page: DocPage, title: str, page_fields: dict[str, Any],
              continued: list[int], details: dict[str, Any], title_first: bool = False) -> list[str]:
        """A page of text with images: its text detected, each image read."""
        text = f"{title}\n{page.text}" if title_first else page.text
        self.store.save_page(self.scan_id, page_url, title=title, text=text, **page_fields)
        layout = Layout.of(text, continued_paragraphs(continued, offset=1 if title_first else 0))
        ids = self.store.save_findings(self.scan_id, page_url, "text", text, layout.detect(self.detector.detect),
                                       institution=self.institution, district=self.district)
        images = details.setdefault("images", [])
        for k, image in enumerate(page.images, 1):
            ids += self._embedded(page_url, f"{page_url}/image{k}", image, images)
        return ids

    def _embedded(self, page_url: str, image_url: str, image: PageImage, notes: list[dict[str, Any]]) -> list[str]:
        """An image inside a PDF page or saved web page."""
        note: dict[str, Any] = {"page": page_url, "name": image.name, "url": image_url}
        notes.append(note)
        if image.data is None:
            note["reason"] = image.reason
            self.store.link_image(self.scan_id, page_url, image_url, None, error=image.reason)
            return []
        try:
            kind = inspect_upload(image.data, image.name)
            if kind.kind != "image":
                raise UploadRefused("不是图片", "not_an_image")
        except UploadRefused as e:
            note["reason"] = e.reason
            self.store.link_image(self.scan_id, page_url, image_url, hashlib.sha256(image.data).hexdigest(),
                                  error=e.reason)
            return []
        offset = self.warc.write_resource(image_url, kind.media_type, image.data)
        self.store.record_fetch(self.scan_id, image_url, kind="image", status=200,
                                headers={"Content-Type": kind.media_type}, warc_file=self.warc.name,
                                warc_offset=offset)
        self.store.put_blob(image.data)
        return self._image(page_url, image_url, image.data, kind.format, photo=False, details=note)

    def _image(self, page_url: str, image_url: str, data: bytes, fmt: str, *, photo: bool,
               details: dict[str, Any]) -> list[str]:
        """Read one image (cached by sha256), link it to its page, save its findings."""
        sha = hashlib.sha256(data).hexdigest()
        cached = self.store.image(sha)
        if cached and cached.get("ocr"):
            reading = ImageReading.from_dict(json.loads(cached["ocr"]))
            details.update(json.loads(cached["ocr"]).get("photo") or {})
        else:
            try:
                reading, photo_info = self.read(data, fmt, photo=photo)
            except ImageRejected as e:
                reason = f"图片无法读取：{e.reason}"
                self.store.save_image(sha, bytes=len(data), error=reason)
                self.store.link_image(self.scan_id, page_url, image_url, sha, error=reason)
                details["reason"] = reason
                return []
            details.update(photo_info)
            self.store.save_image(sha, bytes=len(data), width=reading.width, height=reading.height,
                                  format=reading.format, phash=reading.phash, ocr_engine=reading.engine,
                                  ocr=json.dumps(reading.to_dict() | {"photo": photo_info}, ensure_ascii=False),
                                  qr=reading.qr)
        details["ocr_text"] = reading.text[:2000]
        self.store.link_image(self.scan_id, page_url, image_url, sha)
        found = image_findings(reading, self.detector)
        return self.store.save_findings(self.scan_id, page_url, "image", reading.text, [f for f, _ in found],
                                        image_url=image_url, image_sha256=sha, boxes=[b for _, b in found],
                                        institution=self.institution, district=self.district)

    def read(self, data: bytes, fmt: str, *, photo: bool) -> tuple[ImageReading, dict[str, Any]]:
        """OCR an image; a photo is first straightened (``intake.photo``) and its boxes mapped back."""
        sha = hashlib.sha256(data).hexdigest()
        if fmt == "heic":
            image = _decode_heic(data)
        else:
            decoded = decode_image(data, max_pixels=MAX_PIXELS)
            if decoded.image is None:  # SVG: its text is read directly
                return ImageReading(sha, len(data), decoded.width, decoded.height, "svg", decoded.svg_lines, [],
                                    "", "svg-text"), {}
            image = decoded.image
        info: dict[str, Any] = {}
        flat, matrix = image, None
        if photo:
            flat, matrix, info = straighten(image)
        lines = reading_order(lines_on_photo(ocr_image(flat, self.engine), matrix))
        return ImageReading(sha, len(data), image.width, image.height, fmt, lines, decode_qr(image),
                            perceptual_hash(image), str(getattr(self.engine, "name", type(self.engine).__name__))), \
            {"photo": info} if photo else {}


def _decode_heic(data: bytes) -> Any:
    from PIL import Image, ImageOps

    register_heif()
    import io

    try:
        with Image.open(io.BytesIO(data)) as im:
            return ImageOps.exif_transpose(im).convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise ImageRejected(f"HEIC 图片无法解码（{type(e).__name__}）", "corrupt") from e


def check_urls(store_dir: str | Path, urls: list[str], *, institution: str | None = None,
               district: str | None = None, source: str | None = None, tip_id: str | None = None) -> list[Result]:
    """Check links now: one rendered page each (a depth-0 scan by the crawler), then record each as
    a submission. A link that is not http(s) is refused without fetching."""
    from urllib.parse import urlsplit

    from crawler.context import Seed
    from crawler.runner import ScanOptions, run_scan
    from store.db import canonical_page_url

    seeds, results = [], []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            with Store(store_dir) as store:
                reason = f"“{url}”不是 http(s) 网址"
                sid = store.add_submission(kind="url", url=url, status="refused", reason=reason, submitted_by=source,
                                           institution=institution, district=district, tip_id=tip_id)
            results.append(Result(sid, url, "url", "refused", reason=reason))
            continue
        seeds.append(Seed(url=url if parts.path else url + "/", institution=institution or parts.netloc,
                          district=district, render=True))
    if not seeds:
        return results
    summary = run_scan(seeds, str(store_dir), ScanOptions(max_depth=0, max_pages=len(seeds), render=True,
                                                          target="即时检查", progress_seconds=3600))
    scan_id = summary["scan_id"]
    failures = {f["url"]: f for f in summary.get("failures", [])}
    with Store(store_dir) as store:
        for seed in seeds:
            page_url = canonical_page_url(seed.url)
            page = store.page(scan_id, page_url)
            base = dict(kind="url", url=seed.url, submitted_by=source, institution=institution, district=district,
                        tip_id=tip_id, scan_id=scan_id, page_url=page_url)
            if page is None:
                failure = failures.get(seed.url) or next(iter(failures.values()), None)
                reason = f"网页未能打开：{(failure or {}).get('reason') or '未取得页面'}"
                sid = store.add_submission(status="failed", reason=reason, **base)
                results.append(Result(sid, seed.url, "url", "failed", reason=reason, scan_id=scan_id))
                continue
            findings = [f for f in store.findings(scan_id=scan_id) if f["url"] == page_url]
            cases = sorted({f["case_id"] for f in findings if f.get("case_id")})
            details = {"title": page.get("title"), "rendered": bool(page.get("rendered")),
                       "images": [dict(r) for r in store.db.execute(
                           "SELECT image_url, sha256, error FROM page_images WHERE scan_id=? AND page_url=?",
                           (scan_id, page_url))]}
            sid = store.add_submission(status="checked", sha256=page.get("content_sha256"), findings=len(findings),
                                       media_type=page.get("content_type"), details=details, **base)
            if tip_id and cases:
                store.link_tip_cases(tip_id, cases)
            results.append(Result(sid, seed.url, "url", "checked", page.get("content_sha256"), 0, None, page_url,
                                  scan_id, findings, cases, details))
    return results
