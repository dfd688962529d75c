"""A phone photo of a poster, flyer or screen, made readable: the poster's outline found (edges →
the largest four-cornered contour) and warped flat, so OCR reads it as a banner. EXIF orientation is
applied earlier, when the image is decoded (``detectors.images.decode_image``).

``straighten(image)`` returns the flat image and the homography from the photo to it (None when
no poster outline was found: the photo is read as it is); ``lines_on_photo`` maps OCR boxes read on
the flat image back onto the photo, so evidence highlights land on the submitted bytes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from detectors.ocr.model import OcrLine, make_box

WORK_SIDE = 1000          # edges are found on a copy at most this long on its long side
MIN_AREA_FRACTION = 0.2   # a poster fills at least this much of the photo …
MAX_AREA_FRACTION = 0.97  # … and less than all of it (an edge-to-edge screenshot needs no warp)
MIN_SKEW = 0.02           # corners this close (fraction of the side) to an upright rectangle: not warped


def _order(pts: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left."""
    s, d = pts.sum(axis=1), np.diff(pts, axis=1).ravel()
    return np.array([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]], dtype=np.float32)


def find_outline(image: Image.Image) -> np.ndarray | None:
    """The four corners (photo pixels, ordered) of the largest quadrilateral that could be a poster."""
    import cv2

    w, h = image.size
    scale = min(1.0, WORK_SIDE / max(w, h))
    small = np.asarray(image.convert("L").resize((max(1, int(w * scale)), max(1, int(h * scale)))))
    blurred = cv2.GaussianBlur(small, (5, 5), 0)
    edges = cv2.Canny(blurred, 50, 150)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=2)
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    area = small.shape[0] * small.shape[1]
    for contour in sorted(contours, key=cv2.contourArea, reverse=True)[:8]:
        hull = cv2.convexHull(contour)
        frac = cv2.contourArea(hull) / area
        if frac < MIN_AREA_FRACTION:
            break
        if frac > MAX_AREA_FRACTION:
            continue
        peri = cv2.arcLength(hull, True)
        for eps in (0.02, 0.03, 0.05):
            approx = cv2.approxPolyDP(hull, eps * peri, True)
            if len(approx) == 4:
                return _order(approx.reshape(4, 2).astype(np.float32) / scale)
    return None


def straighten(image: Image.Image) -> tuple[Image.Image, np.ndarray | None, dict[str, Any]]:
    """(flat image, homography photo → flat or None, what was done). An image whose outline is
    already an upright rectangle, or that has none, comes back unchanged."""
    import cv2

    corners = find_outline(image)
    if corners is None:
        return image, None, {"straightened": False, "why": "未找到海报轮廓，按原图识别"}
    tl, tr, br, bl = corners
    width = int(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = int(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    if width < 40 or height < 40:
        return image, None, {"straightened": False, "why": "轮廓过小"}
    upright = np.array([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float32)
    skew = float(np.max(np.abs((corners - corners[0]) - upright)) / max(width, height))
    if skew < MIN_SKEW:
        return image, None, {"straightened": False, "why": "已是正面拍摄"}
    matrix = cv2.getPerspectiveTransform(corners, upright)
    flat = cv2.warpPerspective(np.asarray(image), matrix, (width, height), flags=cv2.INTER_CUBIC)
    return Image.fromarray(flat), matrix, {
        "straightened": True, "corners": [[round(float(x), 1), round(float(y), 1)] for x, y in corners],
        "size": [width, height]}


def lines_on_photo(lines: list[OcrLine], matrix: np.ndarray | None) -> list[OcrLine]:
    """OCR lines read on the flat image, with their boxes mapped back onto the photo."""
    if matrix is None or not lines:
        return lines
    import cv2

    inverse = np.linalg.inv(matrix)
    pts = np.array([[p for p in ln.box] for ln in lines], dtype=np.float64).reshape(-1, 1, 2)
    back = cv2.perspectiveTransform(pts, inverse).reshape(len(lines), 4, 2)
    return [OcrLine(ln.text, make_box([(float(x), float(y)) for x, y in quad]), ln.confidence)
            for ln, quad in zip(lines, back, strict=True)]
