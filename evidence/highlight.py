"""Drawing what matched: boxes on screenshots and ad images (Pillow).

A box is either four (x, y) points (OCR, ``detectors.ocr``) or ``[x, y, w, h]`` (rendered text
positions, ``pages.text_boxes``); both are drawn as polygons in the image's pixels.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image, ImageDraw

Image.MAX_IMAGE_PIXELS = 120_000_000  # full-page screenshots are tall; still refuse decompression bombs

MATCH = (230, 0, 18)       # 红: the matched words (with a yellow halo, visible on red banners too)
HALO = (255, 230, 0)
OCR = (0, 102, 204)        # 蓝: every OCR line of an ad image
CROP_MAX_HEIGHT = 1400


def polygon(box: Any) -> list[tuple[float, float]] | None:
    """Four points from a quad or an [x, y, w, h] box; None when it is neither."""
    try:
        if len(box) == 4 and all(isinstance(v, int | float) for v in box):
            x, y, w, h = (float(v) for v in box)
            return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        pts = [(float(p[0]), float(p[1])) for p in box]
        return pts if len(pts) >= 3 else None
    except (TypeError, ValueError, IndexError):
        return None


def span_boxes(text_boxes: str | list | None, start: int, end: int) -> list[list[float]]:
    """Boxes of the rendered text runs overlapping [start, end) (``pages.text_boxes``)."""
    if not text_boxes:
        return []
    runs = json.loads(text_boxes) if isinstance(text_boxes, str) else text_boxes
    return [r["box"] for r in runs
            if isinstance(r, dict) and "box" in r and r.get("start", 0) < end and r.get("end", 0) > start]


def draw(data: bytes, boxes: list[Any], color: tuple[int, int, int] = MATCH, *, fill: int = 60,
         width: int | None = None, labels: list[str] | None = None) -> tuple[bytes, tuple[int, int]]:
    """PNG bytes of ``data`` with ``boxes`` outlined (and lightly filled); returns (png, size)."""
    img = Image.open(io.BytesIO(data))
    img.load()
    img = img.convert("RGBA")
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(overlay)
    lw = width or max(2, round(min(img.size) / 150))
    for i, box in enumerate(boxes):
        pts = polygon(box)
        if not pts:
            continue
        pad = [(x, y) for x, y in _grow(pts, lw)]
        d.polygon(pad, fill=(*color, fill))
        if color == MATCH:
            d.line([*pad, pad[0]], fill=(*HALO, 255), width=lw * 2 + 2, joint="curve")
        d.line([*pad, pad[0]], fill=(*color, 255), width=lw, joint="curve")
        if labels and i < len(labels):
            x0, y0 = min(p[0] for p in pad), min(p[1] for p in pad)
            d.text((x0 + 2, max(0, y0 - 12)), labels[i], fill=(*color, 255))
    out = Image.alpha_composite(img, overlay).convert("RGB")
    buf = io.BytesIO()
    out.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue(), out.size


def crop_around(png: bytes, boxes: list[Any], max_height: int = CROP_MAX_HEIGHT) -> bytes | None:
    """A crop of a tall (full-page) image around the boxes, for printing; None if not needed."""
    img = Image.open(io.BytesIO(png))
    if img.height <= max_height:
        return None
    ys = [y for b in boxes if (pts := polygon(b)) for _, y in pts]
    if not ys:
        return None
    mid = (min(ys) + max(ys)) / 2
    top = int(max(0, min(img.height - max_height, mid - max_height / 2)))
    buf = io.BytesIO()
    img.crop((0, top, img.width, top + max_height)).save(buf, "PNG")
    return buf.getvalue()


def _grow(pts: list[tuple[float, float]], by: float) -> list[tuple[float, float]]:
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    return [(x + (by if x >= cx else -by), y + (by if y >= cy else -by)) for x, y in pts]
