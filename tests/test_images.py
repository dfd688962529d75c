"""Safe decoding, tiling, QR, pHash, SVG, serialisation and finding→box mapping.

These tests use a fake OCR engine (fast); real OCR is in tests/test_ocr.py.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from demo_site import adgen
from detectors.images import (
    ImageReading,
    ImageRejected,
    boxes_for_span,
    decode_image,
    image_findings,
    ocr_image,
    perceptual_hash,
    phash_distance,
    read_image,
    sniff,
    tile_spans,
)
from detectors.ocr import OcrLine
from detectors.ocr.model import make_box, reading_order, to_simplified


class BandEngine:
    """Finds horizontal bands of dark pixels and 'reads' each as a line named by its width."""

    name = "fake-bands"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def read_pil(self, image: Image.Image) -> list[OcrLine]:
        self.calls.append(image.size)
        a = np.asarray(image.convert("L")) < 100
        rows = np.flatnonzero(a.any(axis=1))
        lines = []
        if rows.size:
            groups = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)
            for g in groups:
                top, bottom = int(g[0]), int(g[-1]) + 1
                cols = np.flatnonzero(a[top:bottom].any(axis=0))
                left, right = int(cols[0]), int(cols[-1]) + 1
                lines.append(OcrLine(f"band{right - left}", make_box(
                    [(left, top), (right, top), (right, bottom), (left, bottom)]), 0.99))
        return lines


def png(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


# -- rejection --------------------------------------------------------------------------------


def test_empty_and_wrong_content_type():
    with pytest.raises(ImageRejected) as e:
        decode_image(b"")
    assert e.value.code == "empty"
    with pytest.raises(ImageRejected) as e:
        decode_image(b"<!DOCTYPE html><html><body>not found</body></html>")
    assert e.value.code == "not_an_image" and "HTML" in e.value.reason
    with pytest.raises(ImageRejected) as e:
        decode_image(b"%PDF-1.7 ...")
    assert e.value.code == "not_an_image"


def test_corrupt_and_truncated():
    good = png(Image.new("RGB", (300, 200), "white"), "JPEG")
    with pytest.raises(ImageRejected) as e:
        decode_image(good[: len(good) // 2])
    assert e.value.code == "corrupt"
    with pytest.raises(ImageRejected) as e:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    assert e.value.code == "corrupt"
    pngbytes = png(Image.effect_noise((300, 200), 50))
    with pytest.raises(ImageRejected):
        decode_image(pngbytes[:-200])


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height, with a tiny (invalid-size) IDAT: a bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_rejected_before_decoding():
    with pytest.raises(ImageRejected) as e:
        decode_image(_png_header_only(50_000, 50_000))  # 2.5 GP: Pillow's own bomb guard
    assert e.value.code == "too_many_pixels"
    with pytest.raises(ImageRejected) as e:
        decode_image(_png_header_only(10_000, 5_000))  # 50 MP: ours (40 MP)
    assert e.value.code == "too_many_pixels"
    # a real, highly compressible bomb: 8000×6000 of zeros is ~50 KB of PNG
    bomb = png(Image.new("L", (8000, 6000), 0))
    assert len(bomb) < 200_000
    with pytest.raises(ImageRejected) as e:
        decode_image(bomb)
    assert e.value.code == "too_many_pixels"


def test_byte_cap():
    with pytest.raises(ImageRejected) as e:
        decode_image(b"\xff\xd8\xff" + b"\0" * 100, max_bytes=50)
    assert e.value.code == "too_large"


@pytest.mark.parametrize("size", [(1, 1), (48, 48), (600, 10), (16, 300)])
def test_tiny_images_skipped(size):
    for fmt in ("PNG", "GIF"):
        with pytest.raises(ImageRejected) as e:
            decode_image(png(Image.new("RGB", size, "white"), fmt))
        assert e.value.code == "too_small"


# -- formats ----------------------------------------------------------------------------------


def test_formats_sniffed_not_trusted():
    img = Image.new("RGB", (200, 100), (250, 10, 10))
    for fmt, name in [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp"), ("BMP", "bmp")]:
        data = png(img, fmt)
        assert sniff(data) == name
        d = decode_image(data)
        assert (d.format, d.width, d.height, d.image.mode) == (name, 200, 100, "RGB")


def test_transparent_png_composited_on_white():
    img = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
    img.paste((0, 0, 0, 255), (50, 40, 150, 60))
    d = decode_image(png(img))
    assert d.image.getpixel((5, 5)) == (255, 255, 255)
    assert d.image.getpixel((100, 50)) == (0, 0, 0)


def test_animated_gif_first_frame():
    ad = adgen.animated_gif(["第一帧文字", "第二帧文字", "第三帧"])
    d = decode_image(ad.data)
    assert d.format == "gif" and d.animated and d.image.size == (640, 160)
    # the first frame's text is where the ground truth says
    left, top, right, bottom = ad.boxes[0]
    crop = np.asarray(d.image.convert("L").crop((left, top, right, bottom)))
    assert (crop < 100).mean() > 0.05


def test_svg_text_read_without_ocr():
    ad = adgen.svg_ad(["幼小衔接拼音班", "報名熱線 010-1234"])
    reading = read_image(ad.data, engine=None)
    assert reading.format == "svg" and (reading.width, reading.height) == (600, 200)
    assert reading.text == "幼小衔接拼音班\n报名热线 010-1234"  # traditional → simplified
    found = image_findings(reading)
    assert {f.category for f, _ in found} == {"preschool_subject"}  # 幼小衔接, and the 拼音班 it names
    (box,) = next(boxes for f, boxes in found if f.text == "幼小衔接")
    assert box[0][0] == pytest.approx(20) and box[1][0] == pytest.approx(20 + 4 * 32, abs=1)


def test_svg_entity_bomb_refused():
    bomb = (b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><text>&b;</text></svg>')
    with pytest.raises(ImageRejected):
        decode_image(bomb)


# -- tiling -----------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 60_000), tile=st.integers(200, 2000), frac=st.floats(0.05, 0.45))
def test_tile_cores_partition_the_image(length, tile, frac):
    overlap = int(tile * frac)
    spans = tile_spans(length, tile, overlap)
    assert spans[0][2] == 0 and spans[-1][3] == length
    for (s, e, cs, ce), nxt in zip(spans, spans[1:] + [None], strict=True):
        assert 0 <= s < e <= length and e - s <= tile and s <= cs <= ce <= e
        if nxt is not None:
            assert ce == nxt[2]  # cores touch: every centre belongs to exactly one tile
            assert e - nxt[0] >= overlap  # neighbours overlap
            assert ce - nxt[0] >= overlap // 2 - 1 and e - ce >= overlap // 2 - 1


def test_tall_image_tiles_map_boxes_back_and_drop_overlap_duplicates():
    width, height = 750, 20000
    img = Image.new("RGB", (width, height), "white")
    bands = [(100, 130, 400), (19_700, 19_740, 600)]  # (top, bottom, width): one at the very bottom
    # and one band on every tile boundary region, to catch double counting in overlaps
    spans = tile_spans(height, 960, 240)
    for (_, _, _, ce) in spans[:-1]:
        bands.append((ce - 15, ce + 15, 300))
    for top, bottom, w in bands:
        img.paste((0, 0, 0), (40, top, 40 + w, bottom))
    engine = BandEngine()
    lines = ocr_image(img, engine)
    assert len(engine.calls) == len(spans) > 20
    assert len(lines) == len(bands)  # each band once, none lost in a cut
    got = sorted((round(ln.bbox[1]), round(ln.bbox[3]), ln.text) for ln in lines)
    want = sorted((t, b, f"band{w}") for t, b, w in bands)
    assert got == want
    assert lines[-1].bbox == (40, 19_700, 640, 19_740)  # the bottom line, in full-image pixels


def test_small_images_not_tiled():
    engine = BandEngine()
    img = Image.new("RGB", (1200, 300), "white")
    img.paste((0, 0, 0), (10, 10, 100, 40))
    assert [ln.text for ln in ocr_image(img, engine)] == ["band90"]
    assert engine.calls == [(1200, 300)]


# -- QR, pHash, serialisation -----------------------------------------------------------------


def test_qr_decoded_and_reading_round_trips_through_json():
    ad = adgen.render(["扫码报名"], qr="https://example.org/ad/42?src=banner", font_size=40)
    reading = read_image(ad.data, BandEngine())
    assert reading.qr == ["https://example.org/ad/42?src=banner"]
    again = ImageReading.from_dict(json.loads(json.dumps(reading.to_dict(), ensure_ascii=False)))
    assert again == reading
    assert again.to_dict()["text"] == reading.text
    assert len(reading.sha256) == 64 and reading.bytes == len(ad.data)


def test_phash_stable_under_recompression_and_resize():
    ad = adgen.busy_poster(__import__("random").Random(7))
    img = Image.open(io.BytesIO(ad.data)).convert("RGB")
    h0 = read_image(ad.data, BandEngine()).phash
    assert h0 == perceptual_hash(img)  # read from the grey copy: the colour image's pHash, as stored before
    for quality in (95, 70, 40):
        assert phash_distance(h0, read_image(png(img, "JPEG", quality=quality), BandEngine()).phash) <= 6
    smaller = img.resize((img.width * 2 // 3, img.height * 2 // 3))
    assert phash_distance(h0, read_image(png(smaller), BandEngine()).phash) <= 8
    other = adgen.busy_poster(__import__("random").Random(8))
    assert phash_distance(h0, read_image(other.data, BandEngine()).phash) > 10


# -- text helpers and finding → box mapping ---------------------------------------------------


def test_traditional_to_simplified():
    assert to_simplified("華杯賽金牌教練 學前班報名") == "华杯赛金牌教练 学前班报名"


def test_reading_order_rows_then_columns():
    def line(t, x, y):
        return OcrLine(t, make_box([(x, y), (x + 50, y), (x + 50, y + 20), (x, y + 20)]), 1.0)
    lines = [line("c", 0, 100), line("b", 200, 3), line("a", 0, 0)]
    assert [ln.text for ln in reading_order(lines)] == ["a", "b", "c"]


def test_finding_spans_map_to_sub_boxes_across_lines():
    lines = [
        OcrLine("热烈祝贺幼小", make_box([(0, 0), (600, 0), (600, 100), (0, 100)]), 0.9),
        OcrLine("衔接班开课", make_box([(0, 200), (500, 200), (500, 300), (0, 300)]), 0.9),
    ]
    # "幼小衔接" spans the line break: text is "热烈祝贺幼小\n衔接班开课"
    boxes = boxes_for_span(lines, 4, 9)
    assert boxes == [((400.0, 0.0), (600.0, 0.0), (600.0, 100.0), (400.0, 100.0)),
                     ((0.0, 200.0), (200.0, 200.0), (200.0, 300.0), (0.0, 300.0))]
    reading = ImageReading("0" * 64, 1, 600, 300, "png", [
        OcrLine("幼小衔接拼音班", make_box([(10, 10), (710, 10), (710, 110), (10, 110)]), 0.9)], [], "", "x")
    found = {f.text: (f, boxes) for f, boxes in image_findings(reading)}
    finding, (box,) = found["幼小衔接"]
    assert finding.category == "preschool_subject"
    assert box == ((10.0, 10.0), (410.0, 10.0), (410.0, 110.0), (10.0, 110.0))
