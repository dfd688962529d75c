"""Generated Chinese ad images for tests and the OCR benchmark (no binaries in the repository).

Every function returns an :class:`AdImage`: the encoded bytes plus the ground truth (the lines
drawn, their boxes in image pixels, the QR payload). Rendering is deterministic for a given seed.
Fonts are Debian's CJK fonts (fonts-noto-cjk, fonts-wqy-zenhei; see scripts/debian-packages.txt).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

# (path, ttc index of the simplified-Chinese face)
_FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0),
)
TRADITIONAL_FONT = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 3)

VIOLATIONS: dict[str, str] = {  # phrase drawn -> category the default rules should report
    "幼小衔接拼音班火热招生": "preschool_subject",
    "学前班识字数学同步开课": "preschool_subject",
    "拍照搜题一秒出答案": "photo_search",
    "中考保过班名额有限": "guarantee_promise",
    "不达目标全额退款": "guarantee_promise",
    "希望杯竞赛金牌教练领衔": "competition_ranking",
    "期末考试光荣榜": "competition_ranking",
}
NEUTRAL: tuple[str, ...] = (
    "美术书法周末体验课", "少儿篮球夏令营", "非学科类素质教育", "围棋启蒙小班教学",
    "咨询电话 010-62345678", "地址：海淀区中关村大街27号", "钢琴考级辅导", "科学实验探索营",
    "报名请扫二维码", "名师一对一答疑", "舞蹈形体芭蕾启蒙", "编程机器人创客课",
)
PALETTE_DARK = [(200, 20, 20), (20, 20, 120), (10, 10, 10), (0, 90, 40), (120, 0, 120), (160, 60, 0)]
PALETTE_LIGHT = [(255, 255, 255), (255, 240, 200), (250, 250, 230), (230, 245, 255), (255, 230, 230)]


@dataclass
class AdImage:
    data: bytes
    lines: list[str]
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (left, top, right, bottom)
    qr: str | None = None
    width: int = 0
    height: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def fonts() -> list[tuple[str, int]]:
    """The CJK fonts installed here (at least one, else tests cannot render Chinese)."""
    found = [(p, i) for p, i in _FONT_CANDIDATES if Path(p).is_file()]
    if not found:
        raise RuntimeError("no CJK font found: apt-get install fonts-noto-cjk fonts-wqy-zenhei")
    return found


@lru_cache(maxsize=64)
def font(size: int, which: int = 0, traditional: bool = False) -> ImageFont.FreeTypeFont:
    if traditional and Path(TRADITIONAL_FONT[0]).is_file():
        return ImageFont.truetype(TRADITIONAL_FONT[0], size, index=TRADITIONAL_FONT[1])
    path, index = fonts()[which % len(fonts())]
    return ImageFont.truetype(path, size, index=index)


def encode(img: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        img.convert("RGB").save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, fmt.upper())
    return buf.getvalue()


def qr_image(payload: str, scale: int = 5, border: int = 4) -> Image.Image:
    """A QR code as a PIL image (segno encodes; we draw the modules)."""
    import segno

    qr = segno.make(payload, error="m", micro=False)
    rows = [list(r) for r in qr.matrix]
    n = len(rows)
    img = Image.new("L", ((n + 2 * border) * scale,) * 2, 255)
    d = ImageDraw.Draw(img)
    for y, row in enumerate(rows):
        for x, bit in enumerate(row):
            if bit:
                x0, y0 = (x + border) * scale, (y + border) * scale
                d.rectangle((x0, y0, x0 + scale - 1, y0 + scale - 1), fill=0)
    return img.convert("RGB")


def _background(rng: random.Random, size: tuple[int, int], style: str) -> Image.Image:
    w, h = size
    base = rng.choice(PALETTE_LIGHT)
    if style == "clean":
        return Image.new("RGB", size, base)
    other = rng.choice(PALETTE_LIGHT)
    # vertical gradient between two light colours
    grad = Image.linear_gradient("L").resize(size)
    img = Image.composite(Image.new("RGB", size, other), Image.new("RGB", size, base), grad)
    if style in ("noise", "busy"):
        noise = Image.effect_noise(size, 40).convert("RGB")
        img = Image.blend(img, noise, 0.12)
    if style == "busy":
        d = ImageDraw.Draw(img)
        for _ in range(rng.randint(12, 25)):
            x, y = rng.randrange(w), rng.randrange(h)
            r = rng.randint(10, max(12, h // 4))
            col = tuple(min(255, c + rng.randint(-30, 10)) for c in rng.choice(PALETTE_LIGHT))
            if rng.random() < 0.5:
                d.ellipse((x - r, y - r, x + r, y + r), fill=col)
            else:
                d.rectangle((x - r, y - r // 2, x + r, y + r // 2), outline=col, width=3)
        img = img.filter(ImageFilter.SMOOTH)
    return img


def render(
    lines: list[str],
    *,
    size: tuple[int, int] | None = None,
    font_size: int = 48,
    font_index: int = 0,
    style: str = "clean",
    fmt: str = "PNG",
    quality: int = 90,
    qr: str | None = None,
    traditional: bool = False,
    colors: list[tuple[int, int, int]] | None = None,
    seed: int = 0,
    margin: int = 40,
    mixed_fonts: bool = False,
) -> AdImage:
    """Draw ``lines`` one under another (each shrunk to fit the width) on a background of
    ``style`` (clean | gradient | noise | busy), optionally with a QR code on the right."""
    rng = random.Random(seed)
    qr_img = qr_image(qr, scale=max(3, font_size // 12)) if qr else None
    if size is None:
        widest = max(font(font_size, font_index, traditional).getlength(t) for t in lines)
        w = int(widest) + 2 * margin + (qr_img.width + margin if qr_img else 0)
        h = int(len(lines) * font_size * 1.6) + 2 * margin
        if qr_img:
            h = max(h, qr_img.height + 2 * margin)
        size = (w, h)
    margin = min(margin, size[1] // 8, size[0] // 16)
    img = _background(rng, size, style)
    d = ImageDraw.Draw(img)
    text_right = size[0] - margin - (qr_img.width + margin if qr_img else 0)
    avail_h = size[1] - 2 * margin
    step = avail_h / max(1, len(lines))
    boxes = []
    for i, text in enumerate(lines):
        fs = min(font_size, int(step / 1.35))
        which = font_index + i if mixed_fonts else font_index
        f = font(fs, which, traditional)
        while fs > 10 and margin + f.getlength(text) > text_right:
            fs -= 2
            f = font(fs, which, traditional)
        y = int(margin + i * step + (step - fs * 1.3) / 2)
        fill = colors[i % len(colors)] if colors else rng.choice(PALETTE_DARK)
        d.text((margin, y), text, font=f, fill=fill)
        boxes.append(tuple(int(v) for v in d.textbbox((margin, y), text, font=f)))
    if qr_img:
        img.paste(qr_img, (size[0] - margin - qr_img.width, (size[1] - qr_img.height) // 2))
    return AdImage(encode(img, fmt, quality), list(lines), boxes, qr, size[0], size[1])


def clean_banner(rng: random.Random, n_lines: int = 2) -> AdImage:
    """A banner (standard web ad sizes): 1–2 lines, solid or gradient background, up to 64 px
    text, PNG or good JPEG."""
    lines = _pick_lines(rng, n_lines)
    size = rng.choice([(728, 90), (970, 250), (1200, 300), (800, 200)] if n_lines == 1
                      else [(970, 250), (1200, 300), (800, 240), (640, 240)])
    return render(
        lines, size=size, font_size=rng.choice([36, 44, 52, 64]), font_index=rng.randrange(len(fonts())),
        style=rng.choice(["clean", "clean", "gradient"]), fmt=rng.choice(["PNG", "JPEG"]),
        quality=rng.randint(80, 95), seed=rng.randrange(1 << 30),
    )


def busy_poster(rng: random.Random, n_lines: int = 4) -> AdImage:
    """A poster: 3–5 lines in mixed fonts and colours on a busy noisy background, JPEG 60–85."""
    lines = _pick_lines(rng, n_lines)
    return render(
        lines, font_size=rng.choice([28, 32, 40, 48]), font_index=rng.randrange(len(fonts())),
        style=rng.choice(["noise", "busy", "busy"]), fmt="JPEG", quality=rng.randint(60, 85), mixed_fonts=True,
        seed=rng.randrange(1 << 30), qr=("https://example.org/ad/" + str(rng.randrange(10**6)))
        if rng.random() < 0.3 else None,
    )


def _pick_lines(rng: random.Random, n: int) -> list[str]:
    pool = list(VIOLATIONS) + list(NEUTRAL)
    lines = [rng.choice(list(VIOLATIONS))]
    while len(lines) < n:
        cand = rng.choice(pool)
        if cand not in lines:
            lines.append(cand)
    rng.shuffle(lines)
    return lines


def long_image(text: str, *, width: int = 750, height: int = 20000, at: int | None = None,
               font_size: int = 40, filler: bool = True, fmt: str = "JPEG") -> AdImage:
    """A phone "long picture": mostly empty, with ``text`` drawn near the bottom (or at ``at``)."""
    img = Image.new("RGB", (width, height), (255, 250, 240))
    d = ImageDraw.Draw(img)
    if filler:  # coloured bands, no text: the OCR must not invent lines there
        for y in range(0, height - 400, 900):
            d.rectangle((40, y + 100, width - 40, y + 500), fill=(230, 240, 255))
    f = font(font_size)
    y = height - 200 if at is None else at
    d.text((40, y), text, font=f, fill=(200, 20, 20))
    box = tuple(int(v) for v in d.textbbox((40, y), text, font=f))
    return AdImage(encode(img, fmt, 85), [text], [box], None, width, height)


def animated_gif(frames: list[str], size: tuple[int, int] = (640, 160)) -> AdImage:
    """An animated GIF, one line of text per frame; the ground truth is the first frame's."""
    imgs = []
    for i, text in enumerate(frames):
        ad = render([text], size=size, font_size=48, seed=i, colors=[(10, 10, 10)])
        imgs.append(Image.open(io.BytesIO(ad.data)).convert("P", palette=Image.Palette.ADAPTIVE))
    buf = io.BytesIO()
    imgs[0].save(buf, "GIF", save_all=True, append_images=imgs[1:], duration=500, loop=0)
    first = render([frames[0]], size=size, font_size=48, seed=0)
    return AdImage(buf.getvalue(), [frames[0]], first.boxes, None, size[0], size[1])


def svg_ad(lines: list[str], width: int = 600, height: int = 200) -> AdImage:
    """An SVG banner whose lines are <text> elements (read without OCR)."""
    from xml.sax.saxutils import escape

    step = height / (len(lines) + 1)
    texts = "".join(
        f'<text x="20" y="{int(step * (i + 1))}" font-size="32" fill="#c00">{escape(t)}</text>'
        for i, t in enumerate(lines)
    )
    svg = (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
           f'<rect width="100%" height="100%" fill="#ffe"/>{texts}</svg>')
    return AdImage(svg.encode("utf-8"), list(lines), [], None, width, height)


def bench_set(n_banners: int = 36, n_posters: int = 30, seed: int = 2021) -> list[tuple[str, AdImage]]:
    """The benchmark's images: ("banner", ...) then ("poster", ...), deterministic."""
    rng = random.Random(seed)
    out = [("banner", clean_banner(rng, rng.choice([1, 2, 2]))) for _ in range(n_banners)]
    out += [("poster", busy_poster(rng, rng.choice([3, 4, 5]))) for _ in range(n_posters)]
    return out
