"""``jianfu check`` on generated submissions (intake/): phone photos of a demo ad (perspective, blur,
moiré, glare, JPEG 60, EXIF rotation), a PDF brochure with text and image pages, a saved
WeChat-like article (MHTML, and HTML with its ``_files`` folder) with lazy ``data-src`` images, and
hostile uploads refused with a reason. Real OCR models, a real SQLite store, the real CLI."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from demo_site import submissions as gen
from intake.photo import straighten
from intake.uploads import UploadRefused, inspect_upload
from tests.conftest import jianfu


def db(store: Path) -> sqlite3.Connection:
    con = sqlite3.connect(store / "jianfu.sqlite3")
    con.row_factory = sqlite3.Row
    return con


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("submissions")
    html, resources = gen.wechat_article()
    saved = d / "saved"
    (saved / "文章_files").mkdir(parents=True)
    (saved / "文章_files" / "640.png").write_bytes(next(iter(resources.values())))
    (saved / "文章.html").write_text(html.replace(next(iter(resources)), "文章_files/640.png"), encoding="utf-8")
    out = {"photo": gen.phone_photo(seed=1), "rotated": gen.phone_photo(seed=2, exif_rotate=True),
           "brochure": gen.brochure_pdf(4), "article": gen.mhtml(html, resources),
           "heic": gen.heic(gen.phone_photo(seed=3)), "bomb": gen.pixel_bomb(), "js": gen.pdf_with_javascript(hidden=True), "zip": gen.zip_named_png()}
    names = {"photo": "海报照片.jpg", "rotated": "IMG_0002.JPG", "brochure": "课程手册.pdf", "article": "公众号文章.mhtml", "heic": "IMG_0003.HEIC",
             "bomb": "bomb.png", "js": "招生简章.pdf", "zip": "poster.png"}
    paths = {k: d / names[k] for k in out}
    for k, data in out.items():
        paths[k].write_bytes(data)
    paths["html"] = saved / "文章.html"
    return paths


@pytest.fixture(scope="module")
def checked(files, tmp_path_factory):
    store = tmp_path_factory.mktemp("check-store")
    order = ["photo", "rotated", "heic", "brochure", "article", "html", "bomb", "js", "zip"]
    proc = jianfu("check", *[str(files[k]) for k in order], "--store", str(store), "--source", "家长来电",
                  "--format", "json", timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]   # some were refused: not every item was checked
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == len(order)
    return store, dict(zip(order, results, strict=True))


def categories(result: dict) -> set[str]:
    return {f["category"] for f in result["findings"]}


def test_violations_found_in_phone_photos(checked):
    store, r = checked
    assert r["heic"]["status"] == "checked" and r["heic"]["kind"] == "image"
    assert {"preschool_subject", "guarantee_promise"} <= categories(r["heic"]), r["heic"]["findings"]
    for key in ("photo", "rotated"):
        assert r[key]["status"] == "checked", r[key]
        assert {"preschool_subject", "guarantee_promise"} <= categories(r[key]), r[key]["findings"]
        assert r[key]["details"]["photo"]["straightened"] is True
        # boxes were mapped back onto the submitted photo: inside it, where the poster is
        with Image.open(io.BytesIO(Path(store / "blobs" / r[key]["sha256"][:2] / r[key]["sha256"]).read_bytes())) as im:
            width, height = im.size if key == "photo" else im.size[::-1]
        for f in r[key]["findings"]:
            for box in f["boxes"]:
                for x, y in box:
                    assert -5 <= x <= width + 5 and -5 <= y <= height + 5, (box, width, height)


def test_pdf_text_layer_and_image_pages(checked):
    _, r = checked
    pdf = r["brochure"]
    assert pdf["status"] == "checked" and pdf["details"]["pages"] == 4
    text = [f for f in pdf["findings"] if f["source"] == "text"]
    image = [f for f in pdf["findings"] if f["source"] == "image"]
    assert any(f["url"].endswith("/p1") and f["category"] == "preschool_subject" for f in text)
    assert any(f["url"].endswith("/p1") and f["category"] == "advance_teaching" for f in text)
    # page 2 and 4 hold only a printed ad image: its words are found by OCR
    assert any(f["url"].endswith("/p2") for f in image) and any(f["url"].endswith("/p4") for f in image)


def test_saved_article_lazy_images_read(checked):
    _, r = checked
    for key in ("article", "html"):
        assert r[key]["status"] == "checked", r[key]
        image = [f for f in r[key]["findings"] if f["source"] == "image"]
        assert {"photo_search", "competition_ranking"} <= {f["category"] for f in image}, r[key]
        assert {"advance_teaching", "guarantee_promise"} <= {f["category"] for f in r[key]["findings"]
                                                             if f["source"] == "text"}
    assert r["article"]["details"]["original_url"] == "https://mp.weixin.qq.com/s/AbCdEf123"


def test_hostile_uploads_refused_with_reason(checked):
    store, r = checked
    assert r["bomb"]["status"] == "refused" and "像素炸弹" in r["bomb"]["reason"]
    assert r["js"]["status"] == "refused" and "JavaScript" in r["js"]["reason"]
    assert r["zip"]["status"] == "refused" and "压缩包" in r["zip"]["reason"]
    for key in ("bomb", "js", "zip"):  # recorded with its hash, its bytes not kept, never in a scan
        row = db(store).execute("SELECT * FROM submissions WHERE id=?", (r[key]["id"],)).fetchone()
        assert row["status"] == "refused" and row["sha256"] == r[key]["sha256"] and row["scan_id"] is None
        assert not (store / "blobs" / row["sha256"][:2] / row["sha256"]).exists()


def test_submission_kept_as_evidence(checked, files):
    store, r = checked
    con = db(store)
    for key in ("photo", "brochure", "article"):
        row = con.execute("SELECT * FROM submissions WHERE id=?", (r[key]["id"],)).fetchone()
        data = files[key].read_bytes()
        assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
        assert row["submitted_by"] == "家长来电" and row["received_at"].endswith("Z")
        assert (store / "blobs" / row["sha256"][:2] / row["sha256"]).read_bytes() == data
        fetch = con.execute("SELECT * FROM fetches WHERE scan_id=? AND url=?", (row["scan_id"], row["page_url"])).fetchone()
        assert fetch["warc_file"] and fetch["warc_offset"] is not None


def test_same_file_again_adds_no_duplicates(checked, files):
    store, r = checked
    before = db(store).execute("SELECT COUNT(*) FROM findings").fetchone()[0]
    proc = jianfu("check", str(files["photo"]), "--store", str(store), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert sorted(f["id"] for f in again["findings"]) == sorted(f["id"] for f in r["photo"]["findings"])
    assert db(store).execute("SELECT COUNT(*) FROM findings").fetchone()[0] == before


def test_export_packet_holds_the_submitted_file(checked, files, tmp_path):
    store, r = checked
    case = r["brochure"]["cases"][0]
    out = tmp_path / "packet.zip"
    proc = jianfu("export", "--store", str(store), "--case", case, "--out", str(out), "--no-pdf")
    assert proc.returncode == 0, proc.stderr[-2000:]
    with zipfile.ZipFile(out) as z:
        data = files["brochure"].read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        assert z.read(f"submissions/{sha}") == data
        subs = json.loads(z.read("submissions.json"))
        assert subs["submissions"][0]["sha256"] == sha and subs["submissions"][0]["submitted_by"] == "家长来电"
    assert jianfu("verify", str(out)).returncode == 0


# -- the guard on its own ---------------------------------------------------------------------------

def _refused(data: bytes, name: str = "x.png") -> UploadRefused:
    with pytest.raises(UploadRefused) as e:
        inspect_upload(data, name)
    return e.value


def test_guard_types_by_content_not_name():
    assert inspect_upload(gen.poster().data, "brochure.pdf").kind == "image"
    assert inspect_upload(gen.brochure_pdf(2), "photo.jpg").kind == "pdf"
    html, res = gen.wechat_article()
    assert inspect_upload(html.encode(), "a.png").kind == "html"
    assert inspect_upload(gen.mhtml(html, res), "a.txt").kind == "mhtml"
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        info = tarfile.TarInfo("a.png")
        info.size = 3
        t.addfile(info, io.BytesIO(b"abc"))
    assert _refused(tar.getvalue()).code == "archive"
    assert _refused(b"MZ\x90\x00" + b"\x00" * 100, "setup.jpg").code == "program"
    assert _refused(b"").code == "empty"
    assert _refused(b"hello world, not a poster").code == "unknown_type"
    assert _refused(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10).code == "corrupt"
    assert inspect_upload(gen.poster().data, "big.png").kind == "image"  # under the cap: read
    with pytest.raises(UploadRefused) as e:
        inspect_upload(gen.poster().data, "big.png", max_bytes=1000)
    assert e.value.code == "too_large" and "上限" in e.value.reason


def test_guard_pdf_scripts_and_attachments():
    assert _refused(gen.pdf_with_javascript(), "a.pdf").code == "pdf_active"
    assert _refused(gen.pdf_with_javascript(hidden=True), "a.pdf").code == "pdf_active"
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.embed_file(basename="payload.exe", bytes=b"MZ not really")
    refused = _refused(bytes(pdf.output()), "a.pdf")
    assert refused.code == "pdf_active" and "嵌入文件" in refused.reason
    assert inspect_upload(gen.brochure_pdf(2), "ok.pdf").kind == "pdf"  # a zoom OpenAction ([page /FitH]) is fine


def test_straighten_finds_the_poster_and_leaves_flat_images():
    photo = Image.open(io.BytesIO(gen.phone_photo(seed=5)))
    flat, matrix, info = straighten(photo.convert("RGB"))
    assert info["straightened"] and matrix is not None
    assert 1.2 < flat.width / flat.height < 1.8          # the poster is 900×600
    banner = Image.open(io.BytesIO(gen.poster().data)).convert("RGB")
    assert straighten(banner)[1] is None
    shot = Image.open(io.BytesIO(gen.screenshot_with_frame())).convert("RGB")
    assert straighten(shot)[1] is None
