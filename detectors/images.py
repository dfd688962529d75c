"""Reading ad images: safe decoding, OCR (tiled for long images), QR codes, perceptual hash, and
findings mapped back to boxes in the image.

    reading = read_image(data, load_engine())        # raises ImageRejected(reason)
    for finding, boxes in image_findings(reading):    # boxes in reading's pixels
        ...

Every check on untrusted bytes happens *before* pixels are decoded: byte cap, format sniffed from
magic bytes (never from a Content-Type header), header dimensions against a pixel cap
(decompression bombs), and tiny images (icons, spacers, tracking pixels) are skipped. SVG is not
rasterised: its ``<text>`` is read directly. ``ImageReading`` is JSON-serialisable so the store can
cache it by sha256 and no image is OCR'd twice.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageFile, ImageOps

from detectors.model import Finding
from detectors.ocr.model import Box, OcrLine, make_box, reading_order, to_simplified
from detectors.paragraphs import Layout, ocr_paragraphs

MAX_BYTES = 20 * 1024 * 1024  # larger downloads are not ad images
MAX_PIXELS = 40_000_000  # checked from the header, before decoding
MIN_SIDE = 20  # thinner than this: a rule, a spacer, a tracking pixel
MIN_AREA = 4000  # smaller than this (e.g. 48×48, 60×60): an icon, not an ad

# Long images (phone posters, 750×20000 "long pictures") are read in overlapping tiles: the
# detector scales its input to 960 px on the long side, which would shrink such text to nothing.
TILE_RATIO = 2.5  # height/width above which an image is tiled ...
TILE_MIN_LONG = 2000  # ... when it is also at least this tall
TILE_MIN_LEN = 960  # a tile is max(width, this) tall, and the detector reads it at ≥ this size
TILE_OVERLAP = 0.25  # fraction of the tile shared with the next; lines up to this tall survive a cut

FORMATS = ("png", "jpeg", "gif", "webp", "bmp", "svg")
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP", "bmp": "BMP"}


class ImageRejected(ValueError):
    """These bytes will not be read as an image. ``reason`` is one line for a person;
    ``code`` is one of: too_large, too_many_pixels, too_small, not_an_image, unsupported,
    corrupt, empty."""

    def __init__(self, reason: str, code: str = "corrupt") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


# -- sniffing and decoding -------------------------------------------------------------------

_SVG_HEAD = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!DOCTYPE\s+svg[^>]*>\s*)?<svg[\s>]", re.S | re.I)


def sniff(data: bytes) -> str | None:
    """The image format from the first bytes, or None. Headers and file names are not trusted."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(data) > 26:
        return "bmp"
    text_head = data[:2048].lstrip(b"\xef\xbb\xbf")
    if _SVG_HEAD.match(text_head) or (text_head.lstrip().startswith(b"<?xml") and b"<svg" in text_head):
        return "svg"
    return None


def _describe(data: bytes) -> str:
    head = data[:64].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "an HTML page"
    if head.startswith(b"%pdf"):
        return "a PDF"
    if head.startswith((b"{", b"[")):
        return "JSON or text"
    if head[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "an AVIF/HEIC image (not supported)"
    return f"unknown bytes {data[:8].hex()}"


@dataclass
class DecodedImage:
    """A decoded image: ``image`` is RGB (first frame, EXIF-rotated, transparency on white), or
    None for SVG, whose text is in ``svg_lines``."""

    image: Image.Image | None
    width: int
    height: int
    format: str
    animated: bool = False
    svg_lines: list[OcrLine] = field(default_factory=list)


def decode_image(
    data: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    min_area: int = MIN_AREA,
) -> DecodedImage:
    """Decode untrusted image bytes or raise :class:`ImageRejected`."""
    if not data:
        raise ImageRejected("empty body", "empty")
    if len(data) > max_bytes:
        raise ImageRejected(f"{len(data)} bytes is over the {max_bytes}-byte limit", "too_large")
    fmt = sniff(data)
    if fmt is None:
        raise ImageRejected(f"not an image: {_describe(data)}", "not_an_image")
    if fmt == "svg":
        return _decode_svg(data, max_pixels=max_pixels, min_side=min_side, min_area=min_area)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageRejected(f"decompression bomb: {e}", "too_many_pixels") from e
    except Exception as e:
        raise ImageRejected(f"corrupt {fmt}: {e}", "corrupt") from e
    width, height = im.size
    _check_size(width, height, max_pixels, min_side, min_area)
    animated = False
    try:
        animated = bool(getattr(im, "is_animated", False))
        if animated:
            im.seek(0)
        prev = ImageFile.LOAD_TRUNCATED_IMAGES
        if prev:  # someone switched truncated loading on globally; we still want to know
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.load()
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = prev
        if fmt in ("jpeg", "webp", "png"):
            ImageOps.exif_transpose(im, in_place=True)  # not a copy of every image (issue 18)
        rgb = _to_rgb(im)
    except ImageRejected:
        raise
    except Exception as e:
        raise ImageRejected(f"corrupt or truncated {fmt}: {e}", "corrupt") from e
    return DecodedImage(rgb, rgb.width, rgb.height, fmt, animated=animated)


def _check_size(width: int, height: int, max_pixels: int, min_side: int, min_area: int) -> None:
    if width * height > max_pixels:
        raise ImageRejected(
            f"{width}×{height} = {width * height} pixels is over the {max_pixels}-pixel limit "
            "(decompression bomb?)", "too_many_pixels")
    if min(width, height) < min_side or width * height < min_area:
        raise ImageRejected(f"{width}×{height} is too small to carry an ad (icon or spacer)", "too_small")


def _to_rgb(im: Image.Image) -> Image.Image:
    """``im`` (just decoded: nobody else holds it) as RGB, over white where it was transparent."""
    if im.mode == "RGB":
        return im
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")


# -- SVG: read <text>, never rasterise -------------------------------------------------------

_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?", re.I)


def _num(value: str | None, default: float = 0.0) -> float:
    m = _NUM.match((value or "").strip())
    return float(m.group(0)) if m else default


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _font_size(el: ET.Element, inherited: float) -> float:
    size = el.get("font-size")
    style = el.get("style") or ""
    m = re.search(r"font-size\s*:\s*([\d.]+)", style)
    if m:
        size = m.group(1)
    return _num(size, inherited) if size else inherited


def _text_width(text: str) -> float:
    """Width of ``text`` in em (CJK one em, Latin and digits about half)."""
    return sum(_char_weight(c) for c in text)


def _decode_svg(data: bytes, *, max_pixels: int, min_side: int, min_area: int) -> DecodedImage:
    if re.search(rb"<!ENTITY", data[:65536], re.I):
        raise ImageRejected("SVG with entity declarations refused (XML bomb guard)", "corrupt")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise ImageRejected(f"corrupt svg: {e}", "corrupt") from e
    if _local(root.tag) != "svg":
        raise ImageRejected("not an image: XML without an <svg> root", "not_an_image")
    vb = [_num(v) for v in re.split(r"[\s,]+", (root.get("viewBox") or "").strip()) if v]
    width = _num(root.get("width"), vb[2] if len(vb) == 4 else 0.0)
    height = _num(root.get("height"), vb[3] if len(vb) == 4 else 0.0)
    if width and height:
        _check_size(int(width), int(height), max_pixels, min_side=1, min_area=1)
    lines: list[OcrLine] = []

    def walk(el: ET.Element, size: float) -> None:
        size = _font_size(el, size)
        if _local(el.tag) == "text":
            raw = " ".join(t.strip() for t in el.itertext() if t.strip())
            if raw:
                x = _num((el.get("x") or "0").split()[0] if el.get("x") else None)
                y = _num((el.get("y") or "0").split()[0] if el.get("y") else None)
                w = _text_width(raw) * size
                anchor = el.get("text-anchor") or ""
                if anchor == "middle":
                    x -= w / 2
                elif anchor == "end":
                    x -= w
                top, bottom = y - size * 0.88, y + size * 0.12
                lines.append(OcrLine(to_simplified(raw),
                                     make_box([(x, top), (x + w, top), (x + w, bottom), (x, bottom)]), 1.0))
            return
        for child in el:
            if _local(child.tag) not in ("script", "style", "title", "desc", "metadata"):
                walk(child, size)

    walk(root, 16.0)
    return DecodedImage(None, int(width), int(height), "svg", svg_lines=reading_order(lines))


# -- OCR, with tiles for long images ---------------------------------------------------------


def _read_tile(engine: Any, tile: Image.Image, min_side_len: int | None = None) -> list[OcrLine]:
    read_pil = getattr(engine, "read_pil", None)
    if read_pil is not None:
        if min_side_len and getattr(engine, "name", "").startswith("rapidocr"):
            return read_pil(tile, min_side_len=min_side_len)
        return read_pil(tile)
    buf = io.BytesIO()
    tile.save(buf, "PNG")
    return engine.read(buf.getvalue())


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Cut ``length`` into tiles of ``tile`` sharing ``overlap``; returns (start, end, core_start,
    core_end) per tile, where the cores partition [0, length): a line belongs to the tile whose
    core holds its centre (so a line in an overlap is kept once, from the tile that sees it whole)."""
    if length <= tile:
        return [(0, length, 0, length)]
    step = tile - overlap
    starts = list(range(0, length - tile, step)) + [length - tile]
    out = []
    for i, s in enumerate(starts):
        core_start = 0 if i == 0 else (starts[i - 1] + tile + s) // 2
        core_end = length if i == len(starts) - 1 else (s + tile + starts[i + 1]) // 2
        out.append((s, s + tile, core_start, core_end))
    return out


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _meaningful(lines: list[OcrLine]) -> list[OcrLine]:
    """Drop lines with no letter, digit or CJK character: rules and borders read as "_", "—"."""
    return [ln for ln in lines if any(ch.isalnum() for ch in ln.text)]


def ocr_image(image: Image.Image, engine: Any) -> list[OcrLine]:
    """OCR a decoded image; long images are read in overlapping tiles and the boxes mapped back to
    full-image pixels, with lines seen twice in an overlap kept once."""
    width, height = image.size
    if not (height > TILE_RATIO * width and height >= TILE_MIN_LONG):
        return reading_order(_meaningful(_read_tile(engine, image)))
    tile = max(width, TILE_MIN_LEN)
    overlap = int(tile * TILE_OVERLAP)
    kept: list[OcrLine] = []
    for start, end, core_start, core_end in tile_spans(height, tile, overlap):
        for line in _meaningful(_read_tile(engine, image.crop((0, start, width, end)), TILE_MIN_LEN)):
            line = line.shifted(0, start)
            left, top, right, bottom = line.bbox
            if not core_start <= (top + bottom) / 2 < core_end:
                continue
            if any(k.text == line.text and _iou(k.bbox, line.bbox) > 0.3 for k in kept):
                continue
            kept.append(line)
    return reading_order(kept)


def engine_read(engine: Any, data: bytes) -> list[OcrLine]:
    """What an engine's ``read(data)`` does: decode safely, then OCR (tiled) or, for SVG, read
    the text elements."""
    decoded = decode_image(data)
    if decoded.image is None:
        return decoded.svg_lines
    return ocr_image(decoded.image, engine)


# -- QR codes and perceptual hash ------------------------------------------------------------


def decode_qr(image: Image.Image) -> list[str]:
    """Payloads of the QR codes in the image (zxing-cpp), in the order found, without repeats."""
    import zxingcpp

    qr_formats = (zxingcpp.BarcodeFormat.QRCode, zxingcpp.BarcodeFormat.MicroQRCode)
    try:
        try:
            found = zxingcpp.read_barcodes(image, formats=qr_formats)  # zxing-cpp 3.x
        except TypeError:
            found = zxingcpp.read_barcodes(image, formats=qr_formats[0] | qr_formats[1])  # 2.x
    except Exception:  # a decoder failure is not a reason to lose the OCR
        return []
    out: list[str] = []
    for code in found:
        if getattr(code, "valid", True) and code.text and code.text not in out:
            out.append(code.text)
    return out


def perceptual_hash(image: Image.Image) -> str:
    """64-bit pHash as 16 hex digits: stable under recompression and resizing, so the same ad
    re-encoded by a CDN is recognised (compare with :func:`phash_distance`)."""
    import imagehash

    return str(imagehash.phash(image))


def phash_distance(a: str, b: str) -> int:
    """Hamming distance between two pHash hex strings (0 = same picture; ≤ 8 ≈ same ad)."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


# -- the reading -----------------------------------------------------------------------------


@dataclass
class ImageReading:
    """What one image says. JSON-serialisable via :meth:`to_dict` / :meth:`from_dict`."""

    sha256: str
    bytes: int
    width: int
    height: int
    format: str
    lines: list[OcrLine]
    qr: list[str]
    phash: str
    engine: str
    animated: bool = False

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256, "bytes": self.bytes, "width": self.width, "height": self.height,
            "format": self.format, "lines": [ln.to_dict() for ln in self.lines], "qr": list(self.qr),
            "phash": self.phash, "engine": self.engine, "animated": self.animated, "text": self.text,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageReading:
        return cls(
            sha256=d["sha256"], bytes=int(d["bytes"]), width=int(d["width"]), height=int(d["height"]),
            format=d["format"], lines=[OcrLine.from_dict(x) for x in d["lines"]], qr=list(d.get("qr", [])),
            phash=d.get("phash", ""), engine=d.get("engine", ""), animated=bool(d.get("animated", False)),
        )


def read_image(data: bytes, engine: Any = None, *, qr: bool = True, **limits: int) -> ImageReading:
    """Decode ``data`` safely and read it: OCR lines with boxes, QR payloads, pHash.
    ``engine`` defaults to ``load_engine()`` (the cached default). Raises :class:`ImageRejected`;
    ``limits`` override max_bytes, max_pixels, min_side, min_area."""
    decoded = decode_image(data, **limits)
    sha = hashlib.sha256(data).hexdigest()
    if decoded.image is None:  # SVG: text read directly
        return ImageReading(sha, len(data), decoded.width, decoded.height, "svg", decoded.svg_lines, [], "",
                            "svg-text")
    if engine is None:
        from detectors.ocr import load_engine

        engine = load_engine()
    img = decoded.image
    # QR codes and the pHash are read from one grey copy: the pHash greys the image itself
    # (the same value), and the QR decoder reads luminance anyway (~0.5 ms a banner less)
    grey = img.convert("L")
    return ImageReading(
        sha256=sha, bytes=len(data), width=img.width, height=img.height, format=decoded.format,
        lines=ocr_image(img, engine), qr=decode_qr(grey) if qr else [], phash=perceptual_hash(grey),
        engine=str(getattr(engine, "name", type(engine).__name__)), animated=decoded.animated,
    )


# -- findings back onto the image ------------------------------------------------------------


def _char_weight(ch: str) -> float:
    return 0.55 if ord(ch) < 0x2E80 else 1.0  # Latin, digits, spaces ≈ half a CJK cell


def sub_box(line: OcrLine, a: int, b: int) -> Box:
    """The part of ``line.box`` holding ``line.text[a:b]``, by interpolating along the box edges
    with CJK characters a full cell wide and Latin/digits about half (an estimate for evidence)."""
    text = line.text
    if a <= 0 and b >= len(text):
        return line.box
    weights = [_char_weight(c) for c in text]
    total = sum(weights) or 1.0
    f0, f1 = sum(weights[:a]) / total, sum(weights[:b]) / total
    p0, p1, p2, p3 = line.box

    def lerp(p: tuple[float, float], q: tuple[float, float], f: float) -> tuple[float, float]:
        return (p[0] + (q[0] - p[0]) * f, p[1] + (q[1] - p[1]) * f)

    return make_box([lerp(p0, p1, f0), lerp(p0, p1, f1), lerp(p3, p2, f1), lerp(p3, p2, f0)])


def line_spans(lines: Iterable[OcrLine]) -> list[tuple[int, int]]:
    """(start, end) of each line in ``"\\n".join(texts)``."""
    spans, pos = [], 0
    for line in lines:
        spans.append((pos, pos + len(line.text)))
        pos += len(line.text) + 1
    return spans


def boxes_for_span(lines: list[OcrLine], start: int, end: int) -> list[Box]:
    """Boxes covering ``text[start:end]`` of the joined lines: one per line the span touches."""
    out = []
    for line, (ls, le) in zip(lines, line_spans(lines), strict=True):
        if start < le and end > ls:
            out.append(sub_box(line, max(start, ls) - ls, min(end, le) - ls))
    return out


def image_findings(reading: ImageReading, detector: Any = None) -> list[tuple[Finding, list[Box]]]:
    """Run ``detector`` (default: the default rule packs) on the reading's paragraphs (the lines of
    one text block joined, ``detectors.paragraphs``) and pair each finding (offsets into
    ``reading.text``) with the box(es) of exactly the lines its words are on, in the reading's
    pixels."""
    detect: Callable[[str], list[Finding]]
    if detector is None:
        from detectors import detect
    else:
        detect = detector.detect if hasattr(detector, "detect") else detector
    layout = Layout.of(reading.text, ocr_paragraphs(reading.lines))
    lines = reading.lines
    return [(f, [sub_box(lines[n], a, b) for n, a, b in pieces])
            for f, pieces in layout.placed(detect(layout.joined))]
