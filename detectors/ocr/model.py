"""OcrLine and the helpers every engine shares (simplified-Chinese conversion, reading order)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]


class OcrEngineError(RuntimeError):
    """An OCR engine cannot be created or run (unknown name, bad settings, missing model files)."""


class OcrUnavailable(OcrEngineError):
    """The optional package an engine needs is not installed; the message says how to install it."""


@dataclass(frozen=True, slots=True)
class OcrLine:
    """One line of text read from an image.

    ``box`` is four (x, y) points in the pixels of the image that was read: top-left, top-right,
    bottom-right, bottom-left (clockwise from the line's start). ``confidence`` is 0–1.
    """

    text: str
    box: Box
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": [list(p) for p in self.box], "confidence": self.confidence}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OcrLine:
        return cls(text=d["text"], box=make_box(d["box"]), confidence=float(d["confidence"]))

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """Axis-aligned (left, top, right, bottom)."""
        xs = [p[0] for p in self.box]
        ys = [p[1] for p in self.box]
        return (min(xs), min(ys), max(xs), max(ys))

    def shifted(self, dx: float, dy: float) -> OcrLine:
        return OcrLine(self.text, tuple((x + dx, y + dy) for x, y in self.box), self.confidence)  # type: ignore[arg-type]


def make_box(points: Any) -> Box:
    pts = [(round(float(p[0]), 1), round(float(p[1]), 1)) for p in points]
    if len(pts) != 4:
        raise ValueError(f"a box has 4 points, got {len(pts)}")
    return tuple(pts)  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese (PP-OCR models sometimes emit 學, 賽 ...)."""
    return _t2s().convert(text) if text else text


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """Sort lines top to bottom, and left to right within a row (lines whose vertical centres lie
    within half a line height of each other form one row)."""
    if not lines:
        return []
    items = sorted(lines, key=lambda ln: (ln.bbox[1] + ln.bbox[3]) / 2)
    rows: list[list[OcrLine]] = []
    row_mid = 0.0
    row_h = 0.0
    for ln in items:
        left, top, right, bottom = ln.bbox
        mid, h = (top + bottom) / 2, bottom - top
        if rows and abs(mid - row_mid) <= max(2.0, min(h, row_h) / 2):
            rows[-1].append(ln)
        else:
            rows.append([ln])
            row_mid, row_h = mid, h
    return [ln for row in rows for ln in sorted(row, key=lambda ln: ln.bbox[0])]
