"""Ad banners for the demo site, drawn with Pillow and a Debian CJK font (no binaries committed)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
)


@lru_cache(maxsize=8)
def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_CANDIDATES:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    raise RuntimeError("no CJK font found: install fonts-noto-cjk or fonts-wqy-zenhei (apt-get install)")


def render_banner(lines: list[str], size: tuple[int, int] = (960, 240), bg: str = "#c0392b",
                  fg: str = "#ffffff", fmt: str = "PNG") -> bytes:
    """A flat banner with ``lines`` centred; returns encoded image bytes in ``fmt``."""
    img = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(img)
    font_size = max(16, min(size[1] // (len(lines) + 1), size[0] // max(len(s) for s in lines) - 4))
    font = cjk_font(font_size)
    total = len(lines) * int(font_size * 1.4)
    y = (size[1] - total) // 2
    for line in lines:
        w = draw.textlength(line, font=font)
        draw.text(((size[0] - w) / 2, y), line, font=font, fill=fg)
        y += int(font_size * 1.4)
    out = io.BytesIO()
    img.save(out, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
    return out.getvalue()


def tiny_gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (1, 1)).save(out, format="GIF")
    return out.getvalue()
