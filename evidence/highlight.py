"""Drawing what matched: boxes on screenshots and ad images (Pillow).

A box is either four (x, y) points (OCR, ``detectors.ocr``) or ``[x, y, w, h]`` (rendered text
positions, ``pages.text_boxes``); both are drawn as polygons in the image's pixels.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from store.cases import span_boxes  # noqa: F401 - the text runs of a rendered page (pages.text_boxes)

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


def draw_numbered(data: bytes, groups: list[tuple[str, list[Any]]]) -> tuple[bytes, tuple[int, int]]:
    """PNG bytes of ``data`` with every group's boxes outlined in red and labelled with the group's
    label (a violation's number) in a red tag, tags moved aside so none hides another."""
    img = Image.open(io.BytesIO(data))
    img.load()
    img = img.convert("RGBA")
    overlay = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(overlay)
    lw = max(2, round(min(img.size) / 150))
    size = int(min(36, max(16, img.width / 40)))
    font = ImageFont.load_default(size=size)
    tags: list[tuple[str, list[tuple[float, float]]]] = []
    for label, boxes in groups:
        for box in boxes:
            pts = polygon(box)
            if not pts:
                continue
            pad = _grow(pts, lw)
            d.polygon(pad, fill=(*MATCH, 50))
            d.line([*pad, pad[0]], fill=(*HALO, 255), width=lw * 2 + 2, joint="curve")
            d.line([*pad, pad[0]], fill=(*MATCH, 255), width=lw, joint="curve")
            tags.append((label, pad))
    # each tag goes where it hides neither words nor another tag: left of its box, above it, right
    # of it, below it, else inside its top-left corner
    taken = [(min(p[0] for p in pad), min(p[1] for p in pad), max(p[0] for p in pad), max(p[1] for p in pad))
             for _, pad in tags]
    for label, pad in tags:
        x0, y0 = min(p[0] for p in pad), min(p[1] for p in pad)
        x1, y1 = max(p[0] for p in pad), max(p[1] for p in pad)
        left, top, right, bottom = d.textbbox((0, 0), label, font=font)
        w, h = right - left + 8, bottom - top + 6
        spots = [(x0 - w - 1, y0), (x0, y0 - h - 1), (x1 + 1, y0), (x0, y1 + 1), (x0, y0)]
        x, y = next(((x, y) for x, y in spots
                     if x >= 0 and y >= 0 and x + w <= img.width and y + h <= img.height
                     and not any(x < b[2] and x + w > b[0] and y < b[3] and y + h > b[1] for b in taken)),
                    spots[-1])
        taken.append((x, y, x + w, y + h))
        d.rectangle((x, y, x + w, y + h), fill=(*MATCH, 235))
        d.text((x + 4 - left, y + 3 - top), label, fill=(255, 255, 255, 255), font=font)
    out = Image.alpha_composite(img, overlay).convert("RGB")
    buf = io.BytesIO()
    out.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue(), out.size


def crops(png: bytes, boxes: list[Any], max_height: int = CROP_MAX_HEIGHT, margin: int = 120) -> list[bytes]:
    """Crops of a tall (full-page) image that together show every box, each at most ``max_height``
    high, top to bottom; [] when the image is short enough to print whole."""
    img = Image.open(io.BytesIO(png))
    if img.height <= max_height:
        return []
    spans = sorted((min(y for _, y in pts), max(y for _, y in pts)) for b in boxes if (pts := polygon(b)))
    windows: list[list[float]] = []
    for top, bottom in spans:
        if windows and bottom + margin - windows[-1][0] <= max_height:
            windows[-1][1] = max(windows[-1][1], bottom)
        else:
            windows.append([top, bottom])
    out = []
    for top, bottom in windows:
        mid = (top + bottom) / 2
        y = int(max(0, min(img.height - max_height, mid - max_height / 2)))
        buf = io.BytesIO()
        img.crop((0, y, img.width, y + max_height)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _grow(pts: list[tuple[float, float]], by: float) -> list[tuple[float, float]]:
    cx = sum(p[0] for p in pts) / len(pts)
    cy = sum(p[1] for p in pts) / len(pts)
    return [(x + (by if x >= cx else -by), y + (by if y >= cy else -by)) for x, y in pts]
