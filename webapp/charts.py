"""Server-side drawing data: the trend chart and the highlight boxes, as numbers for SVG templates
(no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from typing import Any

from evidence.highlight import polygon

W, H, PAD_L, PAD_B, PAD_T = 640, 180, 36, 24, 12


def trend_svg(series: list[tuple[str, int]]) -> dict[str, Any]:
    """Bars per day (``series`` = [(YYYY-MM-DD, count)], oldest first) scaled into a W×H box."""
    if not series:
        return {"w": W, "h": H, "bars": [], "ticks": [], "max": 0}
    top = max(c for _, c in series) or 1
    n = len(series)
    slot = (W - PAD_L) / n
    bar_w = max(1.0, slot * 0.7)
    plot_h = H - PAD_B - PAD_T
    bars = []
    for i, (day, count) in enumerate(series):
        h = plot_h * count / top
        bars.append({"x": round(PAD_L + i * slot + (slot - bar_w) / 2, 1), "y": round(H - PAD_B - h, 1),
                     "w": round(bar_w, 1), "h": round(h, 1), "day": day, "count": count})
    every = max(1, n // 6)
    ticks = [{"x": b["x"] + b["w"] / 2, "label": b["day"][5:]} for i, b in enumerate(bars) if i % every == 0]
    return {"w": W, "h": H, "bars": bars, "ticks": ticks, "max": top, "axis_y": H - PAD_B,
            "label_y": H - 6, "top_y": PAD_T + 4}


def _points(box: Any) -> str | None:
    pts = polygon(box)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) if pts else None


def figures(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The pictures of a case — the ad image and the page screenshots — each with its size and the
    polygons of the matched words (``case['figures']`` from ``webapp.cases``)."""
    out = []
    for fig in case.get("figures", []):
        polys = [p for b in fig.get("boxes", []) if (p := _points(b))]
        w, h = fig.get("width") or 0, fig.get("height") or 0
        if not (w and h):
            continue
        out.append({**fig, "polygons": polys, "stroke": max(2, round(min(w, h) / 150))})
    return out
